"""``gateway demo``: gateway + simulators in-process on a throw-away SQLite database.

Posts N varied instructions through the real HTTP API, waits for their final
statuses and compares each with the status the simulator's rules predict; then
(money in) a tenth as many card and wallet charges, counted by status under
``collections``, and as many invoices paid by transfers the bank simulator receives, fetched
as the scheduled statement fetch does and counted by receipt state under ``receipts``.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import aiohttp
from rich.progress import Progress
from sqlalchemy import func, select
from stdnum.iso7064 import mod_97_10

from gateway.config import Settings
from gateway.devtools.harness import LocalGateway, list_views, local_gateway, post_all
from gateway.domain.clock import OffsetClock
from gateway.domain.collection_status import COLLECTION_TERMINAL
from gateway.domain.status import TERMINAL
from gateway.finance.books import ledger_summary
from gateway.plugins.manager import Plugins
from gateway.store.tables import receipts

__all__ = [
    "SAMPLE_IBANS",
    "DemoInstruction",
    "DemoTransfer",
    "demo_collections",
    "demo_direct_debits",
    "demo_instructions",
    "demo_transfers",
    "rf_reference",
    "run_demo",
    "us_account",
]

# Published example IBANs (documentation specimens, not real accounts).
SAMPLE_IBANS = [
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
_REJECT_CODES = ["AC01", "AC04", "AM04", "AG01"]


@dataclass(frozen=True)
class DemoInstruction:
    body: dict[str, Any]
    expected: str
    #: the adapter the routing rules should pick (None: no route)
    adapter: str | None = None


# ABA routing numbers with valid check digits (published Federal Reserve numbers).
_ROUTING = ["021000021", "011000015", "122105278", "231380104"]


def us_account(rng: random.Random) -> dict[str, str]:
    """A US account number with a published ABA routing number (valid check digit)."""
    return {"number": f"{rng.randint(10**8, 10**12 - 1)}", "routing": rng.choice(_ROUTING)}


def demo_instructions(count: int, seed: int, adapters: Collection[str] = ("iso20022_bank",)) -> list[DemoInstruction]:
    """A mixed batch over the enabled rails, with the final status and adapter each should reach.

    SEPA credit transfers (ISO 20022 bank), wallet payouts (card acquirer), instant
    USD payments (instant rail), standard USD to US accounts (ACH file), and a few
    that no rail carries; some of each are rejected by the partner (``REJECT-<code>``).
    """
    rng = random.Random(seed)
    run = uuid.UUID(int=rng.getrandbits(128)).hex[:8].upper()
    kinds = ["sepa"] * 55 + ["none"] * 5
    kinds += ["wallet"] * 15 if "card_acquirer" in adapters else []
    kinds += ["instant"] * 15 if "instant_rtp" in adapters else []
    kinds += ["ach"] * 10 if "ach_nacha" in adapters else []
    out: list[DemoInstruction] = []
    for i in range(count):
        kind = rng.choice(kinds)
        creditor = rng.choice(_CREDITORS)
        reject = kind != "ach" and kind != "none" and rng.random() < 0.15
        debtor_iban, creditor_iban = rng.sample(SAMPLE_IBANS, 2)
        body: dict[str, Any] = {
            "reference": f"DEMO-{run}-{i:06d}",
            "type": "credit_transfer",
            "amount": f"{rng.randint(1, 90_000)}.{rng.randint(0, 99):02d}",
            "currency": "EUR",
            "debtor": {
                "name": "HE Appliances Europe GmbH",
                "account": {"iban": debtor_iban},
                "agent": {"bic": "COBADEFFXXX"},
            },
            "creditor": {"name": creditor, "account": {"iban": creditor_iban}},
            "remittance_information": f"Invoice {rng.randint(1000, 99999)}",
            "metadata": {"demo": run, "rail": kind},
        }
        adapter: str | None = {
            "sepa": "iso20022_bank",
            "wallet": "card_acquirer",
            "instant": "instant_rtp",
            "ach": "ach_nacha",
        }.get(kind)
        if kind == "sepa":
            body["type"] = rng.choice(["credit_transfer", "credit_transfer", "payout", "refund"])
        elif kind == "wallet":
            body |= {"type": rng.choice(["payout", "refund"]), "currency": rng.choice(["EUR", "USD", "GBP"])}
            body["creditor"]["account"] = {"wallet": f"wal_{rng.getrandbits(48):012x}"}
        elif kind in ("instant", "ach"):
            body |= {"currency": "USD", "urgency": "instant" if kind == "instant" else "standard"}
            body["debtor"] = {"name": "HE Appliances America Inc", "account": us_account(rng)}
            body["creditor"]["account"] = us_account(rng)
        elif kind == "none":
            body["currency"] = "USD"  # USD to an IBAN: no enabled rail carries it, rejected by routing
        code = rng.choice(_REJECT_CODES)
        if reject:
            body["creditor"]["name"] = f"{creditor} REJECT-{code}"
        expected = "rejected" if reject or kind == "none" else "settled"
        out.append(DemoInstruction(body, expected, adapter))
    return out


def demo_collections(count: int, seed: int) -> list[tuple[dict[str, Any], str]]:
    """Card and wallet charges (money in) for the card acquirer, with the status each should reach.

    Some are declined by the payer's side (``REJECT-<code>`` in the payer's name); the rest are collected.
    """
    rng = random.Random(f"{seed}:collections")
    run = uuid.UUID(int=rng.getrandbits(128)).hex[:8].upper()
    out = []
    for i in range(count):
        payer = rng.choice(["Anna Berg", "Ole Lund", "Eva Holm", "Jonas Wik", "Maria Sala"])
        declined = rng.random() < 0.2
        if declined:
            payer += f" REJECT-{rng.choice(['AG01', 'AM04'])}"
        wallet = rng.random() < 0.3
        body: dict[str, Any] = {
            "reference": f"SALE-{run}-{i:05d}",
            "kind": "wallet_charge" if wallet else "card_charge",
            "amount": {"value": f"{rng.randint(20, 2500)}.{rng.randint(0, 99):02d}", "currency": "EUR"},
            "payer": {"name": payer, **({"wallet": f"wal_{rng.getrandbits(48):012x}"} if wallet else {})},
            "description": rng.choice(["Dishwasher DW-500", "Fridge FR-200", "Oven OV-90", "Washer WM-7"]),
            "metadata": {"demo": run},
        }
        if not wallet:
            body["payer"]["card_token"] = f"tok_demo_{rng.getrandbits(48):012x}"
        out.append((body, "rejected" if declined else "collected"))
    return out


def demo_direct_debits(count: int, seed: int) -> list[tuple[dict[str, Any], str]]:
    """SEPA direct debits for the ISO 20022 bank, with the status each should reach: most are collected;
    some are rejected in the bank's pain.002 (``REJECTNOW-<code>`` in the debtor's name) or refused by the
    debtor before settlement (``REJECT-<code>``, learnt from camt.054)."""
    rng = random.Random(f"{seed}:direct-debits")
    run = uuid.UUID(int=rng.getrandbits(128)).hex[:8].upper()
    out = []
    for i in range(count):
        debtor = rng.choice(["Nordic Parts AB", "Rhein Haushalt GmbH", "Casa Elettro SpA", "Lyon Menager SARL"])
        roll = rng.random()
        if roll < 0.15:
            debtor += f" REJECTNOW-{rng.choice(['AC04', 'AM04'])}"
        elif roll < 0.3:
            debtor += " REJECT-MS02"
        body: dict[str, Any] = {
            "reference": f"DD-{run}-{i:05d}",
            "kind": "direct_debit",
            "amount": {"value": f"{rng.randint(100, 9000)}.{rng.randint(0, 99):02d}", "currency": "EUR"},
            "payer": {"name": debtor, "iban": rng.choice(SAMPLE_IBANS)},
            "mandate": {
                "id": f"MNDT-{run}-{i:04d}",
                "signature_date": "2026-01-15",
                "sequence_type": rng.choice(["FRST", "RCUR"]),
            },
            "description": f"Distributor invoice {run}-{i:05d}",
            "metadata": {"demo": run},
        }
        out.append((body, "rejected" if roll < 0.3 else "collected"))
    return out


async def _run_collections(
    session: aiohttp.ClientSession, url: str, key: str, items: list[tuple[dict[str, Any], str]], deadline: float
) -> dict[str, Any]:
    """Post the charges through the HTTP API, wait for their final statuses, and count them by status."""
    headers = {"Authorization": f"Bearer {key}"}
    ids: dict[str, str] = {}
    for body, expected in items:
        async with session.post(
            f"{url}/v1/collections", json=body, headers={**headers, "Idempotency-Key": body["reference"]}
        ) as resp:
            if resp.status == 202:
                ids[(await resp.json())["id"]] = expected
    statuses: dict[str, str] = {}
    while time.monotonic() < deadline:
        for collection_id in ids:
            if statuses.get(collection_id) in COLLECTION_TERMINAL:
                continue
            async with session.get(f"{url}/v1/collections/{collection_id}", headers=headers) as resp:
                statuses[collection_id] = (await resp.json())["status"]
        if all(s in COLLECTION_TERMINAL for s in statuses.values()) and len(statuses) == len(ids):
            break
        await asyncio.sleep(0.2)
    return {
        "sent": len(items),
        "by_kind": dict(sorted(Counter(body["kind"] for body, _ in items).items())),
        "by_status": dict(sorted(Counter(statuses.get(i, "missing") for i in ids).items())),
        "expected": dict(sorted(Counter(e for _, e in items).items())),
        "mismatched": sum(1 for i, expected in ids.items() if statuses.get(i) != expected) + len(items) - len(ids),
    }


@dataclass(frozen=True)
class DemoTransfer:
    """Money in: an invoice the demo registers (``None``: nobody's), the transfer its payer sends for it on
    the bank simulator, and what the receipt made from it should become."""

    invoice: dict[str, Any] | None
    transfer: dict[str, Any]
    expected: str  # matched | on_account | unmatched


def rf_reference(body: str) -> str:
    """The ISO 11649 creditor reference (``RF`` + check digits + ``body``) of ``body``."""
    return f"RF{mod_97_10.calc_check_digits(body + 'RF')}{body}"


def demo_transfers(count: int, seed: int) -> list[DemoTransfer]:
    """``count`` invoices and transfers, in turn: paid by RF reference, paid by the invoice number in the
    text, over-paid (the excess stays on account), and a transfer nobody's invoice explains."""
    rng = random.Random(f"{seed}:receipts")
    out = []
    for n in range(count):
        distributor = ("nord", "sud")[n % 2]
        amount = str(Decimal(rng.randint(10_000, 500_000)).scaleb(-2))
        number = f"DEMO-INV-{seed}-{n + 1:03d}"
        reference = rf_reference(f"{seed}{n + 1:05d}")
        invoice = {
            "invoice_number": number,
            "distributor": distributor,
            "amount": {"value": amount, "currency": "EUR"},
            "due_date": "2099-12-31",
            "structured_reference": reference,
        }
        payer = {"payer_name": f"Distributor {distributor.title()} GmbH", "currency": "EUR"}
        step = n % 4
        if step == 0:
            out.append(DemoTransfer(invoice, {**payer, "amount": amount, "creditor_reference": reference}, "matched"))
        elif step == 1:
            text = f"payment {number} thank you"
            out.append(DemoTransfer(invoice, {**payer, "amount": amount, "remittance_text": text}, "matched"))
        elif step == 2:
            more = str(Decimal(amount) + Decimal("25.00"))
            transfer = {**payer, "amount": more, "creditor_reference": reference}
            out.append(DemoTransfer(invoice, transfer, "on_account"))
        else:
            transfer = {"payer_name": "Unknown Payer Ltd", "amount": amount, "remittance_text": "see our letter"}
            out.append(DemoTransfer(None, transfer, "unmatched"))
    return out


async def _run_transfers(
    session: aiohttp.ClientSession, local: LocalGateway, items: list[DemoTransfer]
) -> dict[str, Any]:
    """Register the invoices, inject the transfers on the bank simulator, fetch its statements the way the
    scheduled job does, and count the receipts by state."""
    headers = {"Authorization": f"Bearer {local.key}"}
    for item in items:
        if item.invoice is not None:
            key = {"Idempotency-Key": item.invoice["invoice_number"]}
            async with session.post(f"{local.url}/v1/receivables", json=item.invoice, headers={**headers, **key}):
                pass
    bank = local.simulator_urls["iso20022_bank"]
    for item in items:
        async with session.post(f"{bank}/_sim/incoming-transfers", json=item.transfer):
            pass
    fetched = await local.runtime.statement_fetcher.fetch(partner="iso20022_bank")
    async with local.runtime.engine.connect() as conn:
        rows = await conn.execute(select(receipts.c.state, func.count()).group_by(receipts.c.state))
        by_status = {state: int(n) for state, n in rows}
    expected = Counter(i.expected for i in items)
    return {
        "sent": len(items),
        "by_status": dict(sorted(by_status.items())),
        "expected": dict(sorted(expected.items())),
        "mismatched": sum(abs(expected.get(s, 0) - by_status.get(s, 0)) for s in {*expected, *by_status}),
        "statements": fetched.stored,
        "gaps": fetched.as_dict()["gaps"],
    }


async def run_demo(base: Settings, *, count: int, seed: int = 7, quiet: bool = False) -> dict[str, Any]:
    """Run the demo; the summary's ``ok`` is True only if every status matched its prediction.

    ``quiet``: no progress bar (it is drawn only on a terminal anyway).
    """
    started = time.perf_counter()
    factories = Plugins().simulator_factories()
    clock = OffsetClock()  # one clock for the gateway and the ACH partner, so cut-offs come by jumping, not waiting
    apps = {
        name: factories[name](
            {k: v for k, v in cfg.items() if k not in ("host", "port")}
            | ({"clock": clock} if name == "ach_nacha" else {})
        )
        for name, cfg in base.section("simulators").items()
    }
    ach_overrides = {"partners__ach_nacha__tick_seconds": 0.1} if "ach_nacha" in base.section("partners") else {}
    items = demo_instructions(count, seed, adapters=base.section("partners"))
    statuses: dict[str, str] = {}
    adapters_by_id: dict[str, str | None] = {}
    async with (
        local_gateway(
            base,
            apps,
            clock=clock,
            risk__file=None,  # statuses are predicted from the simulators' rules; screening is shown by its tests
            dispatch__status_poll_interval_seconds=1,
            dispatch__status_poll_after_seconds=2,
            **ach_overrides,
        ) as local,
        aiohttp.ClientSession() as session,
    ):
        # money in first: before the ACH cut-offs move the shared clock ahead (the bank signs at real time)
        collections: dict[str, Any] = {"sent": 0, "by_status": {}, "expected": {}, "mismatched": 0}
        partners = base.section("partners")
        charges = demo_collections(max(3, count // 10), seed) if "card_acquirer" in partners else []
        if partners.get("iso20022_bank", {}).get("creditor_id"):
            charges += demo_direct_debits(max(3, count // 20), seed)
        if charges:
            collections = await _run_collections(session, local.url, local.key, charges, time.monotonic() + 60)
        receipts_in: dict[str, Any] = {"sent": 0, "by_status": {}, "expected": {}, "mismatched": 0}
        if "iso20022_bank" in partners and "iso20022_bank" in local.simulator_urls:
            receipts_in = await _run_transfers(session, local, demo_transfers(max(4, count // 10), seed))
        with Progress(disable=quiet, transient=True) as progress:
            sending = progress.add_task("sending", total=count)
            ids = await post_all(session, local.url, local.key, items, lambda: progress.advance(sending))
            waiting = progress.add_task("waiting for final statuses", total=len(ids))
            deadline = time.monotonic() + 60 + count / 20
            ach = local.runtime.adapters.get("ach_nacha")
            while time.monotonic() < deadline:
                views = await list_views(session, local.url, local.key)
                others_final = all(
                    views.get(i, {}).get("status") in TERMINAL for i, item in ids.items() if item.adapter != "ach_nacha"
                )
                waiting_for_ach = any(
                    views.get(i, {}).get("status") == "submitted"
                    for i, item in ids.items()
                    if item.adapter == "ach_nacha"
                )
                if ach is not None and others_final and waiting_for_ach:
                    # move time forward to the next ACH cut-off instead of waiting for it
                    clock.advance_to(ach.calendar.next_cutoff(clock()))  # type: ignore[attr-defined]
                statuses = {i: v["status"] for i, v in views.items()}
                adapters_by_id = {i: v["adapter"] for i, v in views.items()}
                final = sum(1 for i in ids if statuses.get(i) in TERMINAL)
                progress.update(waiting, completed=final)
                if final == len(ids):
                    break
                await asyncio.sleep(0.2)
        async with local.runtime.engine.connect() as conn:
            ledger = await ledger_summary(conn)

    by_status = Counter(statuses.get(i, "missing") for i in ids)
    mismatched = [
        i for i, item in ids.items() if statuses.get(i) != item.expected or adapters_by_id.get(i) != item.adapter
    ]
    by_adapter: dict[str, Counter[str]] = {}
    for i in ids:
        by_adapter.setdefault(adapters_by_id.get(i) or "none", Counter())[statuses.get(i, "missing")] += 1
    lost = count - sum(1 for i in ids if i in statuses)
    summary: dict[str, Any] = {
        "sent": count,
        "by_status": dict(sorted(by_status.items())),
        "expected": dict(sorted(Counter(i.expected for i in items).items())),
        "by_adapter": {a: dict(sorted(c.items())) for a, c in sorted(by_adapter.items())},
        "mismatched": len(mismatched),
        "lost": lost,
        "seconds": round(time.perf_counter() - started, 2),
        "collections": collections,
        "receipts": receipts_in,
        "ledger": ledger,
    }
    summary["ok"] = (
        not mismatched
        and lost == 0
        and not collections["mismatched"]
        and not receipts_in["mismatched"]
        and ledger["balanced"]
        and ledger["audit_intact"]
    )
    return summary
