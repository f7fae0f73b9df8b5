"""Posting entries: numbered, linked, booked in an open period, with running balances.

``post`` is called inside the transaction that causes the entries (a status
transition, a backfill, a correction). It locks the journal's chain head
(``gateway.store.audit``), so entries get consecutive ids in commit order and
each account's running totals move one transaction at a time; then it writes
the entries, their postings (each with the account's totals after it, so an
as-of balance is one indexed row) and the new balances in one round trip.

An entry is booked at the transaction's time, never before an entry already
booked and never inside a closed period: an event whose own time falls in a
closed period (or that is posted late, like a backfill) is booked in the open
period and keeps its own time as ``original_at``.
"""

from __future__ import annotations

import sqlite3
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from gateway.domain.status import Status
from gateway.ledger.model import Entry
from gateway.ledger.rules import Rules, load_rules
from gateway.store.audit import (
    JOURNAL,
    Head,
    canonical_time,
    entry_content,
    link,
    lock_head,
    lock_head_in_thread,
    move_head_statement,
    seal_events,
    seal_events_in_thread,
)
from gateway.store.bulk import (
    Statement,
    Write,
    insert_rows,
    insert_statement,
    placeholders,
    run_statements,
    write_all,
)
from gateway.store.sqlite_thread import sqlite_thread
from gateway.store.tables import instruction_events, ledger_accounts, ledger_balances, ledger_entries, ledger_postings

__all__ = [
    "Move",
    "bind",
    "next_period",
    "period_of",
    "period_start",
    "post",
    "post_transitions",
    "record_events",
    "rules_for",
]


# -- which rules a database's transitions post by ------------------------------------------------

_OFF = object()
_BOUND: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()


@lru_cache(maxsize=1)
def _shipped_rules() -> Rules:
    return load_rules()


def bind(engine: AsyncEngine, rules: Rules | None) -> None:
    """Post transitions on ``engine`` by ``rules`` (``None``: the ledger is off); the runtime does this at start."""
    _BOUND[engine.sync_engine] = _OFF if rules is None else rules


def rules_for(conn: AsyncConnection) -> Rules | None:
    """The rules bound to the connection's engine; the shipped rules when none were bound; None when off."""
    found = _BOUND.get(conn.engine.sync_engine)
    if found is _OFF:
        return None
    return found if found is not None else _shipped_rules()


# -- periods ---------------------------------------------------------------------------------------


def period_of(at: datetime) -> str:
    """The accounting period (``YYYY-MM``, UTC) an instant falls in."""
    at = at.astimezone(UTC)
    return f"{at.year:04d}-{at.month:02d}"


def period_start(period: str) -> datetime:
    year, month = (int(p) for p in period.split("-"))
    return datetime(year, month, 1, tzinfo=UTC)


def next_period(period: str) -> str:
    year, month = (int(p) for p in period.split("-"))
    return f"{year + month // 12:04d}-{month % 12 + 1:02d}"


def _booking_time(now: datetime, head: Head) -> datetime:
    """Now, but never before the last entry and never inside a closed period."""
    at = now if head.last_at is None or now >= head.last_at else head.last_at
    if head.closed_through is not None and period_of(at) <= head.closed_through:
        at = period_start(next_period(head.closed_through))
    return at


# -- posting ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Move:
    """An applied status change as the ledger needs it (``record_transitions`` builds these)."""

    instruction_id: str
    business_unit: str
    currency: str
    amount_minor: int
    previous: Status
    previous_adapter: str | None
    status: Status
    adapter: str | None


async def post_transitions(conn: AsyncConnection, moves: Sequence[Move], now: datetime) -> list[int]:
    """Post the entries of applied transitions, in this transaction (nothing when the ledger is off)."""
    rules = rules_for(conn)
    if rules is None or not moves:
        return []
    return await post(conn, _entries_of(rules, moves), now, rules)


async def record_events(
    conn: AsyncConnection, events: Sequence[dict[str, Any]], moves: Sequence[Move], now: datetime
) -> None:
    """Link and insert a transaction's instruction events, and post the entries of its applied moves.

    ``record_transitions`` calls this; on SQLite all of it is one trip to the
    driver's thread (events chain, event rows, journal), elsewhere one
    statement after the other. The events head is locked before the journal's.
    """
    rules = rules_for(conn)
    entries = _entries_of(rules, moves) if rules is not None else []
    thread = await sqlite_thread(conn)
    if thread is None or not events:
        await seal_events(conn, events)
        await insert_rows(conn, instruction_events, events)
        await post(conn, entries, now, rules)
        return
    for entry in entries:
        entry.check()
    accounts, types = _accounts(entries, rules)
    dialect = conn.dialect

    def work(db: sqlite3.Connection) -> None:
        seal_events_in_thread(db, dialect, events)
        run_statements(db, [insert_statement(instruction_events, events, dialect)])
        if entries:
            _post_in_thread(db, dialect, entries, accounts, types, now)

    await thread.run(work)


def _entries_of(rules: Rules, moves: Sequence[Move]) -> list[Entry]:
    entries = []
    for m in moves:
        entry = rules.transition(
            m.previous,
            m.status,
            instruction_id=m.instruction_id,
            business_unit=m.business_unit,
            currency=m.currency,
            amount=m.amount_minor,
            previous_adapter=m.previous_adapter,
            adapter=m.adapter,
        )
        if entry is not None:
            entries.append(entry)
    return entries


def _accounts(entries: Sequence[Entry], rules: Rules | None) -> tuple[list[str], dict[str, tuple[str, str | None]]]:
    rules = rules or _shipped_rules()
    accounts = sorted({p.account for e in entries for p in e.postings})
    return accounts, {a: rules.account_info(a) for a in accounts}  # refuses an account outside the chart


async def post(conn: AsyncConnection, entries: Sequence[Entry], now: datetime, rules: Rules | None = None) -> list[int]:
    """Check and post entries in the caller's transaction; return their ids.

    Every entry is checked first (``Entry.check``): one that does not balance,
    or has an amount that is not an integer, refuses the whole call before
    anything is written.
    """
    if not entries:
        return []
    for entry in entries:
        entry.check()
    accounts, types = _accounts(entries, rules or rules_for(conn))
    dialect = conn.dialect
    thread = await sqlite_thread(conn)
    if thread is not None:
        return await thread.run(lambda db: _post_in_thread(db, dialect, entries, accounts, types, now))
    head = await lock_head(conn, JOURNAL)
    sql, params = _balances_query(dialect, accounts)
    balances = (await conn.exec_driver_sql(sql, params)).all()
    plan = _Plan(head, balances, entries, types, now, dialect)
    await write_all(conn, plan.writes())
    await conn.exec_driver_sql(*move_head_statement(head, dialect))
    return plan.ids


def _post_in_thread(
    db: sqlite3.Connection,
    dialect: Dialect,
    entries: Sequence[Entry],
    accounts: Sequence[str],
    types: Mapping[str, tuple[str, str | None]],
    now: datetime,
) -> list[int]:
    head = lock_head_in_thread(db, dialect, JOURNAL)
    plan = _Plan(head, db.execute(*_balances_query(dialect, accounts)).fetchall(), entries, types, now, dialect)
    statements = plan.statements()
    sql, params = move_head_statement(head, dialect)
    statements.append((sql, [params]))
    run_statements(db, statements)
    return plan.ids


def _balances_query(dialect: Dialect, accounts: Sequence[str]) -> tuple[str, tuple[Any, ...]]:
    return (
        "SELECT account, currency, debits, credits, postings FROM ledger_balances "
        f"WHERE account IN ({placeholders(dialect, len(accounts))})",
        tuple(accounts),
    )


_ENTRY_COLUMNS = (
    "id",
    "kind",
    "memo",
    "instruction_id",
    "business_unit",
    "booked_at",
    "original_at",
    "reverses",
    "chain_hash",
)
_POSTING_COLUMNS = ("entry_id", "line", "account", "currency", "amount", "debits_after", "credits_after")


@lru_cache(maxsize=8)
def _insert_sql(dialect: Dialect, table: str, columns: tuple[str, ...]) -> str:
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({placeholders(dialect, len(columns))})"


class _Plan:
    """The rows a posting writes, computed under the journal's lock (``head`` moves along).

    Entries and postings are built as the driver's parameter tuples (the hot
    path: no per-row dicts or converters); on SQLite times are sent as
    ``canonical_time`` text, which is SQLite's storage format for them.
    """

    def __init__(
        self,
        head: Head,
        balances: Sequence[Sequence[Any]],
        entries: Sequence[Entry],
        types: Mapping[str, tuple[str, str | None]],
        now: datetime,
        dialect: Dialect,
    ) -> None:
        self.dialect = dialect
        totals: dict[tuple[str, str], list[int]] = {(r[0], r[1]): [int(r[2]), int(r[3]), int(r[4])] for r in balances}
        known = {r[0] for r in balances}
        self.new_accounts = [
            {"name": a, "type": t, "business_unit": bu, "created_at": now}
            for a, (t, bu) in types.items()
            if a not in known
        ]
        sqlite = dialect.name == "sqlite"
        booked = _booking_time(now, head)
        booked_text = canonical_time(booked)
        late = now if period_of(booked) != period_of(now) else None  # its period is closed: booked in the next
        seq, chain = head.seq, head.hash
        self.entries: list[tuple[Any, ...]] = []
        self.postings: list[tuple[Any, ...]] = []
        self.ids: list[int] = []
        touched: dict[tuple[str, str], int] = {}
        for entry in entries:
            seq += 1
            original = entry.occurred_at or late
            original_text = canonical_time(original)
            memo = entry.memo[:200]
            lines = []
            for line, p in enumerate(entry.postings, 1):
                key = (p.account, p.currency)
                total = totals.get(key)
                if total is None:
                    total = totals[key] = [0, 0, 0]
                total[p.amount < 0] += abs(p.amount)
                total[2] += 1
                touched[key] = seq
                lines.append((line, p.account, p.currency, p.amount))
                self.postings.append((seq, line, p.account, p.currency, p.amount, total[0], total[1]))
            fields = (
                seq,
                entry.kind,
                memo,
                entry.instruction_id,
                entry.business_unit,
                booked_text,
                original_text,
                entry.reverses,
            )
            chain = link(chain, entry_content(fields, lines))
            if sqlite:
                self.entries.append((*fields, chain))
            else:
                self.entries.append((*fields[:5], booked, original, entry.reverses, chain))
            self.ids.append(seq)
        self.balances = [
            {
                "account": a,
                "currency": c,
                "debits": totals[(a, c)][0],
                "credits": totals[(a, c)][1],
                "postings": totals[(a, c)][2],
                "last_entry_id": last,
            }
            for (a, c), last in touched.items()
        ]
        head.seq, head.hash, head.last_at = seq, chain, booked

    def _small_writes(self) -> list[Write]:
        return [
            Write(ledger_accounts, self.new_accounts, keys=("name",), keep=("type", "business_unit", "created_at")),
            Write(ledger_balances, self.balances, keys=("account", "currency")),
        ]

    def statements(self) -> list[Statement]:
        """SQLite: every write as one ``executemany`` each (one hop)."""
        dialect = self.dialect
        out: list[Statement] = [
            (_insert_sql(dialect, "ledger_entries", _ENTRY_COLUMNS), self.entries),
            (_insert_sql(dialect, "ledger_postings", _POSTING_COLUMNS), self.postings),
        ]
        return out + [w.statement(dialect) for w in self._small_writes() if w.rows]

    def writes(self) -> list[Write]:
        """PostgreSQL: every write, for ``write_all`` (one statement)."""
        return [
            Write(ledger_entries, self.entries, columns=_ENTRY_COLUMNS),
            Write(ledger_postings, self.postings, columns=_POSTING_COLUMNS),
            *self._small_writes(),
        ]
