"""``gateway demo``: gateway + simulators in-process on a throw-away SQLite database.

Posts N varied instructions through the real HTTP API, waits for their final
statuses and compares each with the status the simulator's rules predict.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp

from gateway.config import Settings
from gateway.harness import local_gateway
from gateway.plugins import Plugins
from gateway.status import TERMINAL

__all__ = ["DemoInstruction", "demo_instructions", "run_demo"]

# Published example IBANs (documentation specimens, not real accounts).
_IBANS = [
    "DE89370400440532013000",
    "NL91ABNA0417164300",
    "AT611904300234573201",
    "BE68539007547034",
    "FR1420041010050500013M02606",
    "ES9121000418450200051332",
    "IT60X0542811101000000123456",
    "SE4550000000058398257466",
    "FI2112345600000785",
]
_CREDITORS = ["Nordic Parts AB", "Iberia Components SL", "Alpen Logistik GmbH", "Lowlands Retail BV", "Tyrrhenian Srl"]
_REJECT_CODES = ["AC01", "AC04", "AM04", "AG01", "RR04"]


@dataclass(frozen=True)
class DemoInstruction:
    body: dict[str, Any]
    expected: str


def demo_instructions(count: int, seed: int) -> list[DemoInstruction]:
    """Varied instructions with the final status each should reach."""
    rng = random.Random(seed)
    run = uuid.UUID(int=rng.getrandbits(128)).hex[:8].upper()
    out: list[DemoInstruction] = []
    for i in range(count):
        roll = rng.random()
        creditor = rng.choice(_CREDITORS)
        currency = "EUR"
        expected = "settled"
        if roll < 0.12:
            code = rng.choice(_REJECT_CODES)
            creditor = f"{creditor} REJECT-{code}"
            expected = "rejected"
        elif roll < 0.17:
            currency = "USD"  # no enabled adapter carries USD to an IBAN: rejected by routing
            expected = "rejected"
        amount = f"{rng.randint(1, 250_000)}.{rng.randint(0, 99):02d}"
        debtor_iban, creditor_iban = rng.sample(_IBANS, 2)
        body = {
            "reference": f"DEMO-{run}-{i:06d}",
            "type": rng.choice(["credit_transfer", "credit_transfer", "payout", "refund"]),
            "amount": amount,
            "currency": currency,
            "debtor": {
                "name": "HE Appliances Europe GmbH",
                "account": {"iban": debtor_iban},
                "agent": {"bic": "COBADEFFXXX"},
            },
            "creditor": {"name": creditor, "account": {"iban": creditor_iban}},
            "remittance_information": f"Invoice {rng.randint(1000, 99999)}",
            "metadata": {"demo": run},
        }
        out.append(DemoInstruction(body, expected))
    return out


async def _post_all(
    session: aiohttp.ClientSession,
    url: str,
    key: str,
    items: list[DemoInstruction],
    on_sent: Callable[[], None] | None = None,
) -> dict[str, DemoInstruction]:
    ids: dict[str, DemoInstruction] = {}
    sem = asyncio.Semaphore(32)

    async def post(item: DemoInstruction) -> None:
        async with sem:
            for attempt in range(5):
                async with session.post(
                    f"{url}/v1/instructions",
                    json=item.body,
                    headers={"Authorization": f"Bearer {key}", "Idempotency-Key": item.body["reference"]},
                ) as resp:
                    if resp.status == 202:
                        ids[(await resp.json())["id"]] = item
                        break
                    if resp.status < 500 or attempt == 4:
                        raise RuntimeError(
                            f"intake refused {item.body['reference']}: {resp.status} {await resp.text()}"
                        )
                await asyncio.sleep(0.1 * (attempt + 1))
            if on_sent is not None:
                on_sent()

    await asyncio.gather(*(post(i) for i in items))
    return ids


async def _statuses(session: aiohttp.ClientSession, url: str, key: str) -> dict[str, str]:
    out: dict[str, str] = {}
    cursor: str | None = None
    while True:
        params = {"limit": "200", **({"cursor": cursor} if cursor else {})}
        async with session.get(
            f"{url}/v1/instructions", params=params, headers={"Authorization": f"Bearer {key}"}
        ) as resp:
            page = await resp.json()
        out.update({i["id"]: i["status"] for i in page["items"]})
        cursor = page["next_cursor"]
        if not cursor:
            return out


async def run_demo(base: Settings, *, count: int, seed: int = 7, quiet: bool = False) -> dict[str, Any]:
    """Run the demo; the summary's ``ok`` is True only if every status matched its prediction."""
    from rich.progress import Progress

    started = time.perf_counter()
    factories = Plugins().simulator_factories()
    apps = {
        name: factories[name]({k: v for k, v in cfg.items() if k not in ("host", "port")})
        for name, cfg in base.section("simulators").items()
    }
    items = demo_instructions(count, seed)
    statuses: dict[str, str] = {}
    async with (
        local_gateway(
            base,
            apps,
            dispatch__status_poll_interval_seconds=1,
            dispatch__status_poll_after_seconds=2,
        ) as local,
        aiohttp.ClientSession() as session,
    ):
        with Progress(disable=quiet, transient=True) as progress:
            sending = progress.add_task("sending", total=count)
            ids = await _post_all(session, local.url, local.key, items, lambda: progress.advance(sending))
            waiting = progress.add_task("waiting for final statuses", total=len(ids))
            deadline = time.monotonic() + 60 + count / 20
            while time.monotonic() < deadline:
                statuses = await _statuses(session, local.url, local.key)
                final = sum(1 for i in ids if statuses.get(i) in TERMINAL)
                progress.update(waiting, completed=final)
                if final == len(ids):
                    break
                await asyncio.sleep(0.2)

    by_status = Counter(statuses.get(i, "missing") for i in ids)
    mismatched = [i for i, item in ids.items() if statuses.get(i) != item.expected]
    lost = count - sum(1 for i in ids if i in statuses)
    summary: dict[str, Any] = {
        "sent": count,
        "by_status": dict(sorted(by_status.items())),
        "expected": dict(sorted(Counter(i.expected for i in items).items())),
        "mismatched": len(mismatched),
        "lost": lost,
        "seconds": round(time.perf_counter() - started, 2),
    }
    summary["ok"] = not mismatched and lost == 0
    if not quiet:
        from rich.console import Console
        from rich.table import Table

        table = Table(title=f"gateway demo: {count} instructions, {summary['seconds']} s")
        table.add_column("status")
        table.add_column("expected", justify="right")
        table.add_column("reached", justify="right")
        for status in sorted(set(summary["expected"]) | set(summary["by_status"])):
            table.add_row(status, str(summary["expected"].get(status, 0)), str(summary["by_status"].get(status, 0)))
        Console().print(table)
        verdict = (
            "[green]every instruction reached its predicted status[/]"
            if summary["ok"]
            else (f"[red]{len(mismatched)} mismatched, {lost} lost[/]")
        )
        Console().print(verdict)
    return summary
