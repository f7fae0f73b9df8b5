"""Tamper evidence: the instruction and collection event histories and the journal are hash chains.

Each chain (``events``, ``collections``, ``journal``) has a head row in ``audit_heads``: how many
rows it holds and the hash after the last one. A transaction that appends rows
locks the head (``FOR UPDATE`` on PostgreSQL; SQLite has one writer), numbers
its rows after it, links each one (``hash = sha256(previous hash + row)``) and
moves the head, all before it commits. So the chains' order is commit order,
and several gateway processes on one PostgreSQL database extend one chain each,
never forking it (the cost: appends to a chain are serialised, as commits to
one ledger must be anyway). Heads are always locked ``events``, then
``collections``, then ``journal``, so two transactions never wait on each other
in a cycle (a collection's transition seals its events before it posts).

``verify`` recomputes the chains from the rows and names the first row that
was changed, deleted or inserted behind the gateway's back (see docs/ledger.md).
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from operator import itemgetter
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.store.bulk import placeholders
from gateway.store.sqlite_thread import sqlite_thread

__all__ = [
    "COLLECTIONS",
    "COLLECTION_EVENT_FIELDS",
    "EVENTS",
    "EVENT_FIELDS",
    "GENESIS",
    "JOURNAL",
    "JOURNAL_QUERIES",
    "Finding",
    "Head",
    "VerifyReport",
    "canonical_time",
    "event_content",
    "link",
    "lock_head",
    "lock_head_in_thread",
    "move_head_statement",
    "seal_events",
    "seal_events_in_thread",
    "verify",
]

EVENTS, COLLECTIONS, JOURNAL = "events", "collections", "journal"
GENESIS = "0" * 64
#: the columns of an event row that its hash covers, in order
EVENT_FIELDS = (
    "instruction_id",
    "sequence",
    "previous_status",
    "status",
    "applied",
    "outcome",
    "source",
    "adapter",
    "partner_reference",
    "partner_status",
    "reason_code",
    "reason",
    "occurred_at",
    "actor",
)
#: the same for a collection's event row (``collection_events``): its own chain, the same content
COLLECTION_EVENT_FIELDS = ("collection_id", *EVENT_FIELDS[1:])
#: the event table and field names each event chain covers
_EVENT_CHAINS = {
    EVENTS: ("instruction_events", EVENT_FIELDS),
    COLLECTIONS: ("collection_events", COLLECTION_EVENT_FIELDS),
}


def canonical_time(value: datetime | None) -> str | None:
    """A UTC instant as hashed: ``YYYY-MM-DD HH:MM:SS.ffffff`` (SQLite's own storage text, so it is read as is)."""
    if value is None:
        return None
    if value.tzinfo is not UTC:
        value = value.astimezone(UTC)
    text = str(value.replace(tzinfo=None))
    return text if value.microsecond else text + ".000000"


def link(previous: str, content: str) -> str:
    """The chain's hash after a row: sha256 of the previous hash and the row's canonical content."""
    return hashlib.sha256((previous + content).encode()).hexdigest()


def event_content(row: Mapping[str, Any], fields: Sequence[str] = EVENT_FIELDS) -> str:
    """An event row's canonical content (``repr`` of its hashed ``fields``, normalised)."""
    values = [row[f] for f in fields]
    values[4] = int(values[4])
    values[12] = canonical_time(values[12])
    return repr(tuple(values))


@dataclass(slots=True)
class Head:
    """A chain's head as locked by the appending transaction."""

    chain: str
    seq: int
    hash: str
    last_at: datetime | None = None
    closed_through: str | None = None


@lru_cache(maxsize=8)
def _lock_sql(dialect: Dialect) -> str:
    mark = placeholders(dialect, 1)
    lock = " FOR UPDATE" if dialect.name == "postgresql" else ""
    return f"SELECT seq, hash, last_at, closed_through FROM audit_heads WHERE chain = {mark}{lock}"


def _time_in(value: Any) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value if value is None or value.tzinfo else value.replace(tzinfo=UTC)
    return datetime.fromisoformat(value).replace(tzinfo=UTC)


def _head(chain: str, row: Sequence[Any] | None) -> Head:
    if row is None:
        raise RuntimeError(f"the audit chain head {chain!r} is missing; run `gateway db upgrade`")
    return Head(chain, int(row[0]), str(row[1]), _time_in(row[2]), row[3])


async def lock_head(conn: AsyncConnection, chain: str) -> Head:
    """Lock a chain's head for this transaction and read it."""
    return _head(chain, (await conn.exec_driver_sql(_lock_sql(conn.dialect), (chain,))).first())


def lock_head_in_thread(db: sqlite3.Connection, dialect: Dialect, chain: str) -> Head:
    """``lock_head`` inside SQLite's thread."""
    return _head(chain, db.execute(_lock_sql(dialect), (chain,)).fetchone())


def move_head_statement(head: Head, dialect: Dialect) -> tuple[str, tuple[Any, ...]]:
    """The ``UPDATE`` that stores ``head`` (after the rows it now covers)."""
    m = [placeholders(dialect, 1, n) for n in range(1, 6)]
    last_at = head.last_at
    stored: Any = canonical_time(last_at) if dialect.name == "sqlite" else last_at
    return (
        f"UPDATE audit_heads SET seq = {m[0]}, hash = {m[1]}, last_at = {m[2]}, closed_through = {m[3]} "
        f"WHERE chain = {m[4]}",
        (head.seq, head.hash, stored, head.closed_through, head.chain),
    )


def _chain_events(head: Head, events: Sequence[dict[str, Any]]) -> None:
    seq, current = head.seq, head.hash
    sha256 = hashlib.sha256
    fields = itemgetter(*_EVENT_CHAINS[head.chain][1])
    instant, instant_text = None, None  # a batch's events share their instant: its text is made once
    for event in events:
        seq += 1
        values = list(fields(event))
        values[4] = int(values[4])
        if values[12] is not instant:
            instant, instant_text = values[12], canonical_time(values[12])
        values[12] = instant_text
        # exactly link(current, event_content(event, its fields)), inlined for batches of thousands
        current = sha256((current + repr(tuple(values))).encode()).hexdigest()
        event["chain_seq"] = seq
        event["chain_hash"] = current
    head.seq, head.hash = seq, current


async def seal_events(conn: AsyncConnection, events: Sequence[dict[str, Any]], chain: str = EVENTS) -> None:
    """Number and link event rows (adds ``chain_seq`` and ``chain_hash`` to each) before they are inserted.

    ``chain`` is ``EVENTS`` (instruction events) or ``COLLECTIONS`` (collection events).
    """
    if not events:
        return
    thread = await sqlite_thread(conn)
    if thread is not None:
        dialect = conn.dialect
        await thread.run(lambda db: seal_events_in_thread(db, dialect, events, chain))
        return
    head = await lock_head(conn, chain)
    _chain_events(head, events)
    await conn.exec_driver_sql(*move_head_statement(head, conn.dialect))


def seal_events_in_thread(
    db: sqlite3.Connection, dialect: Dialect, events: Sequence[dict[str, Any]], chain: str = EVENTS
) -> None:
    """``seal_events`` inside SQLite's thread (intake's one hop)."""
    if not events:
        return
    head = lock_head_in_thread(db, dialect, chain)
    _chain_events(head, events)
    db.execute(*move_head_statement(head, dialect))


# -- verification ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Finding:
    """One row that is not what the chain says: ``kind`` is changed, deleted or inserted."""

    chain: str
    kind: str
    row: str
    position: int | None
    detail: str

    def line(self) -> str:
        where = f" at position {self.position}" if self.position is not None else ""
        return f"{self.chain} chain{where}: {self.row} was {self.kind} ({self.detail})"


@dataclass
class VerifyReport:
    """What ``verify`` found: rows checked per chain and every finding, first first."""

    checked: dict[str, int] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.findings

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "checked": self.checked,
            "first": self.findings[0].line() if self.findings else None,
            "findings": [
                {"chain": f.chain, "kind": f.kind, "row": f.row, "position": f.position, "detail": f.detail}
                for f in self.findings
            ],
        }


class _ChainWalk:
    """Walks one chain's rows in position order, comparing each link with the stored hash."""

    def __init__(self, chain: str, report: VerifyReport, head: Head) -> None:
        self.chain = chain
        self.report = report
        self.head = head
        self.expected = 1
        self.previous = GENESIS
        self.last_name = "the start"
        self.count = 0

    def add(self, position: int | None, stored: str | None, content: str, name: str) -> None:
        self.count += 1
        find = self.report.findings.append
        if position is None or position < self.expected or position > self.head.seq:
            find(Finding(self.chain, "inserted", name, position, "it is not in the chain"))
            return
        if position > self.expected:
            missing = f"position {self.expected}" + (f" to {position - 1}" if position - 1 > self.expected else "")
            find(Finding(self.chain, "deleted", f"the row at {missing}", self.expected, f"after {self.last_name}"))
            self.previous = stored or self.previous  # the link before is unknown: carry on from this row
        elif link(self.previous, content) != stored:
            find(Finding(self.chain, "changed", name, position, "its content does not match its hash"))
            self.previous = stored or self.previous
        else:
            self.previous = link(self.previous, content)
        self.expected = position + 1
        self.last_name = name

    def finish(self) -> None:
        head = self.head
        self.report.checked[self.chain] = self.count
        if head.seq >= self.expected:
            find = self.report.findings.append
            tail = f"position {self.expected}" + (f" to {head.seq}" if head.seq > self.expected else "")
            find(Finding(self.chain, "deleted", f"the row at {tail}", self.expected, f"after {self.last_name}"))
        elif self.count and head.hash != self.previous and not self.report.findings:
            find = self.report.findings.append
            find(Finding(self.chain, "changed", "the chain's head", head.seq, "it does not match the last row"))


def _event_sql(chain: str) -> tuple[str, str]:
    """The queries of an event chain's rows in chain order, and of its rows outside the chain."""
    table, fields = _EVENT_CHAINS[chain]
    return (
        f"SELECT id, chain_seq, chain_hash, {', '.join(fields)} FROM {table} "
        "WHERE chain_seq IS NOT NULL ORDER BY chain_seq",
        f"SELECT id, {fields[0]}, sequence FROM {table} WHERE chain_seq IS NULL ORDER BY id",
    )


_ENTRY_SQL = (
    "SELECT id, kind, memo, instruction_id, business_unit, booked_at, original_at, reverses, chain_hash "
    "FROM ledger_entries ORDER BY id"
)
_POSTING_SQL = (
    "SELECT entry_id, line, account, currency, amount, debits_after, credits_after "
    "FROM ledger_postings ORDER BY entry_id, line"
)
#: the journal's rows in chain order, as ``verify`` reads them (entries, then their postings)
JOURNAL_QUERIES = (_ENTRY_SQL, _POSTING_SQL)
_BALANCE_SQL = "SELECT account, currency, debits, credits FROM ledger_balances"
_HEADS_SQL = "SELECT chain, seq, hash, last_at, closed_through FROM audit_heads"


def entry_content(entry: Sequence[Any], postings: Iterable[Sequence[Any]]) -> str:
    """An entry's canonical content: its fields (id … reverses, times as ``canonical_time``) and its postings."""
    lines = tuple((p[0], p[1], p[2], p[3]) for p in postings)  # (line, account, currency, amount)
    return repr((*entry, lines))


class _Verifier:
    """The checks, fed rows in chain order by a backend-specific reader.

    The loops check the common case (the next position, a matching link) inline
    and hand anything else to ``_ChainWalk.add``, which names the row: at a
    million rows the per-row cost is the hash and little else.
    """

    def __init__(self, heads: Mapping[str, Head], report: VerifyReport, as_text: Callable[[Any], Any] | None) -> None:
        self.heads = heads
        self.report = report
        self.as_text = as_text  # a stored datetime → canonical_time text (None: stored as that text already)

    def events(self, rows: Iterable[Sequence[Any]], loose: Iterable[Sequence[Any]], chain: str = EVENTS) -> None:
        table = _EVENT_CHAINS[chain][0]

        def name(row: Sequence[Any]) -> str:
            return f"{table} row id={row[0]} ({row[3]} #{row[4]})"

        walk = _ChainWalk(chain, self.report, self.heads[chain])
        as_text = self.as_text
        sha = hashlib.sha256
        previous, expected, last, count = walk.previous, walk.expected, walk.head.seq, 0
        last_row: Sequence[Any] | None = None
        for row in rows:
            values = list(row[3:])
            values[4] = int(values[4])
            if as_text is not None:
                values[12] = as_text(values[12])
            content = repr(tuple(values))
            position = row[1]
            if position == expected and position <= last:
                current = sha((previous + content).encode()).hexdigest()
                if current == row[2]:
                    previous, expected, last_row, count = current, expected + 1, row, count + 1
                    continue
            walk.previous, walk.expected, walk.count = previous, expected, count
            if last_row is not None:
                walk.last_name = name(last_row)
            walk.add(position, row[2], content, name(row))
            previous, expected, count, last_row = walk.previous, walk.expected, walk.count, None
        walk.previous, walk.expected, walk.count = previous, expected, count
        if last_row is not None:
            walk.last_name = name(last_row)
        for row in loose:
            walk.add(None, None, "", f"{table} row id={row[0]} ({row[1]} #{row[2]})")
        walk.finish()

    def journal(
        self, entries: Iterable[Sequence[Any]], postings: Iterable[Sequence[Any]], balances: Iterable[Sequence[Any]]
    ) -> None:
        walk = _ChainWalk(JOURNAL, self.report, self.heads[JOURNAL])
        as_text = self.as_text
        sha = hashlib.sha256
        pending = iter(postings)
        nxt = next(pending, None)
        totals: dict[tuple[str, str], list[int]] = {}
        find = self.report.findings.append
        previous, expected, last, count, last_id = walk.previous, walk.expected, walk.head.seq, 0, 0
        for row in entries:
            entry_id = row[0]
            while nxt is not None and nxt[0] < entry_id:
                find(_orphan(nxt))
                nxt = next(pending, None)
            lines = []
            while nxt is not None and nxt[0] == entry_id:
                lines.append(nxt)
                nxt = next(pending, None)
            booked, original = (row[5], row[6]) if as_text is None else (as_text(row[5]), as_text(row[6]))
            content = repr(
                (entry_id, row[1], row[2], row[3], row[4], booked, original, row[7], tuple(p[1:5] for p in lines))
            )
            current = None
            if entry_id == expected and entry_id <= last:
                current = sha((previous + content).encode()).hexdigest()
            if current is not None and current == row[8]:
                previous, expected, count, last_id = current, expected + 1, count + 1, entry_id
            else:
                walk.previous, walk.expected, walk.count = previous, expected, count
                if last_id:
                    walk.last_name = f"ledger_entries row id={last_id}"
                walk.add(entry_id, row[8], content, f"ledger_entries row id={entry_id}")
                previous, expected, count, last_id = walk.previous, walk.expected, walk.count, 0
            for p in lines:
                key = (p[2], p[3])
                total = totals.get(key)
                if total is None:
                    total = totals[key] = [0, 0]
                amount = p[4]
                if amount < 0:
                    total[1] -= amount
                else:
                    total[0] += amount
                if (p[5] != total[0] or p[6] != total[1]) and len(self.report.findings) < 100:
                    where = f"ledger_postings row (entry {entry_id}, line {p[1]})"
                    find(Finding(JOURNAL, "changed", where, entry_id, "its running totals do not follow the journal"))
                    total[0], total[1] = p[5], p[6]
        while nxt is not None:
            find(_orphan(nxt))
            nxt = next(pending, None)
        walk.previous, walk.expected, walk.count = previous, expected, count
        if last_id:
            walk.last_name = f"ledger_entries row id={last_id}"
        walk.finish()
        stored = {(a, c): (int(d), int(k)) for a, c, d, k in balances}
        for key in sorted(set(stored) | set(totals)):
            sums = tuple(totals.get(key, (0, 0)))
            if stored.get(key, (0, 0)) != sums:
                where = f"ledger_balances row {key[0]} {key[1]}"
                find(
                    Finding(JOURNAL, "changed", where, None, f"the journal sums to debits {sums[0]}, credits {sums[1]}")
                )
                break


def _orphan(posting: Sequence[Any]) -> Finding:
    where = f"ledger_postings row (entry {posting[0]}, line {posting[1]})"
    return Finding(JOURNAL, "inserted", where, posting[0], "its entry does not exist")


def _heads(rows: Iterable[Sequence[Any]]) -> dict[str, Head]:
    return {r[0]: _head(r[0], r[1:]) for r in rows}


async def verify(conn: AsyncConnection) -> VerifyReport:
    """Recompute the chains from the rows; the report names every row that is not what the chain says."""
    report = VerifyReport()
    thread = await sqlite_thread(conn)
    if thread is not None:

        def run(db: sqlite3.Connection) -> VerifyReport:
            v = _Verifier(_heads(db.execute(_HEADS_SQL)), report, None)
            for chain in _EVENT_CHAINS:
                rows_sql, loose_sql = _event_sql(chain)
                v.events(db.execute(rows_sql), db.execute(loose_sql).fetchall(), chain)
            postings = db.cursor().execute(_POSTING_SQL)
            v.journal(db.execute(_ENTRY_SQL), postings, db.execute(_BALANCE_SQL).fetchall())
            return report

        return await thread.run(run)
    # PostgreSQL: stream each query (server-side cursors) in chain order
    heads = _heads((await conn.exec_driver_sql(_HEADS_SQL)).all())
    v = _Verifier(heads, report, canonical_time)
    for chain in _EVENT_CHAINS:
        rows_sql, loose_sql = _event_sql(chain)
        loose = (await conn.exec_driver_sql(loose_sql)).all()
        v.events(await _all(conn, rows_sql), loose, chain)
    balances = (await conn.exec_driver_sql(_BALANCE_SQL)).all()
    v.journal(await _all(conn, _ENTRY_SQL), await _all(conn, _POSTING_SQL), balances)
    return report


async def _all(conn: AsyncConnection, sql: str) -> list[Any]:
    result = await conn.stream(_text(sql))
    rows: list[Any] = []
    async for part in result.partitions(20_000):
        rows.extend(part)
    return rows


def _text(sql: str) -> Any:
    return text(sql)
