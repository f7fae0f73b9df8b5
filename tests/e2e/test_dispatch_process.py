"""``gateway serve --dispatch-process``: the dispatcher in a process of its own, on SQLite too.

The serving process takes instructions and the bank's reports; its child claims, routes and
sends. The child killed with SIGKILL under load is started again and its claims are taken
over: every instruction settles and the bank pays each once. The child ends with its parent,
even when the parent is killed with SIGKILL (no orphan keeps dispatching).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from sqlalchemy import select

from gateway.store.db import create_engine
from gateway.store.migrate import upgrade
from gateway.store.tables import instructions
from tests.e2e.test_kill9 import GATEWAY, db_url, free_port, processes, spawn, wait_listening, write_config
from tests.e2e.test_workers import live_workers
from tests.support import example_instruction, metric_total

__all__ = ["db_url", "processes"]  # fixtures shared with the kill -9 harness

pytestmark = pytest.mark.slow

COUNT = 120
#: payments sent one after the other, none in flight when the dispatcher is killed
FEW = 12


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie (ended, not yet reaped by its parent) counts as gone
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


async def registered(url: str, count: int, without: int | None = None) -> dict[int, str]:
    for _ in range(300):
        pids = await live_workers(url)
        if len(pids) == count and without not in pids:
            return pids
        await asyncio.sleep(0.1)
    return pids


@dataclass
class Started:
    """A ``gateway serve --dispatch-process`` with the bank simulator: where it listens, its key, its processes."""

    port: int
    bank_port: int
    key: str
    parent: subprocess.Popen[bytes]
    child: int  # the dispatcher's process

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


async def start(tmp_path: Path, db_url: str, processes: list[subprocess.Popen[bytes]]) -> Started:
    port, bank_port = free_port(), free_port()
    config = write_config(tmp_path, db_url, port, bank_port)
    engine = create_engine(db_url)
    await upgrade(engine)
    await engine.dispose()
    log = tmp_path / "processes.log"
    key = subprocess.run(
        [GATEWAY, "--config", str(config), "keys", "create", "--business-unit", "dispatch-process"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    processes.append(spawn([GATEWAY, "--config", str(config), "simulate", "iso20022_bank"], log))
    await wait_listening(bank_port)
    parent = spawn([GATEWAY, "--config", str(config), "serve", "--dispatch-process"], log)
    processes.append(parent)
    await wait_listening(port)
    pids = await registered(db_url, 2)  # the serving process and the dispatcher, each with its heartbeat
    assert parent.pid in pids and len(pids) == 2
    return Started(port, bank_port, key, parent, next(pid for pid in pids if pid != parent.pid))


async def all_settled(db_url: str, count: int) -> dict[str, str]:
    """Every instruction's status, once ``count`` of them are settled (or after 60 s)."""
    engine = create_engine(db_url)
    async with engine.connect() as conn:
        for _ in range(300):
            statuses = {r.id: r.status for r in await conn.execute(select(instructions.c.id, instructions.c.status))}
            if len(statuses) == count and set(statuses.values()) == {"settled"}:
                break
            await asyncio.sleep(0.2)
            await conn.rollback()
    await engine.dispose()
    return statuses


async def paid_by_the_bank(started: Started) -> list[str]:
    url = f"http://127.0.0.1:{started.bank_port}/_sim/payments"
    async with aiohttp.ClientSession() as session, session.get(url) as r:
        payments = await r.json()
    payments = payments["payments"] if isinstance(payments, dict) else payments
    return [p["instruction_id"] for p in payments]


async def test_the_dispatcher_in_its_own_process_survives_kill9_and_pays_each_once(
    tmp_path: Path, db_url: str, processes: list[subprocess.Popen[bytes]]
) -> None:
    started = await start(tmp_path, db_url, processes)
    port, key, parent, child = started.port, started.key, started.parent, started.child

    accepted: dict[str, str] = {}

    async def post(session: aiohttp.ClientSession, body: dict[str, object]) -> None:
        idem = str(uuid.uuid4())
        while idem not in accepted:
            try:
                async with session.post(
                    f"http://127.0.0.1:{port}/v1/instructions",
                    json=body,
                    headers={"Authorization": f"Bearer {key}", "Idempotency-Key": idem},
                ) as resp:
                    if resp.status in (200, 201, 202):
                        accepted[idem] = (await resp.json())["id"]
                    else:
                        assert resp.status in (429, 503), (resp.status, await resp.text())
            except (TimeoutError, aiohttp.ClientError, ConnectionError):
                await asyncio.sleep(0.05)

    async def kill_the_dispatcher() -> None:
        await asyncio.sleep(0.5)
        os.kill(child, signal.SIGKILL)

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        await asyncio.gather(kill_the_dispatcher(), *(post(session, example_instruction()) for _ in range(COUNT)))

    statuses = await all_settled(db_url, COUNT)
    assert len(statuses) == COUNT and set(statuses.values()) == {"settled"}
    assert sorted(await paid_by_the_bank(started)) == sorted(accepted.values())  # each paid once, none twice
    # the parent started another dispatcher in the killed one's place
    pids = await registered(db_url, 2, without=child)
    assert len(pids) == 2 and parent.pid in pids and child not in pids
    second = next(pid for pid in pids if pid != parent.pid)
    # the parent killed with SIGKILL: its dispatcher does not outlive it
    parent.send_signal(signal.SIGKILL)
    await asyncio.to_thread(parent.wait, 30)
    for _ in range(100):
        if not alive(second):
            break
        await asyncio.sleep(0.1)
    assert not alive(second)


async def test_the_serving_process_metrics_count_the_dispatchers_work_a_killed_ones_included(
    tmp_path: Path, db_url: str, processes: list[subprocess.Popen[bytes]]
) -> None:
    started = await start(tmp_path, db_url, processes)
    headers = {"Authorization": f"Bearer {started.key}"}
    async with aiohttp.ClientSession(headers=headers) as session:
        for _ in range(FEW):
            body = example_instruction()
            idem = {"Idempotency-Key": str(uuid.uuid4())}
            async with session.post(f"{started.url}/v1/instructions", json=body, headers=idem) as resp:
                assert resp.status == 202, await resp.text()
    statuses = await all_settled(db_url, FEW)
    assert set(statuses.values()) == {"settled"} and len(statuses) == FEW
    assert sorted(await paid_by_the_bank(started)) == sorted(statuses)

    async def counted() -> tuple[float, float, float]:
        """Screenings and sends (the dispatcher's counts) and instructions taken (the serving process's)."""
        return (
            await metric_total(started.url, "gateway_risk_screened_total"),
            await metric_total(started.url, "gateway_dispatch_attempts_total", adapter="iso20022_bank"),
            await metric_total(started.url, "gateway_intake_total", outcome="created"),
        )

    # the serving process screens and sends nothing: what /metrics shows of that, the dispatcher counted
    # (at least once a payment: a send or a screening retried, on a busy machine, counts again)
    before = await counted()
    screened, sent, taken = before
    assert screened >= FEW and sent >= FEW and taken == FEW, before
    os.kill(started.child, signal.SIGKILL)  # nothing in flight: every payment is settled
    pids = await registered(db_url, 2, without=started.child)
    assert len(pids) == 2 and started.child not in pids
    assert await counted() == before  # a dispatcher gone, and replaced: its counts stay


async def test_sigterm_stops_the_dispatcher_process_too(
    tmp_path: Path, db_url: str, processes: list[subprocess.Popen[bytes]]
) -> None:
    started = await start(tmp_path, db_url, processes)
    parent, child = started.parent, started.child
    parent.send_signal(signal.SIGTERM)
    assert await asyncio.to_thread(parent.wait, 30) == 0
    assert not alive(child)
    assert await live_workers(db_url) == {}  # both deregistered on a clean stop


def test_dispatch_process_is_refused_with_workers(tmp_path: Path) -> None:
    config = write_config(tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'gw.db'}", free_port(), free_port())
    result = subprocess.run(
        [GATEWAY, "--config", str(config), "serve", "--workers", "2", "--dispatch-process"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "gateway: --dispatch-process is for one serving process: with --workers each one dispatches"
    )
