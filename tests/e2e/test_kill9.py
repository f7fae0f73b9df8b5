"""kill -9 under load: nothing lost, nothing stuck, nothing paid twice, the ledger balanced.

The bank simulator runs in its own process (``gateway simulate``), the gateway as
``gateway serve``: one process on a SQLite file, and, when ``GATEWAY_TEST_DATABASE_URL``
is set, two processes sharing a PostgreSQL schema (``database.url`` ending ``?schema=…``),
both taking instructions and dispatching, killed in turn. A load generator offers instructions with client
retries on the same Idempotency-Key while the gateway is killed with SIGKILL at random
moments and restarted. CI runs it small (``KILL9_COUNT``/``KILL9_KILLS``, defaults 300
and 4; every payment final within ``KILL9_FINAL_SECONDS``, default 45, of the load's end);
the issue's full run (its target: final within 10 s of the last restart):

    KILL9_COUNT=3000 KILL9_KILLS=10 KILL9_FINAL_SECONDS=10 .venv/bin/pytest -q -s -m slow tests/e2e/test_kill9.py

On a shared 2-CPU machine the 10 s target is not met yet: settling, not recovery, is
the bottleneck (a killed process's claims are taken over as the restart begins, see
``gateway.store.processes``); the figures are printed with ``-s``.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import select, text

from gateway.finance.books import trial_balance
from gateway.store.db import create_engine
from gateway.store.migrate import upgrade
from gateway.store.tables import instruction_events, instructions
from tests.support import BACKENDS, PG_URL, example_instruction

pytestmark = pytest.mark.slow

COUNT = int(os.environ.get("KILL9_COUNT", "300"))
FINAL_WITHIN = float(os.environ.get("KILL9_FINAL_SECONDS", "45"))
KILLS = int(os.environ.get("KILL9_KILLS", "4"))
CLIENTS = 16
GATEWAY = str(Path(sys.executable).with_name("gateway"))
FINAL = {"settled", "rejected", "failed", "returned", "cancelled"}
BANK_SECRETS = {
    "request_secret": "test-only-bank-request-secret",
    "callback_secret": "test-only-bank-callback-secret",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_config(tmp: Path, db_url: str, port: int, bank_port: int) -> Path:
    config = tmp / "gateway.yaml"
    config.write_text(
        f"""
security:
  encryption_keys: "test:dGVzdC1vbmx5LWluc2VjdXJlLWtleS0zMi1ieXRlcyE="
database: {{url: "{db_url}"}}
server: {{host: 127.0.0.1, port: {port}, public_url: "http://127.0.0.1:{port}"}}
ledger: {{enabled: true}}
dispatch: {{heartbeat_seconds: 0.5, dead_after_seconds: 3, status_poll_interval_seconds: 1,
            status_poll_after_seconds: 2}}
partners:
  iso20022_bank:
    base_url: "http://127.0.0.1:{bank_port}"
    request_secret: {BANK_SECRETS["request_secret"]}
    callback_secret: {BANK_SECRETS["callback_secret"]}
    currencies: [EUR]
simulators:
  iso20022_bank:
    host: 127.0.0.1
    port: {bank_port}
    request_secret: {BANK_SECRETS["request_secret"]}
    callback_secret: {BANK_SECRETS["callback_secret"]}
    callback_delay: 0.05
    settle_delay: 0.2
""",
        encoding="utf-8",
    )
    return config


def spawn(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


async def wait_listening(port: int, timeout: float = 20.0) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return time.monotonic() - started
        except OSError:
            await asyncio.sleep(0.05)
    raise AssertionError(f"nothing listening on port {port} after {timeout} s")


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            # each was started in a session of its own: its group holds any worker it started too
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.fixture(params=BACKENDS)
async def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    """A SQLite file, or a PostgreSQL schema of its own named in the URL (``gateway serve`` takes only a URL)."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'gateway.db'}"
        return
    assert PG_URL is not None
    schema = f"k9_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_URL)
    async with admin.begin() as conn:
        await conn.execute(text(f"CREATE SCHEMA {schema}"))
    sep = "&" if "?" in PG_URL else "?"
    try:
        yield f"{PG_URL}{sep}schema={schema}"
    finally:
        async with admin.begin() as conn:  # the gateways are killed by now (`processes` ends first)
            await conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        await admin.dispose()


async def test_kill9_under_load_loses_nothing_and_pays_once(
    tmp_path: Path, db_url: str, processes: list[subprocess.Popen[bytes]]
) -> None:
    engine = create_engine(db_url)
    await upgrade(engine)
    # PostgreSQL: two gateways share the database, both taking instructions and dispatching
    ports = [free_port() for _ in range(1 if db_url.startswith("sqlite") else 2)]
    bank_port = free_port()
    configs = []
    for i, port in enumerate(ports):
        (tmp_path / f"g{i}").mkdir()
        configs.append(write_config(tmp_path / f"g{i}", db_url, port, bank_port))
    config = configs[0]
    log = tmp_path / "processes.log"
    key = subprocess.run(
        [GATEWAY, "--config", str(config), "keys", "create", "--business-unit", "kill9"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    processes.append(spawn([GATEWAY, "--config", str(config), "simulate", "iso20022_bank"], log))
    await wait_listening(bank_port)
    gateway = [spawn([GATEWAY, "--config", str(c), "serve"], log) for c in configs]
    processes.extend(gateway)
    for port in ports:
        await wait_listening(port)

    accepted: dict[str, str] = {}  # idempotency key -> instruction id, from 202s only
    bodies = [(str(uuid.uuid4()), example_instruction()) for _ in range(COUNT)]
    queue: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue()
    for item in bodies:
        queue.put_nowait(item)

    async def client(session: aiohttp.ClientSession, n: int) -> None:
        port = ports[n % len(ports)]
        while not queue.empty():
            idem, body = queue.get_nowait()
            while True:  # a client retries on the same Idempotency-Key until it has its answer
                try:
                    async with session.post(
                        f"http://127.0.0.1:{port}/v1/instructions",
                        json=body,
                        headers={"Authorization": f"Bearer {key}", "Idempotency-Key": idem},
                    ) as resp:
                        if resp.status in (200, 201, 202):
                            accepted[idem] = (await resp.json())["id"]
                            break
                        assert resp.status in (429, 503), (resp.status, await resp.text())
                except (TimeoutError, aiohttp.ClientError, ConnectionError):
                    pass
                await asyncio.sleep(0.05)

    rng = random.Random(os.environ.get("KILL9_SEED", "18"))
    restarts: list[float] = []

    async def killer() -> None:
        for _ in range(KILLS):
            await asyncio.sleep(rng.uniform(0.3, 2.0))
            victim = rng.randrange(len(ports))  # two processes: a kill leaves the other one working
            gateway[victim].send_signal(signal.SIGKILL)
            gateway[victim].wait()
            gateway[victim] = spawn([GATEWAY, "--config", str(configs[victim]), "serve"], log)
            processes.append(gateway[victim])
            restarts.append(await wait_listening(ports[victim]))

    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        await asyncio.gather(killer(), *(client(session, n) for n in range(CLIENTS)))
    load_end = time.monotonic()
    assert len(restarts) == KILLS

    # zero lost: every 202 is known, once
    assert len(accepted) == COUNT
    assert len(set(accepted.values())) == COUNT
    # zero stuck: all terminal within a bound
    deadline = load_end + FINAL_WITHIN
    async with engine.connect() as conn:
        while True:
            rows = {r.id: r.status for r in await conn.execute(select(instructions.c.id, instructions.c.status))}
            open_ = [i for i, s in rows.items() if s not in FINAL]
            if not open_ or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.2)
            await conn.rollback()
    assert set(accepted.values()) <= set(rows)
    drained = time.monotonic() - load_end
    assert open_ == [], f"{len(open_)} not final {FINAL_WITHIN} s after the load, e.g. {open_[:3]}"
    assert set(rows.values()) == {"settled"}
    # zero paid twice: the bank's own journal
    async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{bank_port}/_sim/payments") as r:
        payments = await r.json()
    payments = payments["payments"] if isinstance(payments, dict) else payments
    paid = [p["instruction_id"] for p in payments]
    assert len(paid) == COUNT and set(paid) == set(accepted.values())
    # every history shows each state it passed through
    async with engine.connect() as conn:
        histories: dict[str, list[str]] = {}
        for r in await conn.execute(
            select(instruction_events.c.instruction_id, instruction_events.c.status, instruction_events.c.applied)
            .where(instruction_events.c.applied.is_(True))
            .order_by(instruction_events.c.instruction_id, instruction_events.c.sequence)
        ):
            histories.setdefault(r.instruction_id, []).append(r.status)
        wrong = {i: h for i, h in histories.items() if h != ["received", "accepted", "routed", "submitted", "settled"]}
        assert wrong == {}
        # the ledger balanced: every currency's trial balance sums to zero
        balances = await trial_balance(conn, datetime.now(UTC))
        assert balances, "the ledger recorded nothing"
        for currency, rows_ in balances.items():
            assert sum(b.debits - b.credits for b in rows_) == 0, currency
    await engine.dispose()
    print(
        f"\nkill9 ({len(ports)} process(es), {db_url.split(':')[0]}): {COUNT} instructions, {KILLS} kills; "
        f"restarts listening after {max(restarts):.2f} s at most; "
        f"all final {drained:.1f} s after the load ended"
    )
