"""Reading and keeping the books: balances (current and as of an instant), entries, trial balance,
backfill, period close, reversals and event postings.

Balances never sum the journal: the current one is a row of ``ledger_balances``;
one as of an instant is the running totals on the account's last posting
booked by then (one index look-up for the entry bound, one per currency).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from gateway.domain.money import amount_text
from gateway.domain.status import Status
from gateway.ledger.errors import LedgerError, PeriodError
from gateway.ledger.model import ACCOUNT_TYPES, Entry, Posting, net_postings
from gateway.ledger.rules import Rules
from gateway.store.audit import JOURNAL, lock_head, move_head_statement, verify
from gateway.store.journal import next_period, period_start, post, rules_for
from gateway.store.tables import (
    business_units,
    instructions,
    ledger_accounts,
    ledger_balances,
    ledger_entries,
    ledger_periods,
    ledger_postings,
)

__all__ = [
    "Balance",
    "EntryView",
    "account_balances",
    "backfill",
    "close_period",
    "entries",
    "instruction_books",
    "list_accounts",
    "parse_period",
    "post_event",
    "reverse",
    "trial_balance",
]

_PERIOD = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")


def parse_period(text: str) -> str:
    """A ``YYYY-MM`` period, checked (``LedgerError`` with what to write otherwise)."""
    if not _PERIOD.match(text or ""):
        raise PeriodError(f"period {text!r} is not YYYY-MM (e.g. 2026-11)")
    return text


@dataclass(frozen=True, slots=True)
class Balance:
    """An account's totals in one currency (minor units); ``balance`` is debits minus credits."""

    account: str
    type: str
    currency: str
    debits: int
    credits: int
    business_unit: str | None = None

    @property
    def balance(self) -> int:
        return self.debits - self.credits

    @property
    def normal(self) -> int:
        """The balance on the side the account's type normally sits (positive when it does)."""
        return self.balance * ACCOUNT_TYPES.get(self.type, 1)


async def _entry_bound(conn: AsyncConnection, as_of: datetime) -> int:
    """The id of the last entry booked at or before ``as_of`` (0: none); entries are booked in id order."""
    found = await conn.scalar(
        select(ledger_entries.c.id)
        .where(ledger_entries.c.booked_at <= as_of)
        .order_by(ledger_entries.c.booked_at.desc(), ledger_entries.c.id.desc())
        .limit(1)
    )
    return int(found or 0)


async def _as_of(conn: AsyncConnection, account: str, currency: str, bound: int) -> tuple[int, int]:
    row = (
        await conn.execute(
            select(ledger_postings.c.debits_after, ledger_postings.c.credits_after)
            .where(
                ledger_postings.c.account == account,
                ledger_postings.c.currency == currency,
                ledger_postings.c.entry_id <= bound,
            )
            .order_by(ledger_postings.c.entry_id.desc())
            .limit(1)
        )
    ).first()
    return (int(row[0]), int(row[1])) if row else (0, 0)


async def account_balances(conn: AsyncConnection, account: str, as_of: datetime | None = None) -> list[Balance]:
    """The account's balance per currency, now or as of an instant (``[]`` for an account never posted to)."""
    rows = (
        await conn.execute(
            select(ledger_balances, ledger_accounts.c.type, ledger_accounts.c.business_unit)
            .join(ledger_accounts, ledger_accounts.c.name == ledger_balances.c.account)
            .where(ledger_balances.c.account == account)
            .order_by(ledger_balances.c.currency)
        )
    ).all()
    if as_of is None:
        return [Balance(r.account, r.type, r.currency, int(r.debits), int(r.credits), r.business_unit) for r in rows]
    bound = await _entry_bound(conn, as_of)
    out = []
    for r in rows:
        debits, credits = await _as_of(conn, r.account, r.currency, bound)
        out.append(Balance(r.account, r.type, r.currency, debits, credits, r.business_unit))
    return out


async def list_accounts(
    conn: AsyncConnection, business_unit: str | None = None, *, after: str | None = None, limit: int | None = None
) -> list[Balance]:
    """Accounts' current balances per currency, by name (a business unit's own only, when given).

    With ``after`` and ``limit``: the accounts named after ``after``, at most ``limit`` of them.
    """
    names = select(ledger_accounts.c.name).order_by(ledger_accounts.c.name)
    if business_unit is not None:
        names = names.where(ledger_accounts.c.business_unit == business_unit)
    if after is not None:
        names = names.where(ledger_accounts.c.name > after)
    if limit is not None:
        names = names.limit(limit)
    query = (
        select(ledger_balances, ledger_accounts.c.type, ledger_accounts.c.business_unit)
        .join(ledger_accounts, ledger_accounts.c.name == ledger_balances.c.account)
        .where(ledger_balances.c.account.in_(names.scalar_subquery()))
        .order_by(ledger_balances.c.account, ledger_balances.c.currency)
    )
    return [
        Balance(r.account, r.type, r.currency, int(r.debits), int(r.credits), r.business_unit)
        for r in await conn.execute(query)
    ]


async def trial_balance(conn: AsyncConnection, as_of: datetime | None = None) -> dict[str, list[Balance]]:
    """Every account's balance per currency (now or as of an instant), grouped by currency; each group sums to zero."""
    balances = await list_accounts(conn)
    if as_of is not None:
        bound = await _entry_bound(conn, as_of)
        dated = []
        for b in balances:
            debits, credits = await _as_of(conn, b.account, b.currency, bound)
            dated.append(Balance(b.account, b.type, b.currency, debits, credits, b.business_unit))
        balances = dated
    grouped: dict[str, list[Balance]] = {}
    for b in balances:
        if b.debits or b.credits:
            grouped.setdefault(b.currency, []).append(b)
    return dict(sorted(grouped.items()))


# -- entries -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EntryView:
    """A stored entry with its postings."""

    id: int
    kind: str
    memo: str
    instruction_id: str | None
    business_unit: str | None
    booked_at: datetime
    original_at: datetime | None
    reverses: int | None
    postings: tuple[Posting, ...] = field(default=())

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "memo": self.memo,
            "instruction_id": self.instruction_id,
            "business_unit": self.business_unit,
            "booked_at": self.booked_at.isoformat(),
            "original_at": self.original_at.isoformat() if self.original_at else None,
            "reverses": self.reverses,
            "postings": [{"account": p.account, "currency": p.currency, "amount": p.amount} for p in self.postings],
        }


async def entries(
    conn: AsyncConnection,
    *,
    instruction_id: str | None = None,
    account: str | None = None,
    business_unit: str | None = None,
    booked_from: datetime | None = None,
    booked_to: datetime | None = None,
    after_id: int = 0,
    up_to_id: int | None = None,
    limit: int = 100,
) -> list[EntryView]:
    """Entries in journal order after ``after_id`` matching every filter given, with their postings."""
    e = ledger_entries
    conds: list[Any] = [e.c.id > after_id]
    if up_to_id is not None:
        conds.append(e.c.id <= up_to_id)
    if instruction_id is not None:
        conds.append(e.c.instruction_id == instruction_id)
    if business_unit is not None:
        conds.append(e.c.business_unit == business_unit)
    if booked_from is not None:
        conds.append(e.c.booked_at >= booked_from)
    if booked_to is not None:
        conds.append(e.c.booked_at < booked_to)
    if account is not None:
        conds.append(
            e.c.id.in_(select(ledger_postings.c.entry_id).where(ledger_postings.c.account == account).scalar_subquery())
        )
    rows = (await conn.execute(select(e).where(and_(*conds)).order_by(e.c.id).limit(limit))).all()
    if not rows:
        return []
    ids = [r.id for r in rows]
    lines: dict[int, list[Posting]] = {}
    for p in await conn.execute(
        select(ledger_postings)
        .where(ledger_postings.c.entry_id.in_(ids))
        .order_by(ledger_postings.c.entry_id, ledger_postings.c.line)
    ):
        lines.setdefault(p.entry_id, []).append(Posting(p.account, p.currency, int(p.amount)))
    return [
        EntryView(
            r.id,
            r.kind,
            r.memo,
            r.instruction_id,
            r.business_unit,
            r.booked_at,
            r.original_at,
            r.reverses,
            tuple(lines.get(r.id, ())),
        )
        for r in rows
    ]


async def instruction_books(
    conn: AsyncConnection, instruction_ids: Iterable[str]
) -> dict[str, dict[tuple[str, str], int]]:
    """What the journal holds for each instruction: its postings summed per (account, currency), zeros dropped."""
    ids = sorted(set(instruction_ids))
    found: dict[str, dict[tuple[str, str], int]] = {i: {} for i in ids}
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        rows = await conn.execute(
            select(
                ledger_entries.c.instruction_id,
                ledger_postings.c.account,
                ledger_postings.c.currency,
                func.sum(ledger_postings.c.amount),
            )
            .join(ledger_postings, ledger_postings.c.entry_id == ledger_entries.c.id)
            .where(ledger_entries.c.instruction_id.in_(chunk))
            .group_by(ledger_entries.c.instruction_id, ledger_postings.c.account, ledger_postings.c.currency)
        )
        for instruction_id, account, currency, total in rows:
            if int(total):
                found[instruction_id][(account, currency)] = int(total)
    return found


def position_of(rules: Rules, row: Mapping[str, Any]) -> dict[tuple[str, str], int]:
    """What the books should hold for an instruction row (status, adapter, currency, amount, business unit)."""
    postings = rules.position(
        Status(row["status"]),
        business_unit=row["business_unit"],
        adapter=row["adapter"],
        currency=row["currency"],
        amount=int(row["amount_minor"]),
    )
    return {(p.account, p.currency): p.amount for p in net_postings(postings)}


# -- backfill ------------------------------------------------------------------------------------


async def backfill(
    engine: AsyncEngine, now: datetime, *, chunk: int = 500, rules: Rules | None = None
) -> tuple[int, int]:
    """Post what each instruction's status says the books hold and they do not; (instructions seen, entries posted).

    Each instruction's entry is the difference between its position and what
    the journal already holds for it, so running it again posts nothing. Rows
    are locked (PostgreSQL) so a transition cannot post at the same time. The
    entry keeps the instruction's last change as its original date.
    """
    seen = posted = 0
    after = ""
    while True:
        async with engine.begin() as conn:
            rules = rules or rules_for(conn)
            if rules is None:
                raise LedgerError("the ledger is off (ledger.enabled: false); nothing to backfill")
            query = (
                select(
                    instructions.c.id,
                    instructions.c.status,
                    instructions.c.adapter,
                    instructions.c.currency,
                    instructions.c.amount_minor,
                    instructions.c.updated_at,
                    select(business_units.c.name)
                    .where(business_units.c.id == instructions.c.business_unit_id)
                    .scalar_subquery()
                    .label("business_unit"),
                )
                .where(instructions.c.id > after)
                .order_by(instructions.c.id)
                .limit(chunk)
            )
            if conn.dialect.name == "postgresql":
                query = query.with_for_update(of=instructions)
            rows = [dict(r._mapping) for r in await conn.execute(query)]
            if not rows:
                return seen, posted
            held = await instruction_books(conn, [r["id"] for r in rows])
            batch = []
            for row in rows:
                want = position_of(rules, row)
                have = held[row["id"]]
                lines = net_postings(
                    [
                        *(Posting(a, c, v) for (a, c), v in want.items()),
                        *(Posting(a, c, -v) for (a, c), v in have.items()),
                    ]
                )
                if lines:
                    batch.append(
                        Entry(
                            "payment",
                            lines,
                            f"backfill: {row['status']}",
                            row["id"],
                            row["business_unit"],
                            occurred_at=row["updated_at"],
                        )
                    )
            await post(conn, batch, now, rules)
            seen += len(rows)
            posted += len(batch)
            after = rows[-1]["id"]


# -- periods, corrections, events ----------------------------------------------------------------


async def close_period(conn: AsyncConnection, period: str, now: datetime, by: str) -> bool:
    """Close ``period`` and every one before it; False if it was closed already.

    Refused (``PeriodError``) for a period that has not ended. Later events
    that belong to a closed period are booked in the next open one with their
    own date as ``original_at``.
    """
    period = parse_period(period)
    if period_start(next_period(period)) > now:
        raise PeriodError(f"period {period} has not ended yet; it can be closed from {next_period(period)}-01")
    head = await lock_head(conn, JOURNAL)
    if head.closed_through is not None and head.closed_through >= period:
        return False
    head.closed_through = period
    await conn.exec_driver_sql(*move_head_statement(head, conn.dialect))
    await conn.execute(
        ledger_periods.insert().values(period=period, closed_at=now, closed_by=by[:64], last_entry_id=head.seq)
    )
    return True


async def closed_through(conn: AsyncConnection) -> str | None:
    """The last closed period (None: none is)."""
    return await conn.scalar(select(ledger_periods.c.period).order_by(ledger_periods.c.period.desc()).limit(1))


async def reverse(conn: AsyncConnection, entry_id: int, now: datetime, memo: str = "") -> int:
    """Post the entry that reverses ``entry_id`` (linked to it); its id. Refused if it was reversed already."""
    await lock_head(conn, JOURNAL)  # no second reversal can slip in between the check and the post
    original = await entries(conn, after_id=entry_id - 1, up_to_id=entry_id, limit=1)
    if not original:
        raise LedgerError(f"entry {entry_id} does not exist")
    done = await conn.scalar(select(ledger_entries.c.id).where(ledger_entries.c.reverses == entry_id).limit(1))
    if done is not None:
        raise LedgerError(f"entry {entry_id} was already reversed by entry {done}")
    e = original[0]
    lines = tuple(Posting(p.account, p.currency, -p.amount) for p in e.postings)
    entry = Entry(
        e.kind, lines, memo or f"reverses entry {entry_id}", e.instruction_id, e.business_unit, reverses=entry_id
    )
    (new_id,) = await post(conn, [entry], now)
    return new_id


async def post_event(
    conn: AsyncConnection,
    kind: str,
    *,
    currency: str,
    amounts: Mapping[str, int],
    now: datetime,
    business_unit: str | None = None,
    adapter: str | None = None,
    instruction_id: str | None = None,
    occurred_at: datetime | None = None,
    memo: str = "",
) -> int:
    """Post an event of ``kind`` by its rule (``fee``, or a kind a plugin added), in the caller's transaction."""
    rules = rules_for(conn)
    if rules is None:
        raise LedgerError("the ledger is off (ledger.enabled: false)")
    entry = rules.event(
        kind,
        currency=currency,
        amounts=amounts,
        business_unit=business_unit,
        adapter=adapter,
        instruction_id=instruction_id,
        memo=memo,
    )
    if occurred_at is not None:
        entry = Entry(
            entry.kind, entry.postings, entry.memo, entry.instruction_id, entry.business_unit, occurred_at=occurred_at
        )
    (entry_id,) = await post(conn, [entry], now, rules)
    return entry_id


async def ledger_summary(conn: AsyncConnection) -> dict[str, Any]:
    """The books at a glance: balanced per currency, entries, what is in transit with each partner, chains intact."""
    groups = await trial_balance(conn)
    in_transit: dict[str, dict[str, str]] = {}
    for rows in groups.values():
        for b in rows:
            if b.account.startswith("partner:") and b.account.endswith(":in_transit"):
                in_transit.setdefault(b.account, {})[b.currency] = amount_text(-b.balance, b.currency)
    report = await verify(conn)
    return {
        "balanced": not any(summarise(groups).values()),
        "entries": int(await conn.scalar(select(func.count()).select_from(ledger_entries)) or 0),
        "in_transit": dict(sorted(in_transit.items())),
        "audit_intact": report.ok,
    }


def summarise(groups: Mapping[str, Sequence[Balance]]) -> dict[str, int]:
    """The sum of every balance per currency (zero in balanced books)."""
    return {cur: sum(b.balance for b in rows) for cur, rows in groups.items()}


__all__ += ["closed_through", "ledger_summary", "position_of", "summarise"]
