"""Engine creation: SQLite file by default, PostgreSQL (asyncpg) when the URL says so."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from gateway.errors import ConfigError

__all__ = ["create_engine"]

_SCHEMA = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets readers run beside the writer; synchronous=FULL makes a commit
    # survive power loss, which is what "202 means durable" promises.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def create_engine(url: str, *, echo: bool = False, schema: str | None = None) -> AsyncEngine:
    """An async engine for ``url``; ``schema`` pins PostgreSQL's search_path (tests isolate by schema).

    A PostgreSQL URL may name the schema itself (``…/gateway?schema=gw_a``), so a ``gateway serve``
    process, configured by URL alone, can share a database with others in a schema of its own.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if "schema" in parsed.query:
            raise ConfigError("?schema= is for PostgreSQL only: a SQLite file is a database of its own")
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        # One connection: SQLite has one writer anyway, and serialising in the
        # pool (never across network calls) avoids SQLITE_BUSY entirely.
        engine = create_async_engine(url, echo=echo, pool_size=1, max_overflow=0, pool_timeout=60)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    if "schema" in parsed.query:
        named = parsed.query["schema"]
        schema = schema or (named if isinstance(named, str) else named[-1])
        parsed = parsed.difference_update_query(["schema"])
    if schema is not None and not _SCHEMA.fullmatch(schema):
        raise ConfigError(f"database schema {schema!r}: use lower-case letters, digits and _ only")
    connect_args: dict[str, Any] = {}
    if schema:
        connect_args["server_settings"] = {"search_path": schema}
    return create_async_engine(
        parsed, echo=echo, pool_size=10, max_overflow=10, pool_pre_ping=True, connect_args=connect_args
    )
