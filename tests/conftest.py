"""Shared fixtures: real components only (SQLite files, PostgreSQL, simulators on loopback).

Store and end-to-end tests take the ``database`` fixture, which runs them on a
fresh SQLite file and, when ``GATEWAY_TEST_DATABASE_URL`` is set (CI sets it),
again on PostgreSQL in a schema of their own. A PostgreSQL that is configured
but unreachable fails those tests; nothing is skipped silently.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import uuid
import warnings
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.store.db import create_engine
from gateway.store.migrate import upgrade
from tests.support import BACKENDS, PARTNER_FILES, PG_URL, Database, LiveGateway, start_gateway, stop_gateway

# the simulators' fixtures (sim_probe, scenario_file, partner_simulator), as a QA team would load them
pytest_plugins = ["gateway_simulators.pytest_plugin"]


@pytest.fixture(scope="session")
def partner_files() -> Path:
    """Real partner files written by others (tests/data/partner-files, see its SOURCES.md)."""
    if not PARTNER_FILES.is_dir():
        pytest.fail(f"partner sample files not found at {PARTNER_FILES}")
    return PARTNER_FILES


async def _drop_schema(schema: str) -> None:
    """Drop a test's schema; a connection the test leaked (holding locks) is ended first, with a warning."""
    admin = create_engine(PG_URL or "")
    try:
        try:
            async with admin.begin() as conn:
                await conn.execute(text("SET LOCAL lock_timeout = '10s'"))
                await conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
            return
        except DBAPIError:
            warnings.warn(f"schema {schema} was locked by a leftover connection; ending it", stacklevel=1)
        async with admin.begin() as conn:
            await conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend'"
                )
            )
        async with admin.begin() as conn:
            await conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
    finally:
        await admin.dispose()


@pytest.fixture(params=BACKENDS)
async def database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    """A migrated, empty database: a SQLite file, or a PostgreSQL schema of its own."""
    if request.param == "sqlite":
        db = Database(f"sqlite+aiosqlite:///{tmp_path / 'gateway.db'}", None)
    else:
        assert PG_URL is not None
        db = Database(PG_URL, f"t_{uuid.uuid4().hex[:12]}")
        admin = create_engine(PG_URL)
        async with admin.begin() as conn:
            await conn.execute(text(f"CREATE SCHEMA {db.schema}"))
        await admin.dispose()
    engine = db.engine()
    await upgrade(engine)
    await engine.dispose()
    try:
        yield db
    finally:
        if db.schema:
            await _drop_schema(db.schema)


@pytest.fixture
async def engine(database: Database) -> AsyncIterator[AsyncEngine]:
    eng = database.engine()
    try:
        yield eng
    finally:
        await eng.dispose()


@pytest.fixture
async def gateway(database: Database) -> AsyncIterator[LiveGateway]:
    """Gateway + bundled simulators on loopback, on each backend."""
    gw = await start_gateway(database)
    try:
        yield gw
    finally:
        await stop_gateway(gw)


@pytest.fixture
async def intake_gateway(database: Database) -> AsyncIterator[LiveGateway]:
    """Gateway with no partners and no dispatcher: for intake and API-error tests."""
    gw = await start_gateway(database, simulators=False, dispatch=False, poll=False, partners={})
    try:
        yield gw
    finally:
        await stop_gateway(gw)


# -- NATS JetStream (event sinks) -------------------------------------------------------------

NATS_URL = os.environ.get("GATEWAY_TEST_NATS_URL", "nats://127.0.0.1:4222")


def _answers(url: str) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 4222), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def nats_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A reachable NATS server with JetStream: the configured one, or one started here."""
    if _answers(NATS_URL):
        yield NATS_URL
        return
    binary = shutil.which("nats-server")
    if binary is None:
        pytest.fail(f"no NATS server at {NATS_URL} and no nats-server on the PATH to start one")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    store = tmp_path_factory.mktemp("nats")
    proc = subprocess.Popen([binary, "-js", "-a", "127.0.0.1", "-p", str(port), "-sd", str(store)])
    url = f"nats://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 10
        while not _answers(url):
            if time.monotonic() > deadline:
                pytest.fail(f"nats-server did not start on {url}")
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(10)
