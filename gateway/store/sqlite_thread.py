"""Run a whole unit of SQL work in the SQLite driver's own thread, in one hop.

aiosqlite runs every statement in a worker thread and hands the result back to
the event loop: one thread hop per statement, and each hop waits for the loop's
current turn. Under load a turn is long (dozens of requests are parsed in it),
so a transaction of eight statements waits eight turns while it holds the only
connection. ``in_sqlite_thread`` instead runs a plain function with the
``sqlite3`` connection in that thread: all its statements in one hop. The work
stays inside the caller's SQLAlchemy transaction (Python's ``sqlite3`` opens the
transaction implicitly before the first write; SQLAlchemy commits or rolls it
back as usual).

It needs aiosqlite's ``Connection._execute`` and ``_conn`` (stable since
aiosqlite 0.12, still there in 0.22). Where they are missing (another driver, a
future aiosqlite) ``sqlite_thread`` answers ``None`` and callers take their
statement-by-statement path, which tests also cover.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncConnection

__all__ = ["SQLiteThread", "sqlite_thread"]

T = TypeVar("T")


class SQLiteThread:
    """The aiosqlite worker thread behind one pooled connection."""

    def __init__(self, driver: Any) -> None:
        self._driver = driver

    async def run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """``work(sqlite3_connection)`` in the connection's thread; its result (or exception) comes back."""
        driver = self._driver
        result: T = await driver._execute(lambda: work(driver._conn))
        return result


async def sqlite_thread(conn: AsyncConnection, *, enabled: bool = True) -> SQLiteThread | None:
    """The one-hop runner for ``conn``, or ``None`` (not SQLite via aiosqlite, or ``enabled`` false)."""
    if not enabled or conn.dialect.name != "sqlite":
        return None
    driver = (await conn.get_raw_connection()).driver_connection
    runs = callable(getattr(driver, "_execute", None))
    if not (runs and isinstance(getattr(driver, "_conn", None), sqlite3.Connection)):
        return None
    return SQLiteThread(driver)
