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

``fetch_all`` answers several queries in one round trip (SQLite: one trip to
the driver's thread, ``sqlite_thread``; PostgreSQL: one statement), and
``execute_all`` sends several statements in one trip to SQLite's thread.
``run_queries`` and ``run_statements`` are what those trips run, for callers
that put more work into the same trip (risk screening runs a whole batch in one).
``select_rows`` hands the rows of a Core query, as the driver returns them, to a
builder that runs in SQLite's thread over the cursor (reconciliation reads a
million open lines and payments this way).
``write_all`` sends several tables' inserts and upserts (``Write``) in one
round trip on PostgreSQL too: one statement of data-modifying CTEs, each
inserting from ``unnest`` of one array per column.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import lru_cache
from operator import itemgetter
from typing import Any, TypeVar

from sqlalchemy import JSON, Boolean, Column, Date, Select, Table
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.store.sqlite_thread import sqlite_thread
from gateway.store.tables import UTCDateTime

__all__ = [
    "Converter",
    "JSONText",
    "Query",
    "Statement",
    "Write",
    "bind_converter",
    "execute_all",
    "fetch_all",
    "fetch_rows",
    "insert_rows",
    "insert_statement",
    "insert_values",
    "placeholders",
    "result_values",
    "run_queries",
    "run_statements",
    "select_rows",
    "upsert_statement",
    "write_all",
]

Converter = Callable[[Any], Any]
T = TypeVar("T")
#: a driver-level statement and its parameter tuples, sent as one ``executemany``
Statement = tuple[str, list[tuple]]


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
    return value.isoformat(" ", "microseconds")[:26]  # C-speed; "%Y-%m-%d %H:%M:%S.%f", the offset cut off


def _pg_datetime(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        raise ValueError("naive datetime given to a UTC column")
    return value.astimezone(UTC) if value is not None else None


def _sqlite_date(value: date | None) -> str | None:
    return value.isoformat() if value is not None else None


class JSONText(str):
    """A value already encoded (``json.dumps``): a JSON column stores this text as it is, not encoded again."""

    __slots__ = ()

    @classmethod
    def of(cls, value: Any) -> JSONText:
        return cls(json.dumps(value))


def _json(value: Any) -> str | None:
    if value is None:
        return None
    return str(value) if type(value) is JSONText else json.dumps(value)


def _sqlite_bool(value: bool | None) -> int | None:
    return None if value is None else int(value)


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


#: per column type: (sent to SQLite, sent to asyncpg, read from SQLite, read from asyncpg); other types pass as they are
_CODECS: tuple[tuple[type, Converter, Converter, Converter, Converter], ...] = (
    (UTCDateTime, _sqlite_datetime, _pg_datetime, _sqlite_datetime_out, _pg_datetime_out),
    # SQLite returns the text; SQLAlchemy's asyncpg dialect registers a codec that decodes JSON
    (JSON, _json, _json, _json_out, _identity),
    (Date, _sqlite_date, _identity, _sqlite_date_out, _identity),
    (Boolean, _sqlite_bool, _identity, _sqlite_bool_out, _identity),
)


def _codec(column: Column[Any], dialect: Dialect, reading: bool) -> Converter:
    for kind, *converters in _CODECS:
        if isinstance(column.type, kind):
            return converters[2 * reading + (dialect.name != "sqlite")]
    return _identity


def _converter(column: Column[Any], dialect: Dialect) -> Converter:
    return _codec(column, dialect, reading=False)


def _result_converter(column: Column[Any], dialect: Dialect) -> Converter:
    return _codec(column, dialect, reading=True)


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


@dataclass(frozen=True, slots=True)
class Query:
    """A driver-level ``SELECT columns FROM table condition`` whose rows come back valued as ``fetch_rows`` values them.

    ``condition`` is the rest of the statement (``WHERE …``, ``ORDER BY …``) with
    parameter markers from ``placeholders``, numbered from 1.
    """

    table: Table
    columns: tuple[str, ...]
    condition: str
    params: Sequence[Any]

    def sql(self, dialect: Dialect) -> str:
        return _query_sql(self.table, self.columns, self.condition, dialect)


@lru_cache(maxsize=256)
def _query_sql(table: Table, columns: tuple[str, ...], condition: str, dialect: Dialect, row: bool = False) -> str:
    quote = dialect.identifier_preparer.quote
    listed = ", ".join(quote(c) for c in columns)
    return f"SELECT {f'ROW({listed})' if row else listed} FROM {quote(table.name)} {condition}"


_MARKER = re.compile(r"\$(\d+)")


@lru_cache(maxsize=256)
def _combined_sql(dialect: Dialect, parts: tuple[tuple[Table, tuple[str, ...], str, int], ...]) -> str:
    """One PostgreSQL statement answering several queries: a column per query, holding its rows as an array."""
    arrays, offset = [], 0
    for table, columns, condition, count in parts:
        renumbered = _MARKER.sub(lambda m, shift=offset: f"${int(m.group(1)) + shift}", condition)  # numbered on
        arrays.append(f"ARRAY({_query_sql(table, columns, renumbered, dialect, row=True)})")
        offset += count
    return f"SELECT {', '.join(arrays)}"


async def fetch_all(conn: AsyncConnection, queries: Sequence[Query], *, one_hop: bool = True) -> list[list[Any]]:
    """Each query's rows, valued as ``fetch_rows`` values them; with ``one_hop``, all queries in one round trip.

    SQLite (aiosqlite): the queries run one after the other in one trip to the
    driver's thread. PostgreSQL: one statement with one array of row values
    per query (``ARRAY(SELECT ROW(…) …)``; order kept, as each subquery orders
    it). Otherwise, or without ``one_hop``: one ``fetch_rows`` per query.
    """
    if not queries:
        return []
    dialect = conn.dialect
    if one_hop and len(queries) > 1 and dialect.name == "postgresql":
        sql = _combined_sql(dialect, tuple((q.table, q.columns, q.condition, len(q.params)) for q in queries))
        params = tuple(p for q in queries for p in q.params)
        arrays = (await conn.exec_driver_sql(sql, params)).one()
        return [result_values(rows, q.table, q.columns, dialect) for q, rows in zip(queries, arrays, strict=True)]
    thread = await sqlite_thread(conn, enabled=one_hop)
    if thread is None:
        return [await fetch_rows(conn, q.sql(dialect), q.params, q.table, q.columns) for q in queries]
    return await thread.run(lambda db: run_queries(db, queries, dialect))


async def select_rows(conn: AsyncConnection, query: Select[Any], build: Callable[[Iterable[Sequence[Any]]], T]) -> T:
    """``build`` of the rows of a Core ``query`` as the driver returns them, with no per-row result processing.

    SQLite (aiosqlite): ``build`` runs in the driver's thread, in one hop, over the cursor itself, so each row is
    a plain tuple freed once ``build`` has taken what it needs (a million rows are never all held). Otherwise
    ``build`` gets Core's rows (asyncpg's values). The query's columns must be of types whose values need no
    processing on either (integers, text; ``type_coerce`` a day or a time to ``String`` and convert it in
    ``build``), and its parameters no bind processing (integers, text).
    """
    thread = await sqlite_thread(conn)
    if thread is None:
        return build((await conn.execute(query)).all())
    compiled = query.compile(dialect=conn.dialect, compile_kwargs={"render_postcompile": True})
    sql, params = str(compiled), tuple(compiled.params[name] for name in compiled.positiontup or ())
    return await thread.run(lambda db: build(db.execute(sql, params)))


def run_queries(db: sqlite3.Connection, queries: Sequence[Query], dialect: Dialect) -> list[list[Any]]:
    """``fetch_all`` inside SQLite's thread (``SQLiteThread.run``): each query's rows, valued as ``fetch_rows`` does."""
    raw = [db.execute(q.sql(dialect), q.params).fetchall() for q in queries]
    return [result_values(rows, q.table, q.columns, dialect) for q, rows in zip(queries, raw, strict=True)]


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
    return f"{insert} {_on_conflict(table, columns, keys, add, keep, dialect)}", converters


def _on_conflict(
    table: Table,
    columns: tuple[str, ...],
    keys: tuple[str, ...],
    add: frozenset[str],
    keep: frozenset[str],
    dialect: Dialect,
) -> str:
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
    return f"ON CONFLICT ({conflict}) {action}"


def _params(converters: Sequence[Converter], columns: Sequence[str], rows: Sequence[Mapping[str, Any]]) -> list[tuple]:
    """``rows`` as parameter tuples in ``columns`` order, each value through its column's converter.

    Values are picked in C (``itemgetter``); only the columns whose converter does something are
    converted, column by column, and a value that is the very object of the row before (a batch's
    ``created_at``, ``None``) is converted once.
    """
    if not rows:
        return []
    get = itemgetter(*columns)
    values = [get(row) for row in rows] if len(columns) > 1 else [(get(row),) for row in rows]
    converting = [(i, conv) for i, conv in enumerate(converters) if conv is not _identity]
    if not converting:
        return values
    by_column = list(zip(*values, strict=True))
    for i, conv in converting:
        by_column[i] = _converted(conv, by_column[i])
    return list(zip(*by_column, strict=True))


def _tuple_columns(converters: Sequence[Converter], rows: Sequence[Sequence[Any]]) -> list[list[Any]]:
    """Rows given as tuples (in the converters' column order) as one converted list per column."""
    by_column = [list(column) for column in zip(*rows, strict=True)]
    for i, conv in enumerate(converters):
        if conv is not _identity:
            by_column[i] = _converted(conv, by_column[i])
    return by_column


_UNSEEN = object()


def _converted(conv: Converter, column: Sequence[Any]) -> list[Any]:
    if conv is _json:
        return _json_column(column)
    out = []
    last, converted = _UNSEEN, None
    for value in column:
        if value is not last:
            last, converted = value, conv(value)
        out.append(converted)
    return out


def _json_column(column: Sequence[Any]) -> list[Any]:
    """A JSON column's values as text, each distinct object encoded once (rows often share one, not in a row)."""
    out = []
    encoded: dict[int, Any] = {}  # id → text; the values stay alive in ``column`` meanwhile
    for value in column:
        text = encoded.get(id(value))
        if text is None:
            text = encoded[id(value)] = _json(value)
        out.append(text)
    return out


async def insert_rows(conn: AsyncConnection, table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert ``rows`` (dicts keyed by column name, all with the same keys) in one ``executemany``."""
    if not rows:
        return
    await conn.exec_driver_sql(*insert_statement(table, rows, conn.dialect))


async def insert_values(
    conn: AsyncConnection, table: Table, columns: tuple[str, ...], values: Sequence[tuple[Any, ...]]
) -> None:
    """Insert rows given as the driver takes them (``bind_converter`` of each column applied), in one ``executemany``.

    For callers that convert where the rows are built (the history import's checking process).
    """
    if not values:
        return
    sql, _ = _plan(table, columns, conn.dialect)
    await conn.exec_driver_sql(sql, list(values))


def insert_statement(table: Table, rows: Sequence[Mapping[str, Any]], dialect: Dialect) -> Statement:
    """The driver-level ``INSERT`` that ``insert_rows`` sends, and its parameter tuples (``rows`` not empty)."""
    columns = tuple(rows[0])
    sql, converters = _plan(table, columns, dialect)
    return sql, _params(converters, columns, rows)


async def execute_all(conn: AsyncConnection, statements: Sequence[Statement], *, one_hop: bool = True) -> None:
    """Each statement as one ``executemany``, in order; on SQLite all of them in one hop (``one_hop``)."""
    if not statements:
        return
    thread = await sqlite_thread(conn, enabled=one_hop)
    if thread is None:
        for sql, params in statements:
            await conn.exec_driver_sql(sql, params)
        return

    await thread.run(lambda db: run_statements(db, statements))


def run_statements(db: sqlite3.Connection, statements: Sequence[Statement]) -> None:
    """``execute_all`` inside SQLite's thread (``SQLiteThread.run``): each statement as one ``executemany``."""
    for sql, params in statements:
        db.executemany(sql, params)


def upsert_statement(
    table: Table,
    rows: Sequence[Mapping[str, Any]],
    keys: Sequence[str],
    dialect: Dialect,
    *,
    add: Sequence[str] = (),
    keep: Sequence[str] = (),
) -> Statement:
    """The driver-level ``INSERT … ON CONFLICT (keys) DO UPDATE``, and its parameter tuples (``rows`` not empty).

    Columns in ``add`` are incremented by the new row's value (atomically, in
    SQL), columns in ``keep`` keep the stored value, every other column takes
    the new value. ``rows`` are dicts keyed by column name, all with the same keys.
    """
    columns = tuple(rows[0])
    sql, converters = _upsert_plan(table, columns, tuple(keys), frozenset(add), frozenset(keep), dialect)
    return sql, _params(converters, columns, rows)


@dataclass(frozen=True, slots=True)
class Write:
    """Rows for one table, inserted (``insert_statement``) or, with ``keys``, upserted (``upsert_statement``).

    ``rows`` are dicts keyed by column name, or, with ``columns``, tuples in that order (no dict per row).
    """

    table: Table
    rows: Sequence[Any]
    keys: tuple[str, ...] = ()
    add: tuple[str, ...] = ()
    keep: tuple[str, ...] = ()
    columns: tuple[str, ...] = ()

    def statement(self, dialect: Dialect) -> Statement:
        """The ``executemany`` that writes these rows (``rows`` not empty)."""
        if self.columns:
            sql, converters = self._plan(dialect)
            return sql, list(zip(*_tuple_columns(converters, self.rows), strict=True))
        if not self.keys:
            return insert_statement(self.table, self.rows, dialect)
        return upsert_statement(self.table, self.rows, self.keys, dialect, add=self.add, keep=self.keep)

    def _plan(self, dialect: Dialect) -> tuple[str, tuple[Converter, ...]]:
        columns = self.columns or tuple(self.rows[0])
        if not self.keys:
            return _plan(self.table, columns, dialect)
        return _upsert_plan(self.table, columns, self.keys, frozenset(self.add), frozenset(self.keep), dialect)


async def write_all(conn: AsyncConnection, writes: Sequence[Write], *, one_hop: bool = True) -> None:
    """Each write in order (``execute_all``); with ``one_hop`` on PostgreSQL, all of them as one statement.

    The statement has one data-modifying CTE per write, inserting
    ``SELECT … FROM unnest(<one array per column>) ORDER BY`` the rows' order
    (serial ids follow it, as they follow ``executemany``'s), with the same
    ``ON CONFLICT`` clause as ``upsert_statement``. The CTEs run on one
    snapshot, so no write may depend on another's rows (different tables, no
    key twice in one write: PostgreSQL refuses to upsert a row twice in one statement).
    """
    writes = [w for w in writes if w.rows]
    if not writes:
        return
    dialect = conn.dialect
    if not (one_hop and len(writes) > 1 and dialect.name == "postgresql"):
        await execute_all(conn, [w.statement(dialect) for w in writes], one_hop=one_hop)
        return
    parts = []
    params: list[list[Any]] = []
    for w in writes:
        columns = w.columns or tuple(w.rows[0])
        parts.append((w.table, columns, tuple(w.keys), frozenset(w.add), frozenset(w.keep)))
        _, converters = _plan(w.table, columns, dialect)
        if w.columns:  # tuples: transposed once, no dict per row
            params += _tuple_columns(converters, w.rows)
        else:
            params += [list(values) for values in zip(*_params(converters, columns, w.rows), strict=True)]
    await conn.exec_driver_sql(_combined_write_sql(dialect, tuple(parts)), tuple(params))


@lru_cache(maxsize=64)
def _combined_write_sql(
    dialect: Dialect,
    parts: tuple[tuple[Table, tuple[str, ...], tuple[str, ...], frozenset[str], frozenset[str]], ...],
) -> str:
    quote = dialect.identifier_preparer.quote
    ctes, n = [], 1
    for i, (table, columns, keys, add, keep) in enumerate(parts):
        arrays, values = [], []
        for name in columns:
            kind = table.c[name].type.compile(dialect)
            json = isinstance(table.c[name].type, JSON)  # sent as text (``_json``), cast in the statement
            arrays.append(f"${n}::{'TEXT' if json else kind}[]")
            values.append(f"CAST(u.{quote(name)} AS {kind})" if json else f"u.{quote(name)}")
            n += 1
        listed = ", ".join(quote(c) for c in columns)
        sql = (
            f"INSERT INTO {quote(table.name)} ({listed}) SELECT {', '.join(values)} "
            f"FROM unnest({', '.join(arrays)}) WITH ORDINALITY AS u({listed}, _row) ORDER BY u._row"
        )
        if keys:
            sql += f" {_on_conflict(table, columns, keys, add, keep, dialect)}"
        ctes.append(f"w{i} AS ({sql})")
    return f"WITH {', '.join(ctes)} SELECT 1"
