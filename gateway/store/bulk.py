"""Bulk inserts without per-row ORM/Core overhead, for the group-commit hot paths.

SQLAlchemy Core spends most of an ``executemany`` on per-row parameter
processing (type adapters, bind processors, cache keys). Here each table gets,
once per dialect, a plain ``INSERT`` statement and one converter per column that
turns a Python value into exactly what SQLAlchemy itself would have sent; the
rows then go to the driver's ``executemany`` as tuples. A test writes the same
rows both ways, on SQLite and PostgreSQL, and reads them back through SQLAlchemy.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, date, datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import JSON, Boolean, Column, Date, Table
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.store.tables import UTCDateTime

__all__ = ["insert_rows"]

Converter = Callable[[Any], Any]


def _identity(value: Any) -> Any:
    return value


def _sqlite_datetime(value: datetime | None) -> str | None:
    # SQLAlchemy's SQLite DATETIME storage format, in UTC (as UTCDateTime binds it)
    if value is None:
        return None
    if value.tzinfo is None:
        raise ValueError("naive datetime given to a UTC column")
    if value.tzinfo is not UTC:
        value = value.astimezone(UTC)
    text = str(value.replace(tzinfo=None))  # C-speed; "%Y-%m-%d %H:%M:%S[.%f]"
    return text if value.microsecond else text + ".000000"


def _pg_datetime(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        raise ValueError("naive datetime given to a UTC column")
    return value.astimezone(UTC) if value is not None else None


def _sqlite_date(value: date | None) -> str | None:
    return value.isoformat() if value is not None else None


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value)


def _sqlite_bool(value: bool | None) -> int | None:
    return None if value is None else int(value)


def _converter(column: Column[Any], dialect: Dialect) -> Converter:
    sqlite = dialect.name == "sqlite"
    kind = column.type
    if isinstance(kind, UTCDateTime):
        return _sqlite_datetime if sqlite else _pg_datetime
    if isinstance(kind, JSON):
        return _json
    if isinstance(kind, Date):
        return _sqlite_date if sqlite else _identity
    if isinstance(kind, Boolean):
        return _sqlite_bool if sqlite else _identity
    return _identity


def _placeholders(dialect: Dialect, count: int) -> str:
    if dialect.paramstyle == "qmark":
        return ", ".join("?" * count)
    if dialect.paramstyle == "numeric_dollar":
        return ", ".join(f"${i}" for i in range(1, count + 1))
    if dialect.paramstyle == "format":
        return ", ".join(["%s"] * count)
    raise NotImplementedError(f"paramstyle {dialect.paramstyle}")


@lru_cache(maxsize=64)
def _plan(table: Table, columns: tuple[str, ...], dialect: Dialect) -> tuple[str, tuple[Converter, ...]]:
    cols = [table.c[name] for name in columns]
    quote = dialect.identifier_preparer.quote
    sql = (
        f"INSERT INTO {quote(table.name)} ({', '.join(quote(c.name) for c in cols)}) "
        f"VALUES ({_placeholders(dialect, len(cols))})"
    )
    return sql, tuple(_converter(c, dialect) for c in cols)


async def insert_rows(conn: AsyncConnection, table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert ``rows`` (dicts keyed by column name, all with the same keys) in one ``executemany``."""
    if not rows:
        return
    columns = tuple(rows[0])
    sql, converters = _plan(table, columns, conn.dialect)
    params = [tuple(conv(row[name]) for conv, name in zip(converters, columns, strict=True)) for row in rows]
    await conn.exec_driver_sql(sql, params)
