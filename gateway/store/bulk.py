"""Driver-level SQL without per-row ORM/Core overhead, for the hot paths (group commit, risk screening).

SQLAlchemy Core spends most of an ``executemany`` on per-row parameter
processing (type adapters, bind processors, cache keys), and a few tenths of a
millisecond per statement on compiling and result processing. Here each table
gets, once per dialect, a plain statement and one converter per column that
turns a Python value into exactly what SQLAlchemy itself would have sent (and,
reading, one that turns what the driver returns into what SQLAlchemy would have
returned); the rows go to the driver as tuples. This module is the one place
that knows the storage format: SQLite keeps UTC datetimes as
``'YYYY-MM-DD HH:MM:SS.ffffff'`` text, JSON as text, booleans as integers;
asyncpg takes and gives datetimes and (through SQLAlchemy's codec) JSON values.
Tests write and read the same rows both ways, on SQLite and PostgreSQL.
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

__all__ = [
    "Converter",
    "bind_converter",
    "fetch_rows",
    "insert_rows",
    "insert_statement",
    "placeholders",
    "result_values",
    "upsert_rows",
]

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


# -- reading: what the driver returns → what SQLAlchemy would have returned --------------------


def _sqlite_datetime_out(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value).replace(tzinfo=UTC)


def _pg_datetime_out(value: datetime | None) -> datetime | None:
    # as UTCDateTime.process_result_value: aware, in UTC, whatever the session's time zone
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _json_out(value: str | None) -> Any:
    return None if value is None else json.loads(value)


def _sqlite_date_out(value: str | None) -> date | None:
    return None if value is None else date.fromisoformat(value)


def _sqlite_bool_out(value: int | None) -> bool | None:
    return None if value is None else bool(value)


def _result_converter(column: Column[Any], dialect: Dialect) -> Converter:
    sqlite = dialect.name == "sqlite"
    kind = column.type
    if isinstance(kind, UTCDateTime):
        return _sqlite_datetime_out if sqlite else _pg_datetime_out
    if isinstance(kind, JSON):
        # SQLite returns the text; SQLAlchemy's asyncpg dialect registers a codec that decodes JSON
        return _json_out if sqlite else _identity
    if isinstance(kind, Date):
        return _sqlite_date_out if sqlite else _identity
    if isinstance(kind, Boolean):
        return _sqlite_bool_out if sqlite else _identity
    return _identity


@lru_cache(maxsize=128)
def bind_converter(column: Column[Any], dialect: Dialect) -> Converter:
    """What a value of ``column`` is sent to the driver as (for parameters of hand-written SQL)."""
    return _converter(column, dialect)


@lru_cache(maxsize=128)
def _result_plan(table: Table, columns: tuple[str, ...], dialect: Dialect) -> tuple[tuple[int, Converter], ...]:
    converters = ((i, _result_converter(table.c[name], dialect)) for i, name in enumerate(columns))
    return tuple((i, conv) for i, conv in converters if conv is not _identity)


async def fetch_rows(
    conn: AsyncConnection, sql: str, params: Sequence[Any], table: Table, columns: tuple[str, ...]
) -> list[Any]:
    """Rows of a driver-level ``SELECT`` of ``columns`` of ``table`` (in that order), valued as Core would value them.

    ``sql`` uses the driver's parameter markers (``placeholders``); rows come back
    as tuples (or row objects) indexed like ``columns``.
    """
    rows: list[Any] = list((await conn.exec_driver_sql(sql, tuple(params))).all())
    return result_values(rows, table, columns, conn.dialect)


def result_values(rows: Sequence[Any], table: Table, columns: tuple[str, ...], dialect: Dialect) -> list[Any]:
    """Driver rows of ``columns`` of ``table`` valued as Core would value them (see ``fetch_rows``)."""
    plan = _result_plan(table, columns, dialect)
    if not plan:
        return list(rows)
    out = []
    for row in rows:
        values = list(row)
        for i, conv in plan:
            values[i] = conv(values[i])
        out.append(values)
    return out


def placeholders(dialect: Dialect, count: int, start: int = 1) -> str:
    """``count`` comma-separated parameter markers in the driver's style (``$n`` numbered from ``start``)."""
    if dialect.paramstyle == "qmark":
        return ", ".join("?" * count)
    if dialect.paramstyle == "numeric_dollar":
        return ", ".join(f"${i}" for i in range(start, start + count))
    if dialect.paramstyle == "format":
        return ", ".join(["%s"] * count)
    raise NotImplementedError(f"paramstyle {dialect.paramstyle}")


# -- writing ------------------------------------------------------------------------------------


@lru_cache(maxsize=64)
def _plan(table: Table, columns: tuple[str, ...], dialect: Dialect) -> tuple[str, tuple[Converter, ...]]:
    cols = [table.c[name] for name in columns]
    quote = dialect.identifier_preparer.quote
    sql = (
        f"INSERT INTO {quote(table.name)} ({', '.join(quote(c.name) for c in cols)}) "
        f"VALUES ({placeholders(dialect, len(cols))})"
    )
    return sql, tuple(_converter(c, dialect) for c in cols)


@lru_cache(maxsize=64)
def _upsert_plan(
    table: Table,
    columns: tuple[str, ...],
    keys: tuple[str, ...],
    add: frozenset[str],
    keep: frozenset[str],
    dialect: Dialect,
) -> tuple[str, tuple[Converter, ...]]:
    insert, converters = _plan(table, columns, dialect)
    quote = dialect.identifier_preparer.quote
    name = quote(table.name)
    sets = []
    for column in columns:
        if column in keys or column in keep:
            continue
        q = quote(column)
        sets.append(f"{q} = ({name}.{q} + excluded.{q})" if column in add else f"{q} = excluded.{q}")
    conflict = ", ".join(quote(k) for k in keys)
    action = f"DO UPDATE SET {', '.join(sets)}" if sets else "DO NOTHING"
    return f"{insert} ON CONFLICT ({conflict}) {action}", converters


def _params(converters: Sequence[Converter], columns: Sequence[str], rows: Sequence[Mapping[str, Any]]) -> list[tuple]:
    return [tuple(conv(row[name]) for conv, name in zip(converters, columns, strict=True)) for row in rows]


async def insert_rows(conn: AsyncConnection, table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert ``rows`` (dicts keyed by column name, all with the same keys) in one ``executemany``."""
    if not rows:
        return
    await conn.exec_driver_sql(*insert_statement(table, rows, conn.dialect))


def insert_statement(table: Table, rows: Sequence[Mapping[str, Any]], dialect: Dialect) -> tuple[str, list[tuple]]:
    """The driver-level ``INSERT`` that ``insert_rows`` sends, and its parameter tuples (``rows`` not empty)."""
    columns = tuple(rows[0])
    sql, converters = _plan(table, columns, dialect)
    return sql, _params(converters, columns, rows)


async def upsert_rows(
    conn: AsyncConnection,
    table: Table,
    rows: Sequence[Mapping[str, Any]],
    keys: Sequence[str],
    *,
    add: Sequence[str] = (),
    keep: Sequence[str] = (),
) -> None:
    """``INSERT … ON CONFLICT (keys) DO UPDATE`` as one ``executemany`` (SQLite and PostgreSQL alike).

    Columns in ``add`` are incremented by the new row's value (atomically, in
    SQL), columns in ``keep`` keep the stored value, every other column takes
    the new value. ``rows`` are dicts keyed by column name, all with the same keys.
    """
    if not rows:
        return
    columns = tuple(rows[0])
    sql, converters = _upsert_plan(table, columns, tuple(keys), frozenset(add), frozenset(keep), conn.dialect)
    await conn.exec_driver_sql(sql, _params(converters, columns, rows))
