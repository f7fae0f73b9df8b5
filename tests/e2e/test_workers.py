"""``gateway serve --workers N``: N processes on one port and one PostgreSQL database, each paying once.

On SQLite (one writer) more than one worker is refused with one line. On PostgreSQL the
workers share the listening socket and the outbox; a worker killed with SIGKILL is
started again by its parent and its claims are taken over, and the bank still pays each
instruction once.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import uuid
from pathlib import Path

import aiohttp
import pytest
from sqlalchemy import select

from gateway.store.db import create_engine
from gateway.store.migrate import upgrade
from gateway.store.tables import instructions
from gateway.store.tables import processes as process_rows
from tests.e2e.test_kill9 import GATEWAY, db_url, free_port, processes, spawn, wait_listening, write_config
from tests.support import example_instruction, metric_total

__all__ = ["db_url", "processes"]  # fixtures shared with the kill -9 harness

pytestmark = pytest.mark.slow

COUNT = 120
#: instructions looked up once the payments settled, each on a connection of its own
GETS = 40


async def live_workers(engine_url: str) -> dict[int, str]:
    engine = create_engine(engine_url)
    try:
        async with engine.connect() as conn:
            return {r.pid: r.id for r in await conn.execute(select(process_rows.c.pid, process_rows.c.id))}
    finally:
        await engine.dispose()


async def test_two_workers_share_the_port_and_pay_each_instruction_once(
    tmp_path: Path, db_url: str, processes: list[subprocess.Popen[bytes]]
) -> None:
    port, bank_port = free_port(), free_port()
    config = write_config(tmp_path, db_url, port, bank_port)
    if db_url.startswith("sqlite"):
        result = subprocess.run(
            [GATEWAY, "--config", str(config), "serve", "--workers", "2"], capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 2
        assert result.stderr.strip() == (
            "gateway: --workers above 1 needs PostgreSQL: SQLite has one writer, so run one process"
        )
        return
    engine = create_engine(db_url)
    await upgrade(engine)
    log = tmp_path / "processes.log"
    key = subprocess.run(
        [GATEWAY, "--config", str(config), "keys", "create", "--business-unit", "workers"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    processes.append(spawn([GATEWAY, "--config", str(config), "simulate", "iso20022_bank"], log))
    await wait_listening(bank_port)
    parent = spawn([GATEWAY, "--config", str(config), "serve", "--workers", "2"], log)
    processes.append(parent)
    await wait_listening(port)
    for _ in range(100):  # each worker registers itself with its own heartbeat
        pids = await live_workers(db_url)
        if len(pids) == 2:
            break
        await asyncio.sleep(0.1)
    assert parent.pid in pids and len(pids) == 2
    child = next(pid for pid in pids if pid != parent.pid)

    accepted: dict[str, str] = {}

    async def post(session: aiohttp.ClientSession, body: dict[str, object]) -> None:
        idem = str(uuid.uuid4())
        while idem not in accepted:  # retried on the same key, as a client does when a worker dies
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

    async def kill_the_child() -> None:
        await asyncio.sleep(0.5)
        os.kill(child, signal.SIGKILL)

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        await asyncio.gather(kill_the_child(), *(post(session, example_instruction()) for _ in range(COUNT)))

    async with engine.connect() as conn:
        for _ in range(300):
            statuses = {r.id: r.status for r in await conn.execute(select(instructions.c.id, instructions.c.status))}
            if set(statuses.values()) == {"settled"}:
                break
            await asyncio.sleep(0.2)
            await conn.rollback()
    await engine.dispose()
    assert len(statuses) == COUNT and set(statuses.values()) == {"settled"}
    async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{bank_port}/_sim/payments") as r:
        payments = await r.json()
    payments = payments["payments"] if isinstance(payments, dict) else payments
    paid = [p["instruction_id"] for p in payments]
    assert sorted(paid) == sorted(accepted.values())  # each paid once, none twice
    # the parent started another worker in the killed one's place
    for _ in range(100):
        pids = await live_workers(db_url)
        if len(pids) == 2 and child not in pids:
            break
        await asyncio.sleep(0.1)
    assert len(pids) == 2 and parent.pid in pids and child not in pids
    # /metrics, whichever worker answers it, counts every worker's requests: each of these on a connection
    # of its own, spread over both by the kernel
    gateway = f"http://127.0.0.1:{port}"
    route = "/v1/instructions/{id}"
    before = await metric_total(gateway, "gateway_http_requests_total", route=route)
    looked = sorted(accepted.values())[:GETS]
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as session:
        for instruction_id in looked:
            async with session.get(
                f"{gateway}/v1/instructions/{instruction_id}", headers={"Authorization": f"Bearer {key}"}
            ) as resp:
                assert resp.status == 200
    for _ in range(5):  # each of the GETs of /metrics below goes to either worker: all give the same sum
        assert await metric_total(gateway, "gateway_http_requests_total", route=route) == before + GETS
    parent.send_signal(signal.SIGTERM)
    assert await asyncio.to_thread(parent.wait, 30) == 0
