"""Risk history in the database: load the slice a batch needs, write back what it changed.

Five indexed queries load a batch's history (counters, pairs, beneficiaries,
names, recent payments), whatever the number of stored payments; the writes are
upserts (one ``executemany`` per table, or one statement: see below). Velocity
counters are incremented atomically in SQL (``count = count + excluded.count``),
so several gateway processes on one PostgreSQL database never lose a count;
pair amounts, beneficiaries and names are last-writer-wins (two processes
screening the same pair in the same instant may drop one amount from the pair's
memory; documented in docs/risk.md).

This is the screening hot path, so the statements are driver-level SQL
(``gateway.store.bulk``: built once per shape and dialect, values converted as
SQLAlchemy would convert them), not Core constructs compiled per call. IN lists
are padded to the next power of two (repeating a value), so a handful of
statement shapes serve every batch and the drivers' statement caches hit.

Round trips, not the statements, are what is left of the cost (a thread hop
per statement through aiosqlite, a network round trip through asyncpg), so the
five queries go as one (``bulk.fetch_all``: on SQLite one trip to the driver's
thread, on PostgreSQL one statement answering all five) and the writes as one
too (``bulk.write_all``: on SQLite one trip, on PostgreSQL one statement of
data-modifying CTEs over ``unnest`` arrays). ``one_hop=False`` sends them
statement by statement (the same rows; tests compare both).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any, NamedTuple, Protocol

from sqlalchemy import delete
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.risk.history import (
    SUBJECTS,
    Beneficiary,
    CounterKey,
    CounterSpec,
    History,
    Lessons,
    NameAccounts,
    PairStats,
    Recent,
)
from gateway.store.bulk import (
    Query,
    Statement,
    Write,
    bind_converter,
    fetch_all,
    placeholders,
    write_all,
)
from gateway.store.tables import (
    risk_beneficiaries,
    risk_counters,
    risk_names,
    risk_pairs,
    risk_recent,
)

__all__ = [
    "CandidateKeys",
    "HistoryQueries",
    "counter_row",
    "history_rows",
    "history_writes",
    "learn_lessons",
    "load_history",
    "prune_history",
    "recent_row",
    "save_history",
]


class CandidateKeys(Protocol):
    """What loading a batch's history reads of each of its candidates (a ``Candidate`` has all of it)."""

    @property
    def business_unit(self) -> str: ...
    @property
    def at(self) -> datetime: ...
    @property
    def debtor_key(self) -> str: ...
    @property
    def creditor_key(self) -> str: ...
    @property
    def creditor_name(self) -> str: ...


class _Keys(NamedTuple):
    """A ``CandidateKeys`` that is no candidate: the keys a ``Lessons`` changes (``learn_lessons``)."""

    business_unit: str
    at: datetime
    debtor_key: str
    creditor_key: str
    creditor_name: str


def _since(candidates: Sequence[CandidateKeys], seconds: int) -> datetime:
    return min(c.at for c in candidates) - timedelta(seconds=seconds)


def _padded(values: Iterable[Any]) -> list[Any]:
    """Sorted distinct values, padded to a power of two by repeating the last (same rows, fewer shapes)."""
    items = sorted(set(values))
    size = 1 << max(0, len(items) - 1).bit_length()
    return items + items[-1:] * (size - len(items))


def _keys_of(dialect: Dialect, values: Iterable[Any]) -> list[Any]:
    """A key list's parameters: one per key, padded (SQLite), or one array of them all (PostgreSQL).

    PostgreSQL takes at most 32,767 parameters a statement, and a long ``IN`` list of row values
    exhausts its parser's stack (a batch to 5,000 new suppliers did): an array is one parameter at any size.
    """
    if dialect.name == "postgresql":
        return [sorted(set(values))]
    return _padded(values)


class _Marks:
    """Parameter markers in the driver's style, numbered on across one statement."""

    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect
        self.next = 1

    def __call__(self, count: int) -> str:
        text = placeholders(self.dialect, count, self.next)
        self.next += count
        return text

    def among(self, count: int) -> str:
        """``IN`` a key list of ``count`` parameters (``_keys_of``): one array on PostgreSQL."""
        if self.dialect.name == "postgresql":
            return f"= ANY(CAST({self(1)} AS TEXT[]))"
        return f"IN ({self(count)})"


_COUNTER_COLUMNS = (
    "business_unit",
    "subject",
    "key",
    "currency",
    "bucket_seconds",
    "bucket_start",
    "count",
    "sum_minor",
)
_PAIR_COLUMNS = ("business_unit", "debtor_key", "creditor_key", "currency", "count", "amounts")
_BENEFICIARY_COLUMNS = ("business_unit", "creditor_key", "first_seen", "count", "max_minor")
_NAME_COLUMNS = ("business_unit", "creditor_name", "creditor_key", "count")
_RECENT_COLUMNS = ("business_unit", "creditor_key", "at", "instruction_id", "currency", "amount_minor", "remittance")


@lru_cache(maxsize=256)
def _counters_where(dialect: Dialect, parties: int, units: int, reach: tuple[bool, ...]) -> str:
    """Counters of these keys, per bucket size as far back as it reaches (``reach``: for one subject only?)."""
    mark, quote = _Marks(dialect), dialect.identifier_preparer.quote
    where = f"{quote('key')} {mark.among(parties)} AND business_unit {mark.among(units)}"  # markers in textual order
    terms = [
        f"(bucket_seconds = {mark(1)} AND bucket_start >= {mark(1)}" + (f" AND subject = {mark(1)})" if one else ")")
        for one in reach
    ]
    return f"WHERE {where} AND ({' OR '.join(terms)})"


@lru_cache(maxsize=256)
def _pairs_where(dialect: Dialect, keys: int, units: int) -> str:
    mark = _Marks(dialect)
    if dialect.name == "postgresql":  # (creditor, debtor) pairs, as two arrays; SQLite's planner prefers the creditors
        pairs = f"SELECT * FROM unnest(CAST({mark(1)} AS TEXT[]), CAST({mark(1)} AS TEXT[]))"
        match = f"(creditor_key, debtor_key) IN ({pairs})"
    else:
        match = f"creditor_key IN ({mark(keys)})"
    return f"WHERE {match} AND business_unit {mark.among(units)}"


@lru_cache(maxsize=256)
def _beneficiaries_where(dialect: Dialect, creditors: int, units: int) -> str:
    mark = _Marks(dialect)
    return f"WHERE creditor_key {mark.among(creditors)} AND business_unit {mark.among(units)}"


@lru_cache(maxsize=256)
def _names_where(dialect: Dialect, names: int, units: int) -> str:
    mark = _Marks(dialect)
    return f"WHERE creditor_name {mark.among(names)} AND business_unit {mark.among(units)}"


@lru_cache(maxsize=256)
def _recent_where(dialect: Dialect, creditors: int) -> str:
    mark = _Marks(dialect)
    at = dialect.identifier_preparer.quote("at")
    return f"WHERE creditor_key {mark.among(creditors)} AND {at} >= {mark(1)} ORDER BY id"


class HistoryQueries:
    """The SELECTs that load the history of a batch, and how their rows fill it (see ``load_history``).

    Separate from running them so a caller can send other queries in the same
    trip (``Screener.evaluate`` adds the credit limits).
    """

    def __init__(
        self,
        dialect: Dialect,
        candidates: Sequence[CandidateKeys],
        counters: Iterable[CounterSpec],
        recent_seconds: int,
    ) -> None:
        self.history = History(recent_seconds=recent_seconds or 86_400, counters=counters)
        self.queries: list[Query] = []
        self._fills: list[Callable[[list[Any]], None]] = []
        if candidates:
            self._plan(dialect, candidates, recent_seconds)

    def _add(self, query: Query, fill: Callable[[list[Any]], None]) -> None:
        self.queries.append(query)
        self._fills.append(fill)

    def fill(self, results: Sequence[list[Any]]) -> History:
        """The history, filled with each query's rows (``results`` in the order of ``queries``)."""
        for fill, rows in zip(self._fills, results, strict=True):
            fill(rows)
        return self.history

    def _plan(self, dialect: Dialect, candidates: Sequence[CandidateKeys], recent_seconds: int) -> None:
        history = self.history
        units = _keys_of(dialect, (c.business_unit for c in candidates))
        creditors = _keys_of(dialect, (c.creditor_key for c in candidates))
        if history.counter_specs:
            parties = _keys_of(dialect, [c.debtor_key for c in candidates] + [c.creditor_key for c in candidates])
            # each bucket size only as far back as its own windows reach (24 buckets plus the partial one),
            # not as far as the longest window: an hour's small buckets are not loaded for a whole day
            reach: list[tuple[int, str | None]] = []
            for size in history.bucket_sizes:
                subjects = [s for s, kept in history.counter_specs if kept == size]
                reach.append((size, None if len(subjects) == len(SUBJECTS) else subjects[0]))
            reach_params: list[Any] = []
            for size, subject in reach:
                reach_params += [size, int(_since(candidates, size * 25).timestamp())]
                if subject is not None:
                    reach_params.append(subject)
            one_subject = tuple(subject is not None for _, subject in reach)
            where = _counters_where(dialect, len(parties), len(units), one_subject)
            self._add(Query(risk_counters, _COUNTER_COLUMNS, where, [*parties, *units, *reach_params]), self._counters)
        if dialect.name == "postgresql":
            pairs = sorted({(c.creditor_key, c.debtor_key) for c in candidates})
            keys: list[Any] = [[c for c, _ in pairs], [d for _, d in pairs]]
            where = _pairs_where(dialect, 1, len(units))
        else:
            keys = creditors
            where = _pairs_where(dialect, len(creditors), len(units))
        self._add(Query(risk_pairs, _PAIR_COLUMNS, where, [*keys, *units]), self._pairs)
        where = _beneficiaries_where(dialect, len(creditors), len(units))
        self._add(Query(risk_beneficiaries, _BENEFICIARY_COLUMNS, where, [*creditors, *units]), self._beneficiaries)
        if any(c.creditor_name for c in candidates):
            names = _keys_of(dialect, (c.creditor_name for c in candidates if c.creditor_name))
            where = _names_where(dialect, len(names), len(units))
            self._add(Query(risk_names, _NAME_COLUMNS, where, [*names, *units]), self._names)
        if recent_seconds:
            since = bind_converter(risk_recent.c.at, dialect)(_since(candidates, recent_seconds))
            where = _recent_where(dialect, len(creditors))
            self._add(Query(risk_recent, _RECENT_COLUMNS, where, [*creditors, since]), self._recent)

    def _counters(self, rows: list[Any]) -> None:
        table = self.history.counters
        for bu, subject, key, currency, size, start, count, total in rows:
            table.setdefault((bu, subject, key, currency, size), {})[start] = [count, total]

    def _pairs(self, rows: list[Any]) -> None:
        for bu, dk, ck, currency, count, amounts in rows:
            self.history.pairs[(bu, dk, ck, currency)] = PairStats(count, list(amounts))

    def _beneficiaries(self, rows: list[Any]) -> None:
        for bu, ck, first_seen, count, max_minor in rows:
            self.history.beneficiaries[(bu, ck)] = Beneficiary(first_seen, count, max_minor)

    def _names(self, rows: list[Any]) -> None:
        names = self.history.names
        for bu, name, ck, count in rows:
            names.setdefault((bu, name), NameAccounts()).accounts[ck] = count

    def _recent(self, rows: list[Any]) -> None:
        recent = self.history.recent
        for bu, ck, at, instruction_id, currency, amount_minor, remittance in rows:
            recent.setdefault((bu, ck), []).append(Recent(at, instruction_id, currency, amount_minor, remittance))


async def load_history(
    conn: AsyncConnection,
    candidates: Sequence[CandidateKeys],
    counters: Iterable[CounterSpec],
    recent_seconds: int,
    *,
    one_hop: bool = True,
) -> History:
    """The history the rules need for these candidates (see module docstring).

    ``counters``: the (subject, bucket size) velocity counters to load
    (``RiskEngine.counters``); ``recent_seconds``: how far back recent payments
    go (0: none). ``one_hop``: all queries in one round trip (``bulk.fetch_all``).
    """
    reads = HistoryQueries(conn.dialect, candidates, counters, recent_seconds)
    return reads.fill(await fetch_all(conn, reads.queries, one_hop=one_hop))


def _keys(lessons: Lessons) -> list[_Keys]:
    """The keys ``lessons`` changes, as ``load_history`` reads them (one per pair, one per name)."""
    firsts = lessons.beneficiaries
    debtors: dict[tuple[str, str], str] = {}  # a debtor paying each creditor: the pairs to load stay the lessons'
    out = []
    for bu, dk, ck, _ in lessons.pairs:
        debtors.setdefault((bu, ck), dk)
        out.append(_Keys(bu, firsts[(bu, ck)][0], dk, ck, ""))
    out += [_Keys(bu, firsts[(bu, ck)][0], debtors[(bu, ck)], ck, name) for bu, name, ck in lessons.names]
    return out


async def learn_lessons(conn: AsyncConnection, lessons: Lessons, now: datetime, *, one_hop: bool = True) -> None:
    """Teach the stored history ``lessons`` (``History.learn_all``): load the slice it changes, learn, write it back."""
    if not lessons:
        return
    history = await load_history(conn, _keys(lessons), (), 0, one_hop=one_hop)
    history.learn_all(lessons)
    await save_history(conn, history, now, one_hop=one_hop)


def counter_row(ckey: CounterKey, bucket: int, count: int, total: int) -> dict[str, Any]:
    """A ``risk_counters`` row for one bucket of a history counter."""
    bu, subject, key, currency, size = ckey
    return {
        "key": key,
        "subject": subject,
        "business_unit": bu,
        "currency": currency,
        "bucket_seconds": size,
        "bucket_start": bucket,
        "count": count,
        "sum_minor": total,
    }


def recent_row(business_unit: str, creditor_key: str, r: Recent) -> dict[str, Any]:
    """A ``risk_recent`` row for one remembered payment."""
    return {
        "creditor_key": creditor_key,
        "business_unit": business_unit,
        "at": r.at,
        "instruction_id": r.instruction_id,
        "currency": r.currency,
        "amount_minor": r.amount_minor,
        "remittance": r.remittance[:140],
    }


def history_rows(history: History, now: datetime) -> list[Write]:
    """What the batch changed, as rows for each table (``bulk.write_all``)."""
    changes = history.changes
    out: list[Write] = []
    if changes.counters:
        rows = [counter_row(ckey, bucket, n, total) for (ckey, bucket), (n, total) in sorted(changes.counters.items())]
        out.append(Write(risk_counters, rows, _PK_COUNTERS, add=("count", "sum_minor")))
    if changes.pairs:
        rows = [
            {
                "creditor_key": ck,
                "debtor_key": dk,
                "business_unit": bu,
                "currency": cur,
                "count": history.pairs[(bu, dk, ck, cur)].count,
                "amounts": history.pairs[(bu, dk, ck, cur)].amounts,
                "updated_at": now,
            }
            for bu, dk, ck, cur in sorted(changes.pairs)
        ]
        keys = ("creditor_key", "debtor_key", "business_unit", "currency")
        out.append(Write(risk_pairs, rows, keys))
    if changes.beneficiaries:
        rows = [
            {
                "creditor_key": ck,
                "business_unit": bu,
                "first_seen": history.beneficiaries[(bu, ck)].first_seen,
                "count": history.beneficiaries[(bu, ck)].count,
                "max_minor": history.beneficiaries[(bu, ck)].max_minor,
            }
            for bu, ck in sorted(changes.beneficiaries)
        ]
        keys = ("creditor_key", "business_unit")
        out.append(Write(risk_beneficiaries, rows, keys, keep=("first_seen",)))
    if changes.names:
        rows = [
            {
                "creditor_name": name,
                "business_unit": bu,
                "creditor_key": key,
                "count": history.names[(bu, name)].accounts[key],
                "updated_at": now,
            }
            for bu, name, key in sorted(changes.names)
        ]
        out.append(Write(risk_names, rows, ("creditor_name", "business_unit", "creditor_key")))
    if changes.recents and history.recent_seconds:
        out.append(Write(risk_recent, [recent_row(bu, ck, r) for bu, ck, r in changes.recents]))
    return out


def history_writes(history: History, now: datetime, dialect: Dialect) -> list[Statement]:
    """The statements that write back what the batch changed (one ``executemany`` per table)."""
    return [w.statement(dialect) for w in history_rows(history, now)]


async def save_history(conn: AsyncConnection, history: History, now: datetime, *, one_hop: bool = True) -> None:
    """Write back what the batch changed (``history_rows``; with ``one_hop`` in one round trip: module docstring)."""
    await write_all(conn, history_rows(history, now), one_hop=one_hop)
    history.changes = type(history.changes)()


_PK_COUNTERS = ("key", "subject", "business_unit", "currency", "bucket_seconds", "bucket_start")


async def prune_history(conn: AsyncConnection, now: datetime, keep_counters: int, keep_recent: int) -> int:
    """Delete counters and recent payments that no window reaches any more; returns rows deleted."""
    counters = await conn.execute(
        delete(risk_counters).where(risk_counters.c.bucket_start < int(now.timestamp()) - keep_counters)
    )
    recent = await conn.execute(delete(risk_recent).where(risk_recent.c.at < now - timedelta(seconds=keep_recent)))
    return int(counters.rowcount or 0) + int(recent.rowcount or 0)
