"""A reconciliation run, and the hand work on matches: confirm a suggestion, match a break by hand.

``run_recon`` loads the open statement lines and settled payments, lets the
rules decide (``gateway.recon.matching``), and in ONE transaction writes the
matches with their ledger entries and syncs the breaks (``gateway.recon.breaks``):
a crash leaves either all of a run or none of it, and a concurrent run that took
the same line or payment makes this one fail on the primary keys and roll back
(run it again).
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import Table, and_, delete, exists, func, insert, select, update
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from gateway.collector import collector_paused
from gateway.domain.money import amount_text
from gateway.errors import BadRequestError, ConflictError, FieldError, NotFoundError
from gateway.ledger.model import Entry
from gateway.ledger.rules import Rules
from gateway.recon.breaks import SUSPENSE_KINDS, Found, parse_break_id, plan_breaks, sync_breaks
from gateway.recon.matching import (
    LINE_ID,
    Decision,
    LineReader,
    LineView,
    PaymentBook,
    PaymentView,
    decide,
    index_payments,
    line_id,
    load_named_elsewhere,
    load_open_collections,
    load_open_lines,
    load_open_payments,
    load_open_returned,
    not_a_receipt,
    pairing_fingerprint,
    statement_sources,
)
from gateway.recon.postings import line_entry, match_entries
from gateway.recon.rules import MatchRule, ReconRules
from gateway.store.bulk import Statement, bind_converter, execute_all, insert_statement
from gateway.store.exposure import release_reconciled
from gateway.store.journal import post, rules_for
from gateway.store.tables import (
    business_units,
    collections,
    control_totals,
    instructions,
    recon_breaks,
    recon_match_lines,
    recon_match_payments,
    recon_matches,
    recon_rejections,
    statement_lines,
    statements,
)

#: how far back a matched (or unsettled) payment keeps lines naming it from being guessed onto another
NAMED_WINDOW_DAYS = 62

__all__ = [
    "NAMED_WINDOW_DAYS",
    "RunReport",
    "confirm_match",
    "match_by_hand",
    "match_returns",
    "reject_match",
    "run_recon",
    "write_matches",
]


@dataclass
class RunReport:
    """What one run did, and how long its parts took."""

    lines: int = 0  # open booked lines looked at
    confirmed: int = 0
    suggested: int = 0
    matched_lines: int = 0
    breaks_opened: int = 0
    breaks_closed: int = 0
    seconds: dict[str, float] = field(default_factory=dict)
    #: CPU seconds of each part (this process, every thread: the SQLite driver's included)
    cpu_seconds: dict[str, float] = field(default_factory=dict)
    #: a dry run: what it would have done, nothing written
    dry_run: bool = False
    would_match: list[dict[str, Any]] = field(default_factory=list)
    would_open: list[dict[str, Any]] = field(default_factory=list)
    would_close: list[str] = field(default_factory=list)

    def lap(self, part: str, clock: float, cpu: float) -> tuple[float, float]:
        """Record ``part`` as taking the time since ``clock`` / ``cpu``; the new clock and CPU clock."""
        now, now_cpu = time.perf_counter(), time.process_time()
        self.seconds[part] = now - clock
        self.cpu_seconds[part] = now_cpu - cpu
        return now, now_cpu

    def as_dict(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "lines": self.lines,
            "confirmed": self.confirmed,
            "suggested": self.suggested,
            "unmatched": self.lines - self.matched_lines,
            "breaks_opened": self.breaks_opened,
            "breaks_closed": self.breaks_closed,
        }
        if self.dry_run:
            doc.update(
                dry_run=True, matches=self.would_match, breaks_to_open=self.would_open, breaks_to_close=self.would_close
            )
        return doc


async def _next_match_id(conn: AsyncConnection) -> int:
    return int(await conn.scalar(select(func.coalesce(func.max(recon_matches.c.id), 0)))) + 1


def _fee_sign(direction: str) -> int:
    # money out: the bank took more than the payments -> fee; money in: it paid out less -> fee
    return 1 if direction == "debit" else -1


#: rows per ``executemany`` when a run writes its matches
WRITE_CHUNK = 50_000


def _rows_statement(table: Table, columns: tuple[str, ...], rows: list[tuple[Any, ...]], dialect: Dialect) -> Statement:
    """The driver-level INSERT of ``columns`` of ``table`` with ``rows`` already in the driver's values."""
    sql, _ = insert_statement(table, [dict.fromkeys(columns)], dialect)
    return sql, rows


_MATCH_COLUMNS = (
    "id",
    "source",
    "status",
    "rule",
    "currency",
    "lines_minor",
    "payments_minor",
    "difference_minor",
    "explains",
    "matched_at",
    "confirmed_by",
    "confirmed_at",
)


async def write_matches(conn: AsyncConnection, decisions: Sequence[Decision], now: datetime) -> None:
    """Insert matches, their lines and payments, and the ledger entries of the confirmed ones.

    The rows go to the driver as tuples (``gateway.store.bulk``), ``WRITE_CHUNK`` at a time, all in the
    caller's transaction.
    """
    if not decisions:
        return
    first = await _next_match_id(conn)
    ledger = rules_for(conn)
    dialect = conn.dialect
    at = bind_converter(recon_matches.c.matched_at, dialect)(now)
    matches: list[tuple[Any, ...]] = []
    links: list[tuple[Any, ...]] = []
    pays: list[tuple[Any, ...]] = []
    entries: list[Entry] = []
    shapes: dict[tuple[str, str, str, str], tuple[tuple[str, int], ...]] = {}
    for mid, d in enumerate(decisions, start=first):
        line = d.lines[0]
        diff = (d.lines_minor - d.payments_minor) * _fee_sign(line.direction)  # as _match_row's
        rule = d.rule
        tail = (rule.explains, at, None, None)
        matches.append(
            (mid, line.source, d.status, rule.name, line.currency, d.lines_minor, d.payments_minor, diff, *tail)
        )
        links.extend((x.pk, x.line, mid) for x in d.lines)
        pays.extend((p.id, mid) for p in d.payments)
        if d.status == "confirmed" and ledger is not None:
            entries.extend(
                match_entries(
                    ledger,
                    source=line.source,
                    currency=line.currency,
                    payments=[(p.id, p.business_unit, p.amount_minor, p.kind) for p in d.payments],
                    difference_minor=diff if rule.explains else 0,
                    explains=rule.explains,
                    match_id=mid,
                    shapes=shapes,
                )
            )
    for table, columns, rows in (
        (recon_matches, _MATCH_COLUMNS, matches),
        (recon_match_lines, ("statement_pk", "line", "match_id"), links),
        (recon_match_payments, ("instruction_id", "match_id"), pays),
    ):
        await execute_all(
            conn,
            [
                _rows_statement(table, columns, rows[i : i + WRITE_CHUNK], dialect)
                for i in range(0, len(rows), WRITE_CHUNK)
            ],
        )
    # a payment confirmed on the bank's statement is final: its outgoing credit exposure is released
    confirmed = [p.id for d in decisions if d.status == "confirmed" for p in d.payments]
    for i in range(0, len(confirmed), 10_000):  # bound parameters: PostgreSQL takes at most 32,767
        await release_reconciled(conn, confirmed[i : i + 10_000], now)
    await _unsuspend(conn, [(x.pk, x.line) for d in decisions for x in d.lines], ledger, now)
    if entries:
        await post(conn, entries, now, ledger)


async def _unsuspend(
    conn: AsyncConnection, keys: Sequence[tuple[int, int]], ledger: Rules | None, now: datetime
) -> None:
    """Lines that sat in suspense and are matched now: out of suspense, their breaks ``matched``."""
    if not keys:
        return
    wanted = set(keys)
    pks = sorted({pk for pk, _ in keys})
    rows = []
    for i in range(0, len(pks), 500):
        rows.extend(
            (
                await conn.execute(
                    select(recon_breaks).where(
                        recon_breaks.c.statement_pk.in_(pks[i : i + 500]),
                        recon_breaks.c.state.in_(("open", "pending_write_off")),
                        recon_breaks.c.suspense_entry.is_not(None),
                    )
                )
            )
            .mappings()
            .all()
        )
    rows = [r for r in rows if (r["statement_pk"], r["line"]) in wanted]
    for r in rows:
        entry_ids: list[int] = []
        if ledger is not None:
            entry = line_entry(
                ledger,
                "recon_unsuspense",
                source=r["source"],
                currency=r["currency"],
                signed_minor=r["amount_minor"],
                memo=f"matched: {r['subject']}",
            )
            entry_ids = await post(conn, [entry], now, ledger)
        await conn.execute(
            update(recon_breaks)
            .where(recon_breaks.c.id == r["id"])
            .values(
                state="matched",
                closed_at=now,
                closed_by="recon",
                reason="matched",
                closing_entry=entry_ids[0] if entry_ids else None,
            )
        )


# -- returns ---------------------------------------------------------------------------------------

#: the rule a return line is matched by: the return names the entry it returns (NACHA addenda 99)
RETURN_RULE = MatchRule(name="return", reference=True)


async def match_returns(conn: AsyncConnection, source: str | None, on: date | None = None) -> list[Decision]:
    """Return lines (NACHA addenda 99) in no match, each naming by its original trace a payment returned here
    whose settlement is already matched (its batch line), for the same amount: one confirmed match each, of
    the payment's return (``<instruction id>/rt`` in ``recon_match_payments``, so the settlement and the return
    are each matched once). Its entry is ``recon_settled`` negated: the money is back on the reconciled account.

    A return of a payment still settled here stays a ``status_mismatch`` break; one whose settlement is not
    matched yet waits for it (the next run); one of nothing known is an ``unexpected_line``.
    """
    t = statement_lines.c
    query = (
        select(
            t.statement_pk,
            t.line,
            statements.c.source,
            t.amount_minor,
            t.direction,
            t.currency,
            t.value_on,
            t.booked_on,
            t.original_reference,
        )
        .join(statements, statements.c.id == t.statement_pk)
        .where(
            t.kind == "return",
            t.original_reference.is_not(None),
            ~exists().where(
                and_(recon_match_lines.c.statement_pk == t.statement_pk, recon_match_lines.c.line == t.line)
            ),
        )
        .order_by(t.statement_pk, t.line)
    )
    if source is not None:
        query = query.where(statements.c.source == source)
    rows = [r for r in (await conn.execute(query)).all() if on is None or (r.value_on or r.booked_on) == on]
    if not rows:
        return []
    named: dict[tuple[str, str], PaymentView] = {}
    by_source: dict[str, set[str]] = defaultdict(set)
    for r in rows:
        by_source[r.source].add(r.original_reference)
    settled = select(recon_match_payments.c.instruction_id).where(
        recon_match_payments.c.instruction_id == instructions.c.id
    )
    for src, refs in by_source.items():
        names = sorted(refs)
        for i in range(0, len(names), 500):
            found = await conn.execute(
                select(
                    instructions.c.id,
                    instructions.c.reference,
                    instructions.c.partner_reference,
                    instructions.c.amount_minor,
                    instructions.c.currency,
                    instructions.c.updated_at,
                    business_units.c.name,
                )
                .join(business_units, business_units.c.id == instructions.c.business_unit_id)
                .where(
                    instructions.c.adapter == src,
                    instructions.c.partner_reference.in_(names[i : i + 500]),
                    instructions.c.status == "returned",
                    settled.exists(),
                )
            )
            for p in found.all():
                named[(src, p.partner_reference)] = PaymentView(
                    f"{p.id}/rt", p.reference, p.partner_reference, src, p.amount_minor, p.currency,
                    p.updated_at.date(), "", p.name, kind="return",
                )  # fmt: skip
    ids = [p.id for p in named.values()]
    taken: set[str] = set()
    for i in range(0, len(ids), 500):
        taken.update(
            (
                await conn.scalars(
                    select(recon_match_payments.c.instruction_id).where(
                        recon_match_payments.c.instruction_id.in_(ids[i : i + 500])
                    )
                )
            ).all()
        )
    out = []
    for r in rows:
        p = named.get((r.source, r.original_reference))
        if p is None or p.id in taken or p.currency != r.currency or p.amount_minor != r.amount_minor:
            continue
        taken.add(p.id)
        line = LineView(
            r.statement_pk, r.line, r.source, r.amount_minor, r.direction, r.currency, r.value_on or r.booked_on,
            (r.original_reference,), "", kind="return",
        )  # fmt: skip
        out.append(Decision(RETURN_RULE, [line], [p], "confirmed", r.amount_minor, p.amount_minor))
    return out


# -- finding the breaks ----------------------------------------------------------------------------


async def _named(conn: AsyncConnection, by_source: dict[str, set[str]]) -> dict[tuple[str, str], tuple[str, str, bool]]:
    """(source, reference) → (instruction id, status, matched) for payments a reference names by their
    instruction id or partner reference (both indexed; a business-unit reference is known from the run)."""
    out: dict[tuple[str, str], tuple[str, str, bool]] = {}
    matched = select(recon_match_payments.c.instruction_id).where(
        recon_match_payments.c.instruction_id == instructions.c.id
    )
    for source, refs in by_source.items():
        names = sorted(refs)
        for i in range(0, len(names), 500):
            chunk = names[i : i + 500]
            for where in (
                instructions.c.id.in_(chunk),
                and_(instructions.c.adapter == source, instructions.c.partner_reference.in_(chunk)),
            ):
                rows = await conn.execute(
                    select(
                        instructions.c.id,
                        instructions.c.adapter,
                        instructions.c.partner_reference,
                        instructions.c.status,
                        matched.exists().label("matched"),
                    ).where(where)
                )
                for r in rows.all():
                    if r.adapter != source:
                        continue
                    for ref in (r.id, r.partner_reference):
                        if ref in refs:
                            out[(source, ref)] = (r.id, r.status, bool(r.matched))
    return out


def _signed(amount: int, direction: str) -> int:
    return amount if direction == "debit" else -amount


async def _line_breaks(
    conn: AsyncConnection,
    source: str | None,
    known: dict[tuple[str, str], tuple[str, str, bool]],
    pending: frozenset[tuple[int, int]] = frozenset(),
) -> list[Found]:
    """Open booked lines nothing matched, and return / change lines, as breaks (``pending``: lines a dry run
    would match, as if they were)."""
    query = (
        select(statement_lines, statements.c.source)
        .join(statements, statements.c.id == statement_lines.c.statement_pk)
        .outerjoin(
            recon_match_lines,
            and_(
                recon_match_lines.c.statement_pk == statement_lines.c.statement_pk,
                recon_match_lines.c.line == statement_lines.c.line,
            ),
        )
        .where(recon_match_lines.c.match_id.is_(None), not_a_receipt())
    )
    if source is not None:
        query = query.where(statements.c.source == source)
    rows = (await conn.execute(query)).mappings().all()
    if pending:
        rows = [r for r in rows if (r["statement_pk"], r["line"]) not in pending]
    wanted: dict[str, set[str]] = defaultdict(set)
    for r in rows:
        for ref in (r["end_to_end_id"], r["partner_reference"], r["servicer_reference"], r["original_reference"]):
            if ref and (r["source"], ref) not in known:
                wanted[r["source"]].add(ref)
    named = {**await _named(conn, wanted), **known}
    out = []
    for r in rows:
        refs = [x for x in (r["end_to_end_id"], r["partner_reference"], r["servicer_reference"]) if x]
        if r["kind"] in ("return", "change") and r["original_reference"]:
            refs.insert(0, r["original_reference"])  # the entry returned, or whose data changed: named by its trace
        hit = next((named[(r["source"], ref)] for ref in refs if (r["source"], ref) in named), None)
        ref_text = ", ".join(refs) or "no reference"
        base = {
            "subject": line_id(r["statement_pk"], r["line"]),
            "source": r["source"],
            "currency": r["currency"],
            "amount_minor": _signed(r["amount_minor"], r["direction"]),
            "on": r["value_on"] or r["booked_on"],
            "statement_pk": r["statement_pk"],
            "line": r["line"],
            "instruction_id": hit[0] if hit else None,
        }
        if r["kind"] == "change":
            out.append(
                Found(kind="notification_of_change", detail=f"change {r['reason_code'] or ''}: {ref_text}", **base)
            )
        elif r["kind"] == "return":
            if hit and hit[1] == "settled":
                detail = f"settled here, returned there ({r['reason_code'] or 'no reason'}): {ref_text}"
                out.append(Found(kind="status_mismatch", detail=detail, **base))
            elif not hit:
                out.append(
                    Found(
                        kind="unexpected_line", detail=f"return of nothing known: {ref_text}", **base, in_suspense=True
                    )
                )
        elif hit is None:
            out.append(Found(kind="unexpected_line", detail=f"{r['direction']} {ref_text}", **base, in_suspense=True))
        elif hit[2]:
            detail = f"{r['direction']} {ref_text}: {hit[0]} is already matched to another line"
            out.append(Found(kind="duplicate", detail=detail, **base, in_suspense=True))
        elif hit[1] != "settled":
            detail = f"{r['direction']} there, {hit[1]} here: {ref_text}"
            out.append(Found(kind="status_mismatch", detail=detail, **base, in_suspense=True))
        else:
            detail = f"{r['direction']} {ref_text}: names {hit[0]} but no rule's amount criteria hold"
            out.append(Found(kind="unexpected_line", detail=detail, **base, in_suspense=True))
    return out


def _suggestion(match_id: int, row: Mapping[str, Any]) -> Found:
    diff = row["difference_minor"]
    kind = "amount_mismatch" if diff else "suggested_match"
    detail = f"match m_{match_id} by rule {row['rule']}"
    if diff:
        detail += f": statement {row['lines_minor']} vs payments {row['payments_minor']} (minor units)"
        if row["explains"]:
            detail += f"; confirming posts the difference as {row['explains']}"
    return Found(
        kind=kind,
        subject=f"m_{match_id}",
        source=row["source"],
        currency=row["currency"],
        amount_minor=diff,
        on=None,
        detail=detail,
        match_id=match_id,
    )


def _match_row(match_id: int, d: Decision, now: datetime) -> dict[str, Any]:
    """The ``recon_matches`` row of a decision."""
    return {
        "id": match_id,
        "source": d.source,
        "status": d.status,
        "rule": d.rule.name,
        "currency": d.currency,
        "lines_minor": d.lines_minor,
        "payments_minor": d.payments_minor,
        "difference_minor": d.difference_minor * _fee_sign(d.lines[0].direction),
        "explains": d.rule.explains,
        "matched_at": now,
        "confirmed_by": None,
        "confirmed_at": None,
    }


async def _suggestion_breaks(
    conn: AsyncConnection, source: str | None, pending: Sequence[Mapping[str, Any]] = ()
) -> list[Found]:
    """Suggested matches as breaks (``pending``: match rows a dry run would write)."""
    query = (
        select(recon_matches, func.min(recon_match_lines.c.statement_pk).label("pk"))
        .join(recon_match_lines, recon_match_lines.c.match_id == recon_matches.c.id)
        .where(recon_matches.c.status == "suggested")
        .group_by(*recon_matches.c)
    )
    if source is not None:
        query = query.where(recon_matches.c.source == source)
    rows = [*(await conn.execute(query)).mappings().all(), *(r for r in pending if r["status"] == "suggested")]
    return [_suggestion(r["id"], r) for r in rows if source is None or r["source"] == source]


async def _missing_breaks(
    conn: AsyncConnection, rules: ReconRules, source: str | None, taken: frozenset[str] = frozenset()
) -> list[Found]:
    query = select(
        statements.c.source, func.max(func.coalesce(statements.c.period_end, statements.c.period_start)).label("last")
    ).group_by(statements.c.source)
    latest = {r.source: r.last for r in (await conn.execute(query)).all() if r.last is not None}
    out = []
    for src, last in sorted(latest.items()):
        if source is not None and src != source:
            continue
        cutoff = last - timedelta(days=rules.missing_after_days)
        rows = await conn.execute(
            select(instructions.c.id, instructions.c.amount_minor, instructions.c.currency, instructions.c.updated_at)
            .outerjoin(recon_match_payments, recon_match_payments.c.instruction_id == instructions.c.id)
            .where(
                instructions.c.adapter == src,
                instructions.c.status == "settled",
                recon_match_payments.c.match_id.is_(None),
            )
        )
        for r in rows.all():
            settled_on = r.updated_at.date()
            if settled_on > cutoff or r.id in taken:
                continue
            out.append(
                Found(
                    kind="missing_on_statement",
                    subject=r.id,
                    source=src,
                    currency=r.currency,
                    amount_minor=r.amount_minor,
                    on=settled_on,
                    detail=f"settled on {settled_on}, on no statement of {src} through {last}",
                    instruction_id=r.id,
                )
            )
    return out


async def own_totals(conn: AsyncConnection, business_unit: str, day: date) -> dict[str, tuple[int, int]]:
    """currency → (count, sum) of what the business unit sent the gateway on ``day`` (UTC)."""
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    rows = await conn.execute(
        select(instructions.c.currency, func.count(), func.coalesce(func.sum(instructions.c.amount_minor), 0))
        .join(business_units, business_units.c.id == instructions.c.business_unit_id)
        .where(
            business_units.c.name == business_unit,
            instructions.c.created_at >= start,
            instructions.c.created_at < start + timedelta(days=1),
        )
        .group_by(instructions.c.currency)
    )
    return {r[0]: (int(r[1]), int(r[2])) for r in rows.all()}


async def _upstream_breaks(conn: AsyncConnection) -> list[Found]:
    said: dict[tuple[str, date], dict[str, tuple[int, int]]] = defaultdict(dict)
    for r in (await conn.execute(select(control_totals))).mappings().all():
        said[(r["business_unit"], r["day"])][r["currency"]] = (r["count"], r["sum_minor"])
    out = []
    for (bu, day), theirs in sorted(said.items()):
        ours = await own_totals(conn, bu, day)
        for currency, (count, total) in sorted(theirs.items()):
            mine = ours.get(currency, (0, 0))
            if mine == (count, total):
                continue
            out.append(
                Found(
                    kind="upstream_total_mismatch",
                    subject=f"{bu}/{day.isoformat()}/{currency}",
                    source=f"bu:{bu}"[:64],
                    currency=currency,
                    amount_minor=total - mine[1],
                    on=day,
                    detail=f"{bu} says {count} payments, {total} minor units; the gateway has {mine[0]}, {mine[1]}",
                )
            )
    return out


async def find_breaks(
    conn: AsyncConnection,
    rules: ReconRules,
    source: str | None,
    known: dict[tuple[str, str], tuple[str, str, bool]] | None = None,
    pending: Sequence[Mapping[str, Any]] = (),
    pending_decisions: Sequence[Decision] = (),
) -> list[Found]:
    """Every break of now; ``known``: what the run knows of payments by (adapter, reference).

    A dry run passes the matches it would write (``pending`` rows, ``pending_decisions``): the breaks are
    found as if they were written.
    """
    lines = frozenset((x.pk, x.line) for d in pending_decisions for x in d.lines)
    taken = frozenset(p.id for d in pending_decisions for p in d.payments)
    found = (
        await _line_breaks(conn, source, known or {}, lines)
        + await _suggestion_breaks(conn, source, pending)
        + await _missing_breaks(conn, rules, source, taken)
    )
    if source is None:
        found += await _upstream_breaks(conn)
    return found


# -- the run ----------------------------------------------------------------------------------------


async def run_recon(
    engine: AsyncEngine,
    rules: ReconRules,
    *,
    now: datetime,
    source: str | None = None,
    on: date | None = None,
    dry_run: bool = False,
) -> RunReport:
    """Match what the rules explain, post it, and sync the breaks: all in one transaction.

    ``source`` narrows the run to one partner; ``on`` to statement lines of that day.
    ``dry_run``: decide and find the breaks the same way, through connections
    that only read, and report them; nothing is written.

    Python's cyclic collector is held off for the run (``collector_paused``): it reads, decides
    and writes millions of objects that live until it ends.
    """
    with collector_paused():
        return await _run(engine, rules, now=now, source=source, on=on, dry_run=dry_run)


async def _run(
    engine: AsyncEngine, rules: ReconRules, *, now: datetime, source: str | None, on: date | None, dry_run: bool
) -> RunReport:
    report = RunReport(dry_run=dry_run)
    clock, cpu = time.perf_counter(), time.process_time()
    async with engine.connect() as conn:
        lines, payments, book, worker_cpu = await _open_lines_and_payments(conn, source, on)
        sources = {x.source for x in lines}
        if any(x.items for x in lines):  # a card payout batch settles charges too; an ACH batch, returned entries
            itemising = {x.source for x in lines if x.items}
            payments += await load_open_collections(conn, itemising)
            payments += await load_open_returned(conn, itemising)
            book = None  # an index of some of them: ``decide`` indexes them all
        elsewhere = await load_named_elsewhere(conn, sources, now - timedelta(days=NAMED_WINDOW_DAYS))
        rejected = set((await conn.scalars(select(recon_rejections.c.fingerprint))).all())
    clock, cpu = report.lap("read", clock, cpu)
    if worker_cpu is not None:
        report.cpu_seconds["read_worker"] = worker_cpu
    decisions = decide(lines, payments if book is None else book, rules, elsewhere.keys(), rejected)
    clock, cpu = report.lap("decide", clock, cpu)
    report.lines = len(lines)
    report.confirmed = sum(1 for d in decisions if d.status == "confirmed")
    report.suggested = len(decisions) - report.confirmed
    report.matched_lines = sum(len(d.lines) for d in decisions)
    known = _known(elsewhere, decisions, payments)
    if dry_run:
        await _preview(engine, rules, report, decisions, known, source, now)
        return report
    try:
        async with engine.begin() as conn:
            await write_matches(conn, decisions, now)
            returns = await match_returns(conn, source, on)
            await write_matches(conn, returns, now)
            report.lines += len(returns)
            report.confirmed += len(returns)
            report.matched_lines += len(returns)
            clock, cpu = report.lap("write", clock, cpu)
            found = await find_breaks(conn, rules, source, known)
            counts = await sync_breaks(conn, found, now=now, scope=source)
            clock, cpu = report.lap("breaks", clock, cpu)
    except IntegrityError:
        raise ConflictError("another reconciliation run took some of these lines or payments; run it again") from None
    report.breaks_opened, report.breaks_closed = counts["opened"], counts["closed"]
    return report


async def _open_lines_and_payments(
    conn: AsyncConnection, source: str | None, on: date | None
) -> tuple[list[LineView], list[PaymentView], PaymentBook | None, float | None]:
    """The open lines (of day ``on`` if given), the settled payments through their sources, the payments' index
    if it was built here, and the CPU seconds of the worker that read the lines, if one did.

    A large run on SQLite reads its lines in a worker process (``LineReader``) while it reads the payments of
    every statement's source here (the lines' sources are known only once they are read), then indexes the
    payments for ``decide`` (``index_payments``) while the worker may still be reading. If the lines have fewer
    sources, the payments of those are read again (and the index dropped), so that ``decide`` gets the same
    payments in the same order as from the serial read.
    """
    reader = await LineReader.start(conn, source)
    if reader is None:
        lines = await load_open_lines(conn, source)
        if on is not None:
            lines = [x for x in lines if x.day == on]
        return lines, await load_open_payments(conn, {x.source for x in lines}), None, None
    book: PaymentBook | None
    try:
        guess = await statement_sources(conn, source)
        payments = await load_open_payments(conn, guess)
        book = index_payments(payments)
        lines = await reader.lines(conn, source)
    finally:
        await reader.close()
    if on is not None:
        lines = [x for x in lines if x.day == on]
    sources = {x.source for x in lines}
    if sources != guess:
        payments = await load_open_payments(conn, sources)
        book = None
    return lines, payments, book, reader.cpu_seconds


def _known(
    elsewhere: Mapping[tuple[str, str], tuple[str, str, bool]],
    decisions: Sequence[Decision],
    payments: Sequence[PaymentView],
) -> dict[tuple[str, str], tuple[str, str, bool]]:
    """(adapter, reference) → (payment, status, matched) as the run leaves them."""
    known = dict(elsewhere)
    for d in decisions:  # matched by this run
        known.update(
            ((p.adapter, k), (p.id, "settled", True)) for p in d.payments if p.kind == "payment" for k in p.keys
        )
    taken = {p.id for d in decisions for p in d.payments}
    for p in payments:  # still open
        if p.id not in taken and p.kind == "payment":
            known.update(((p.adapter, k), (p.id, "settled", False)) for k in p.keys)
    return known


async def _preview(
    engine: AsyncEngine,
    rules: ReconRules,
    report: RunReport,
    decisions: Sequence[Decision],
    known: dict[tuple[str, str], tuple[str, str, bool]],
    source: str | None,
    now: datetime,
) -> None:
    """A dry run's report: the matches and the breaks a run would write, found by reading only."""
    async with engine.connect() as conn:
        first = await _next_match_id(conn)
        rows = [_match_row(first + n, d, now) for n, d in enumerate(decisions)]
        found = await find_breaks(conn, rules, source, known, rows, decisions)
        plan = await plan_breaks(conn, found, scope=source)
    for row, d in zip(rows, decisions, strict=True):
        report.would_match.append(
            {
                "match": f"m_{row['id']}",
                "status": d.status,
                "rule": d.rule.name,
                "lines": [x.id for x in d.lines],
                "payments": [p.id for p in d.payments],
                "lines_amount": amount_text(d.lines_minor, d.currency),
                "payments_amount": amount_text(d.payments_minor, d.currency),
                "difference": amount_text(row["difference_minor"], d.currency),
            }
        )
    report.would_open = [
        {
            "kind": f.kind,
            "subject": f.subject,
            "source": f.source,
            "amount": amount_text(f.amount_minor, f.currency),
            "currency": f.currency,
            "detail": f.detail[:200],
        }
        for f in plan.new
    ]
    report.would_close = [f"brk_{c[0]}" for c in plan.closed]
    report.breaks_opened, report.breaks_closed = len(plan.new), len(plan.closed)


# -- by hand ---------------------------------------------------------------------------------------


def _line_key(text: str) -> tuple[int, int]:
    found = LINE_ID.fullmatch(text)
    if found is None:
        raise NotFoundError(f"{text[:60]!r} is not a statement line id (ln_<statement>_<line>)")
    return int(found.group(1)), int(found.group(2))


async def _decide_suggested(
    conn: AsyncConnection,
    match_id: int,
    status: str,
    by: str,
    now: datetime,
    *,
    refused: Callable[[str], str],
    raced: str,
) -> Mapping[str, Any]:
    """Move a suggested match to ``status`` (confirmed or rejected) by ``by``; ``NotFoundError`` without it,
    ``ConflictError`` (``refused(its status)``, or ``raced`` when another call moved it first) otherwise."""
    row = (await conn.execute(select(recon_matches).where(recon_matches.c.id == match_id))).mappings().first()
    if row is None:
        raise NotFoundError(f"no match m_{match_id}")
    if row["status"] != "suggested":
        raise ConflictError(f"match m_{match_id} {refused(row['status'])}")
    done = await conn.execute(
        update(recon_matches)
        .where(recon_matches.c.id == match_id, recon_matches.c.status == "suggested")
        .values(status=status, confirmed_by=by[:64], confirmed_at=now)
    )
    if done.rowcount != 1:
        raise ConflictError(f"match m_{match_id} {raced}")
    return row


async def _confirm(conn: AsyncConnection, match_id: int, *, by: str, now: datetime) -> list[str]:
    row = await _decide_suggested(
        conn, match_id, "confirmed", by, now, refused=lambda _: "is already confirmed", raced="is already confirmed"
    )
    pays = await _match_views(conn, match_id, now)
    await release_reconciled(conn, [p.id for p in pays if p.kind == "payment"], now)
    ledger = rules_for(conn)
    if ledger is not None:
        entries = match_entries(
            ledger,
            source=row["source"],
            currency=row["currency"],
            payments=[(p.id, p.business_unit, p.amount_minor, p.kind) for p in pays],
            difference_minor=row["difference_minor"],
            explains=row["explains"],
            match_id=match_id,
        )
        await post(conn, entries, now, ledger)
    await conn.execute(
        update(recon_breaks)
        .where(
            recon_breaks.c.match_id == match_id,
            recon_breaks.c.state.in_(("open", "pending_write_off")),
        )
        .values(state="matched", closed_at=now, closed_by=by[:64], reason="confirmed by hand")
    )
    return [p.id for p in pays]


async def _match_views(conn: AsyncConnection, match_id: int, now: datetime) -> list[PaymentView]:
    """The payments (and charges, chargebacks) of a stored match, as the rules saw them; by id."""
    ids = list(
        (
            await conn.scalars(
                select(recon_match_payments.c.instruction_id).where(recon_match_payments.c.match_id == match_id)
            )
        ).all()
    )
    out = []
    for table, kind_of in ((instructions, None), (collections, "collection")):
        wanted = sorted({i.removesuffix("/cb") for i in ids}) if kind_of else sorted(ids)
        rows = await conn.execute(
            select(
                table.c.id,
                table.c.reference,
                table.c.partner_reference,
                table.c.adapter,
                table.c.amount_minor,
                table.c.currency,
                business_units.c.name,
            )
            .join(business_units, business_units.c.id == table.c.business_unit_id)
            .where(table.c.id.in_(wanted))
        )
        for r in rows.all():
            kinds = (
                [("payment", r.id)]
                if kind_of is None
                else [(k, v) for k, v in (("charge", r.id), ("chargeback", f"{r.id}/cb")) if v in ids]
            )
            for kind, view_id in kinds:
                out.append(
                    PaymentView(
                        view_id,
                        r.reference,
                        r.partner_reference,
                        r.adapter or "",
                        r.amount_minor,
                        r.currency,
                        now.date(),
                        "",
                        r.name,
                        kind=kind,
                    )
                )
    return sorted(out, key=lambda p: p.id)


async def confirm_match(engine: AsyncEngine, ref: str, *, by: str, now: datetime) -> list[str]:
    """Confirm a suggested match (``m_<id>``, or one of its lines ``ln_…``); the payments it settles.

    The ledger entries (settlement, and the difference as a fee unless the rule
    named FX) are posted in the same transaction.
    """
    async with engine.begin() as conn:
        return await _confirm(conn, await _match_of(conn, ref), by=by, now=now)


async def _match_of(conn: AsyncConnection, ref: str) -> int:
    """The match ``m_<id>`` names, or the one statement line ``ln_…`` is in."""
    if ref.startswith("m_") and ref[2:].isdigit() and len(ref) < 22:
        return int(ref[2:])
    pk, number = _line_key(ref)
    match_id = await conn.scalar(
        select(recon_match_lines.c.match_id).where(
            recon_match_lines.c.statement_pk == pk, recon_match_lines.c.line == number
        )
    )
    if match_id is None:
        raise NotFoundError(f"statement line {ref} has no suggested match")
    return int(match_id)


async def match_by_hand(
    engine: AsyncEngine, break_id: str, instruction_ids: Iterable[str], *, by: str, now: datetime
) -> int:
    """Match a line break's statement line to settled payments finance names; the match id.

    The difference between the line and the payments is posted as a fee.
    """
    pk = parse_break_id(break_id)
    ids = sorted(set(instruction_ids))
    if not ids or len(ids) > 1000:
        raise BadRequestError("name 1 to 1000 payments (instruction ids) for the line")
    try:
        async with engine.begin() as conn:
            row = (await conn.execute(select(recon_breaks).where(recon_breaks.c.id == pk))).mappings().first()
            if row is None:
                raise NotFoundError(f"no break {break_id}")
            if row["state"] not in ("open", "pending_write_off"):
                raise ConflictError(f"break {break_id} is already {row['state']}")
            if row["statement_pk"] is None or row["kind"] not in SUSPENSE_KINDS:
                raise ConflictError(f"break {break_id} ({row['kind']}) is no unexplained statement line to match")
            line = (
                (
                    await conn.execute(
                        select(statement_lines).where(
                            statement_lines.c.statement_pk == row["statement_pk"], statement_lines.c.line == row["line"]
                        )
                    )
                )
                .mappings()
                .one()
            )
            rows = (
                (
                    await conn.execute(
                        select(instructions, business_units.c.name.label("bu"))
                        .join(business_units, business_units.c.id == instructions.c.business_unit_id)
                        .where(instructions.c.id.in_(ids))
                    )
                )
                .mappings()
                .all()
            )
            if len(rows) != len(ids):
                missing = sorted(set(ids) - {r["id"] for r in rows})
                raise NotFoundError(f"no payment {missing[0]}")
            for r in rows:
                if r["status"] != "settled" or r["adapter"] != row["source"] or r["currency"] != line["currency"]:
                    raise ConflictError(
                        f"{r['id']} is {r['status']} through {r['adapter']} in {r['currency']}: only settled payments "
                        f"through {row['source']} in {line['currency']} match this line"
                    )
            view = LineView(
                line["statement_pk"],
                line["line"],
                row["source"],
                line["amount_minor"],
                line["direction"],
                line["currency"],
                line["value_on"] or line["booked_on"],
                (),
                "",
            )
            pays = [
                PaymentView(
                    r["id"],
                    r["reference"],
                    r["partner_reference"],
                    r["adapter"],
                    r["amount_minor"],
                    r["currency"],
                    r["updated_at"].date(),
                    "",
                    r["bu"],
                )
                for r in rows
            ]
            total = sum(p.amount_minor for p in pays)
            decision = Decision(
                MatchRule(name="by-hand", reference=True, any_amount=True, explains="fee"),
                [view],
                pays,
                "confirmed",
                view.amount_minor,
                total,
            )
            mid = await _next_match_id(conn)
            await write_matches(conn, [decision], now)
            await conn.execute(
                update(recon_matches).where(recon_matches.c.id == mid).values(confirmed_by=by[:64], confirmed_at=now)
            )
            return mid
    except IntegrityError:
        raise ConflictError("one of these payments or the line is already matched") from None


async def reject_match(engine: AsyncEngine, ref: str, reason: str, *, by: str, now: datetime) -> dict[str, Any]:
    """Reject a suggested match (``m_<id>``, or one of its lines ``ln_…``): its lines and payments are free again.

    The match stays, ``rejected``, without lines or payments; its break is
    resolved with the reason; the pairing's fingerprint is kept so no run
    suggests the same lines with the same payments again (``pairing_fingerprint``).
    A confirmed match cannot be rejected (it is posted; ``409``).
    """
    reason = " ".join(reason.split())
    if not reason:
        raise BadRequestError("a rejection needs a reason", errors=[FieldError("/reason", "required")])
    async with engine.begin() as conn:
        match_id = await _match_of(conn, ref)
        row = await _decide_suggested(
            conn,
            match_id,
            "rejected",
            by,
            now,
            refused=lambda status: f"is {status}: only a suggested match can be rejected",
            raced="was confirmed or rejected meanwhile",
        )
        links = (
            await conn.execute(
                select(
                    statement_lines.c.statement_pk,
                    statement_lines.c.line,
                    statement_lines.c.amount_minor,
                    statement_lines.c.direction,
                )
                .join(
                    recon_match_lines,
                    and_(
                        recon_match_lines.c.statement_pk == statement_lines.c.statement_pk,
                        recon_match_lines.c.line == statement_lines.c.line,
                    ),
                )
                .where(recon_match_lines.c.match_id == match_id)
            )
        ).all()
        pays = await _match_views(conn, match_id, now)
        fingerprint = pairing_fingerprint(
            [
                LineView(
                    r.statement_pk, r.line, row["source"], r.amount_minor, r.direction, row["currency"], None, (), ""
                )
                for r in links
            ],
            pays,
        )
        await conn.execute(delete(recon_match_lines).where(recon_match_lines.c.match_id == match_id))
        await conn.execute(delete(recon_match_payments).where(recon_match_payments.c.match_id == match_id))
        exists_already = await conn.scalar(
            select(func.count()).select_from(recon_rejections).where(recon_rejections.c.fingerprint == fingerprint)
        )
        if not exists_already:
            await conn.execute(
                insert(recon_rejections).values(
                    fingerprint=fingerprint,
                    match_id=match_id,
                    source=row["source"],
                    rejected_by=by[:64],
                    rejected_at=now,
                    reason=reason[:200],
                )
            )
        await conn.execute(
            update(recon_breaks)
            .where(recon_breaks.c.match_id == match_id, recon_breaks.c.state.in_(("open", "pending_write_off")))
            .values(state="resolved", closed_at=now, closed_by=by[:64], reason=f"rejected: {reason}"[:200])
        )
    return {
        "match": f"m_{match_id}",
        "status": "rejected",
        "lines": [line_id(r.statement_pk, r.line) for r in links],
        "payments": sorted(p.id for p in pays),
        "reason": reason[:200],
    }
