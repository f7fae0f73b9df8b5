"""Test support: databases, live gateways and simulators on loopback, sample instructions.

Imported as ``tests.support``; the fixtures that use it are in ``conftest.py``.
"""

from __future__ import annotations

import asyncio
import copy
import importlib.util
import itertools
import os
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from types import ModuleType
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.api.server import RunningApp, bind, start_app
from gateway.config import Settings, load_settings
from gateway.contracts.registry import contracts
from gateway.contracts.versions import parse_as_latest
from gateway.devtools.simulators import start_simulators
from gateway.domain.clock import system_clock
from gateway.domain.ids import new_id
from gateway.domain.instruction import parse_instruction
from gateway.domain.money import minor_units
from gateway.domain.status import TERMINAL, Decision, Status
from gateway.plugins.manager import Plugins
from gateway.risk.model import Candidate, Fingerprinter, normalise_name, normalise_text
from gateway.runtime import Runtime, create_app
from gateway.store import repo
from gateway.store.audit import seal_events
from gateway.store.codec import InstructionCodec
from gateway.store.db import create_engine
from gateway.store.encryption import FieldCipher, parse_key_ring
from gateway.store.tables import instruction_events, instructions

REPO = Path(__file__).resolve().parents[1]
PARTNER_FILES = REPO / "tests" / "data" / "partner-files"
PG_URL = os.environ.get("GATEWAY_TEST_DATABASE_URL")

#: statuses an instruction may rest in (as the API shows them)
FINAL = frozenset(status.value for status in TERMINAL)

BACKENDS = ["sqlite", *(["postgresql"] if PG_URL else [])]
#: the parameter of a test that only means something on PostgreSQL; without a server it is skipped, saying how to run it
POSTGRESQL_ONLY = pytest.param(
    "postgresql",
    marks=pytest.mark.skipif(
        not PG_URL,
        reason="PostgreSQL only: to run it, set GATEWAY_TEST_DATABASE_URL (e.g. postgresql+asyncpg://…/test)",
    ),
)


@dataclass
class Database:
    url: str
    schema: str | None

    def engine(self) -> AsyncEngine:
        return create_engine(self.url, schema=self.schema)


def make_settings(database: Database, **overrides: Any) -> Settings:
    base = load_settings(env={})
    overrides.setdefault("risk__file", None)  # risk screening only where a test asks for it
    return base.with_overrides(database__url=database.url, **overrides)


@dataclass
class LiveGateway:
    """A gateway (and its simulators) serving on loopback ports, with a client and a key."""

    url: str
    runtime: Runtime
    session: aiohttp.ClientSession
    key: str
    app: RunningApp
    simulators: dict[str, RunningApp]

    def headers(self, key: str | None = None, **extra: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {key or self.key}", **extra}

    async def post_instruction(
        self, body: Any, *, idempotency_key: str | None = None, key: str | None = None
    ) -> aiohttp.ClientResponse:
        headers = self.headers(key, **{"Idempotency-Key": idempotency_key or uuid.uuid4().hex})
        return await self.session.post(f"{self.url}/v1/instructions", json=body, headers=headers)

    async def get_instruction(self, instruction_id: str, key: str | None = None) -> dict[str, Any]:
        async with self.session.get(f"{self.url}/v1/instructions/{instruction_id}", headers=self.headers(key)) as resp:
            assert resp.status == 200, await resp.text()
            return await resp.json()

    async def wait_for(
        self,
        instruction_id: str,
        done: Callable[[dict[str, Any]], bool] | None = None,
        timeout: float = 15,
        every: float = 0.05,
    ) -> dict[str, Any]:
        """Poll the instruction until ``done(view)`` (default: a final status); fail with its history if stuck."""
        done = done or (lambda view: view["status"] in FINAL)
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            view = await self.get_instruction(instruction_id)
            if done(view):
                return view
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"instruction stuck: {view['status']} {[e['status'] for e in view['events']]}")
            await asyncio.sleep(every)

    async def new_key(self, business_unit: str, scopes: tuple[str, ...] = ("instructions",)) -> str:
        async with self.runtime.engine.begin() as conn:
            return await repo.create_api_key(conn, business_unit, scopes, system_clock())


async def start_gateway(
    database: Database,
    *,
    simulators: bool = True,
    dispatch: bool = True,
    poll: bool = True,
    sim_overrides: dict[str, Any] | None = None,
    extra_simulators: dict[str, dict[str, Any]] | None = None,
    extra_plugins: tuple[object, ...] = (),
    qa_console: bool = False,
    **overrides: Any,
) -> LiveGateway:
    """Start simulators (port 0) and a gateway wired to them; the caller must ``stop_gateway``.

    ``qa_console``: the gateway knows its simulators, as ``gateway serve --with-simulators`` does
    (development: the console's QA page drives them).
    """
    base = load_settings(env={})
    sims_cfg = {n: {**c, **(sim_overrides or {}).get(n, {})} for n, c in base.section("simulators").items()}
    if not simulators:
        sims_cfg = {}
    sims_cfg.update(extra_simulators or {})
    socks = {n: bind("127.0.0.1", 0) for n in sims_cfg}
    gw_sock = bind("127.0.0.1", 0)
    port = gw_sock.getsockname()[1]
    all_overrides: dict[str, Any] = {
        "database__url": database.url,
        "server__port": port,
        "dispatch__idle_poll_seconds": 0.05,
        "risk__file": None,  # risk screening only where a test asks for it (tests/risk)
        **overrides,
    }
    for name, sock in socks.items():
        all_overrides.setdefault(f"partners__{name}__base_url", f"http://127.0.0.1:{sock.getsockname()[1]}")
    settings = base.with_overrides(**all_overrides)
    if "ach_nacha" in settings.section("partners") and "partners__ach_nacha__spool_dir" not in overrides:
        # each test its own ACH spool, never the repo's var/
        settings = settings.with_overrides(partners__ach_nacha__spool_dir=tempfile.mkdtemp(prefix="ach-spool-"))
    for key in ("inbox_dir", "outbox_dir"):  # each test its own file folders, never the repo's var/
        if f"files__{key}" not in overrides:
            settings = settings.with_overrides(**{f"files__{key}": tempfile.mkdtemp(prefix=f"files-{key[:-4]}-")})
    if "reconciliation__inbox_dir" not in overrides:
        settings = settings.with_overrides(reconciliation__inbox_dir=tempfile.mkdtemp(prefix="statements-inbox-"))
    engine = database.engine()
    runtime = Runtime(settings, engine=engine, extra_plugins=extra_plugins)
    await runtime.start(dispatch=dispatch, poll=poll)
    sims = await start_simulators(Plugins(), sims_cfg, socks)
    dev = {name: sim.url for name, sim in sims.items()} if qa_console else None
    app = await start_app(create_app(settings, runtime=runtime, simulators=dev), gw_sock)
    session = aiohttp.ClientSession()
    async with engine.begin() as conn:
        key = await repo.create_api_key(conn, "erp-europe", ["instructions"], system_clock())
    return LiveGateway(f"http://127.0.0.1:{port}", runtime, session, key, app, sims)


async def stop_gateway(gw: LiveGateway) -> None:
    await gw.session.close()
    await gw.app.stop()
    for sim in gw.simulators.values():
        await sim.stop()
    await gw.runtime.close()
    await gw.runtime.engine.dispose()


def applied(view: dict[str, Any]) -> list[str]:
    """The statuses an instruction actually went through (ignored events left out)."""
    return [e["status"] for e in view["events"] if e["applied"]]


def example_instruction(**changes: Any) -> dict[str, Any]:
    """The contract's own example (instruction 1.0), with changes; a fresh reference each call."""
    body: dict[str, Any] = copy.deepcopy(contracts().schema("instruction", "1.0")["examples"][0])
    body["reference"] = f"INV-{uuid.uuid4().hex[:12].upper()}"
    body.update(changes)
    return body


def load_bench(name: str) -> ModuleType:
    """The benchmark script ``bench/<name>.py`` as a module (loaded once), for tests that run it small."""
    module_name = f"bench_{name}"
    found = sys.modules.get(module_name)
    if found is not None:
        return found
    spec = importlib.util.spec_from_file_location(module_name, REPO / "bench" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
#: rows written directly by tests (not through a gateway) are encrypted with this test-only key
TEST_CODEC = InstructionCodec(FieldCipher(parse_key_ring("t:" + "MTExMTExMTExMTExMTExMTExMTExMTExMTExMTExMTE=")))


async def insert_instruction(engine: AsyncEngine, business_unit: str = "erp", **changes: Any) -> str:
    """Store the example instruction (status received) directly, as intake would; returns its id."""
    data = parse_as_latest(contracts(), "instruction", "1.1", example_instruction(**changes), parse_instruction)
    instruction_id = new_id("ins")
    async with engine.begin() as conn:
        bu = await repo.ensure_business_unit(conn, business_unit, NOW)
        await conn.execute(instructions.insert().values(TEST_CODEC.new_row(instruction_id, bu, data, "1.1", NOW)))
        event = repo.event_row(
            instruction_id, 1, None, Status.RECEIVED, Decision(True, "applied"), source="api", occurred_at=NOW
        )
        await seal_events(conn, [event])  # linked into the audit chain, as intake links it
        await conn.execute(instruction_events.insert().values(event))
    return instruction_id


# -- risk screening ----------------------------------------------------------------

RISK_FP = Fingerprinter(b"k" * 32)
"""The fingerprint key of risk unit tests."""
RISK_T0 = datetime(2026, 3, 4, 10, 0, tzinfo=UTC)  # a Wednesday, 11:00 in Berlin
_RISK_IDS = itertools.count(1)


def risk_key(account: str) -> str:
    """The fingerprint of a wallet account (what candidates and the history hold)."""
    return RISK_FP.account({"wallet": account})


def candidate(
    amount: str = "100.00",
    *,
    currency: str = "EUR",
    at: datetime = RISK_T0,
    debtor: str = "our-account",
    creditor: str = "supplier-account",
    debtor_name: str = "Our Company AG",
    creditor_name: str = "Acme Supplies GmbH",
    remittance: str = "Invoice 4711",
    business_unit: str = "ops",
    instruction_id: str | None = None,
    creditor_account: Mapping[str, str] | None = None,
) -> Candidate:
    """A risk ``Candidate`` with wallet accounts (fingerprinted), normalised names and text."""
    value = Decimal(amount)
    return Candidate(
        instruction_id=instruction_id or f"ins-{next(_RISK_IDS)}",
        business_unit=business_unit,
        at=at,
        type="credit_transfer",
        currency=currency,
        amount=value,
        amount_minor=int(value.scaleb(minor_units(currency))),
        debtor_key=risk_key(debtor),
        creditor_key=RISK_FP.account(creditor_account) if creditor_account else risk_key(creditor),
        debtor_name=normalise_name(debtor_name),
        creditor_name=normalise_name(creditor_name),
        remittance=normalise_text(remittance),
        creditor_account=dict(creditor_account or {"wallet": creditor}),
    )


GATEWAY_CLI = [sys.executable, "-m", "gateway.cli"]


def run_cli(*args: str, config: Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """``gateway --config CONFIG ARGS…`` in a fresh process with a bare environment; its output captured."""
    cmd = [*GATEWAY_CLI, "--config", str(config), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, env={"PATH": "/usr/bin:/bin"}, cwd=cwd)


def cli_config(tmp_path: Path) -> Path:
    """A ``gateway.yaml`` on a new SQLite file in ``tmp_path``, upgraded by ``gateway db upgrade``."""
    path = tmp_path / "gateway.yaml"
    path.write_text(f"database:\n  url: sqlite+aiosqlite:///{tmp_path / 'cli.db'}\npartners: {{}}\nsimulators: {{}}\n")
    assert run_cli("db", "upgrade", config=path).returncode == 0
    return path


async def metric_total(url: str, sample: str, **labels: str) -> float:
    """The sum of ``sample``'s values on a gateway's ``/metrics`` (``url``: its base), over the series whose
    labels include ``labels`` (0 when there is none)."""
    async with aiohttp.ClientSession() as session, session.get(f"{url}/metrics") as resp:
        assert resp.status == 200, await resp.text()
        text = await resp.text()
    return sum(
        found.value
        for family in text_string_to_metric_families(text)
        for found in family.samples
        if found.name == sample and labels.items() <= found.labels.items()
    )
