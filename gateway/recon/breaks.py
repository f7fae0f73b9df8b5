"""Breaks: what reconciliation could not explain, stored as a workflow (table ``recon_breaks``).

Every run (``gateway.recon.service.run_recon``) finds the breaks of now and
syncs them into the table in the run's transaction: a new one is opened (a
statement line nothing explains goes to suspense in the ledger), one whose cause
is gone (its line or payment was matched) is closed as ``matched``.

Kinds: ``missing_on_statement`` (a settled payment on no statement N days after
its partner's latest one), ``unexpected_line``, ``amount_mismatch`` (a match
whose amounts differ by more than a rule explains), ``duplicate`` (a line naming
a payment another line already settled), ``status_mismatch`` (debited there but
not settled here; settled here but returned there), ``suggested_match`` (a match
finance has to confirm), ``notification_of_change`` and
``upstream_total_mismatch`` (a business unit's control totals differ from the
gateway's).

A break has an owner and comments and ends ``resolved`` (a reason),
``matched`` (by the rules or by hand) or ``written_off`` (a ledger entry moves
its suspense to ``write_off:{adapter}``); a write-off above the threshold of
``config/reconciliation.yaml`` is ``pending_write_off`` until a second finance
person approves it (four eyes).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from gateway.domain.money import amount_text
from gateway.errors import BadRequestError, ConflictError, FieldError, FourEyesError, NotFoundError
from gateway.recon.postings import line_entry
from gateway.recon.rules import ReconRules
from gateway.store.journal import post, rules_for
from gateway.store.tables import recon_break_comments, recon_breaks, recon_match_lines, statement_lines

__all__ = [
    "BREAK_KINDS",
    "BREAK_STATES",
    "OPEN_STATES",
    "BreakPlan",
    "Found",
    "add_comment",
    "assign_break",
    "break_view",
    "get_break",
    "list_breaks",
    "parse_break_id",
    "plan_breaks",
    "resolve_break",
    "summary",
    "sync_breaks",
    "write_off_break",
]

BREAK_KINDS = (
    "missing_on_statement",
    "unexpected_line",
    "amount_mismatch",
    "duplicate",
    "status_mismatch",
    "suggested_match",
    "notification_of_change",
    "upstream_total_mismatch",
)
BREAK_STATES = ("open", "pending_write_off", "resolved", "matched", "written_off")
OPEN_STATES = ("open", "pending_write_off")
#: kinds whose statement line is money nothing in the books explains: it sits in suspense
SUSPENSE_KINDS = frozenset({"unexpected_line", "duplicate", "status_mismatch"})


@dataclass(frozen=True)
class Found:
    """A break as a run finds it (before it is stored)."""

    kind: str
    subject: str
    source: str
    currency: str
    amount_minor: int
    on: date | None
    detail: str
    statement_pk: int | None = None
    line: int | None = None
    instruction_id: str | None = None
    match_id: int | None = None
    in_suspense: bool = False  # a booked line: post it to suspense when the break opens


@dataclass(frozen=True)
class BreakPlan:
    """What syncing the breaks with ``found`` does: the breaks it opens and the open ones it closes."""

    new: list[Found]
    #: (id, kind, subject) of open breaks whose cause is gone
    closed: list[tuple[int, str, str]]
    #: subject -> the suspense entry an open break of it already has (kept when its kind changes)
    carried: dict[str, int]


async def plan_breaks(conn: AsyncConnection, found: list[Found], *, scope: str | None) -> BreakPlan:
    """Which breaks ``found`` opens and which open ones it closes; reads only (a dry run shows this)."""
    query = select(recon_breaks.c.id, recon_breaks.c.kind, recon_breaks.c.subject, recon_breaks.c.suspense_entry).where(
        recon_breaks.c.state.in_(OPEN_STATES)
    )
    if scope is not None:
        query = query.where(recon_breaks.c.source == scope)
    open_rows = (await conn.execute(query)).all()
    seen = {(f.kind, f.subject) for f in found}
    closed = [(r.id, r.kind, r.subject) for r in open_rows if (r.kind, r.subject) not in seen]
    # a line whose break changes kind (unexpected -> duplicate) keeps the suspense it is already in
    carried = {r.subject: r.suspense_entry for r in open_rows if (r.kind, r.subject) not in seen and r.suspense_entry}
    ever = set()
    if found:
        subjects = sorted({f.subject for f in found})
        for i in range(0, len(subjects), 500):
            rows = await conn.execute(
                select(recon_breaks.c.kind, recon_breaks.c.subject).where(
                    recon_breaks.c.subject.in_(subjects[i : i + 500])
                )
            )
            ever.update((r.kind, r.subject) for r in rows.all())
    return BreakPlan([f for f in found if (f.kind, f.subject) not in ever], closed, carried)


async def sync_breaks(conn: AsyncConnection, found: list[Found], *, now: datetime, scope: str | None) -> dict[str, int]:
    """Open the new breaks, close those whose cause is gone (``scope``: only one source's); counts."""
    plan = await plan_breaks(conn, found, scope=scope)
    new, carried = plan.new, plan.carried
    closed_ids = [c[0] for c in plan.closed]
    rules = rules_for(conn)
    rows: list[dict[str, Any]] = []
    entries = []
    for f in new:
        rows.append(
            {
                "kind": f.kind,
                "subject": f.subject,
                "source": f.source,
                "state": "open",
                "currency": f.currency,
                "amount_minor": f.amount_minor,
                "on_date": f.on,
                "detail": f.detail[:200],
                "statement_pk": f.statement_pk,
                "line": f.line,
                "instruction_id": f.instruction_id,
                "match_id": f.match_id,
                "opened_at": now,
            }
        )
        if f.in_suspense and rules is not None and f.subject not in carried:
            entries.append(
                line_entry(
                    rules,
                    "recon_suspense",
                    source=f.source,
                    currency=f.currency,
                    signed_minor=f.amount_minor,
                    memo=f"{f.kind} {f.subject}",
                )
            )
    if rows:
        ids = await post(conn, entries, now, rules) if entries else []
        it = iter(ids)
        for row, f in zip(rows, new, strict=True):
            if f.in_suspense and rules is not None:
                row["suspense_entry"] = carried[f.subject] if f.subject in carried else next(it)
        await conn.execute(insert(recon_breaks), [{"suspense_entry": None, **r} for r in rows])
    for i in range(0, len(closed_ids), 500):
        await conn.execute(
            update(recon_breaks)
            .where(recon_breaks.c.id.in_(closed_ids[i : i + 500]), recon_breaks.c.state.in_(OPEN_STATES))
            .values(state="matched", closed_at=now, closed_by="recon", reason="cleared: the rules explain it now")
        )
    return {"opened": len(rows), "closed": len(closed_ids)}


# -- reading -------------------------------------------------------------------------------------


def break_view(r: Any, today: date, comments: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """A break as the API and the CLI show it."""
    doc = {
        "id": f"brk_{r['id']}",
        "kind": r["kind"],
        "state": r["state"],
        "subject": r["subject"],
        "source": r["source"],
        "currency": r["currency"],
        "amount": amount_text(r["amount_minor"], r["currency"]),
        "date": r["on_date"].isoformat() if r["on_date"] else None,
        "age_days": (today - r["opened_at"].date()).days,
        "detail": r["detail"],
        "instruction_id": r["instruction_id"],
        "owner": r["owner"],
        "opened_at": r["opened_at"].isoformat(),
        "closed_at": r["closed_at"].isoformat() if r["closed_at"] else None,
        "closed_by": r["closed_by"],
        "reason": r["reason"],
        "write_off_requested_by": r["write_off_by"],
    }
    if comments is not None:
        doc["comments"] = comments
    return doc


def parse_break_id(text: str) -> int:
    if not text.startswith("brk_") or not text[4:].isdigit() or len(text) > 22 or text[4] == "0":
        raise NotFoundError(f"{text[:40]!r} is not a break id (brk_<number>)")
    return int(text[4:])


async def list_breaks(
    engine: AsyncEngine,
    *,
    states: tuple[str, ...] = OPEN_STATES,
    kind: str | None = None,
    source: str | None = None,
    after: int = 0,
    limit: int = 1000,
) -> list[dict[str, Any]]:
    """Breaks in these states, oldest first (by id), from after ``after``."""
    query = (
        select(recon_breaks)
        .where(recon_breaks.c.state.in_(states), recon_breaks.c.id > after)
        .order_by(recon_breaks.c.id)
        .limit(limit)
    )
    if kind is not None:
        query = query.where(recon_breaks.c.kind == kind)
    if source is not None:
        query = query.where(recon_breaks.c.source == source)
    async with engine.connect() as conn:
        return [dict(r) for r in (await conn.execute(query)).mappings().all()]


async def get_break(engine: AsyncEngine, break_id: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    pk = parse_break_id(break_id)
    async with engine.connect() as conn:
        row = (await conn.execute(select(recon_breaks).where(recon_breaks.c.id == pk))).mappings().first()
        if row is None:
            raise NotFoundError(f"no break {break_id}")
        comments = (
            await conn.execute(
                select(recon_break_comments)
                .where(recon_break_comments.c.break_id == pk)
                .order_by(recon_break_comments.c.id)
            )
        ).mappings()
        return dict(row), [{"by": c["by"], "at": c["at"].isoformat(), "text": c["text"]} for c in comments]


async def summary(engine: AsyncEngine, today: date) -> dict[str, Any]:
    """Matched share of statement lines, open breaks by kind and by age bucket."""
    buckets = (("0-1", 0, 1), ("2-7", 2, 7), ("8-30", 8, 30), ("31+", 31, 10**6))
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                select(recon_breaks.c.kind, recon_breaks.c.opened_at).where(recon_breaks.c.state.in_(OPEN_STATES))
            )
        ).all()
        counts = (await conn.execute(_line_counts())).one()
    by_kind = {k: 0 for k in BREAK_KINDS}
    by_age = {name: 0 for name, _, _ in buckets}
    for r in rows:
        by_kind[r.kind] += 1
        age = (today - r.opened_at.date()).days
        for name, lo, hi in buckets:
            if lo <= age <= hi:
                by_age[name] += 1
    lines, matched = int(counts[0] or 0), int(counts[1] or 0)
    return {
        "statement_lines": lines,
        "matched_lines": matched,
        "matched_percent": round(100 * matched / lines, 2) if lines else 100.0,
        "open_breaks": len(rows),
        "by_kind": by_kind,
        "by_age_days": by_age,
    }


def _line_counts() -> Any:
    booked = select(func.count()).select_from(statement_lines).where(statement_lines.c.kind == "booked")
    matched = select(func.count()).select_from(recon_match_lines)
    return select(booked.scalar_subquery(), matched.scalar_subquery())


# -- workflow ------------------------------------------------------------------------------------


async def _locked(conn: AsyncConnection, pk: int, break_id: str) -> dict[str, Any]:
    query = select(recon_breaks).where(recon_breaks.c.id == pk)
    if conn.dialect.name == "postgresql":
        query = query.with_for_update()
    row = (await conn.execute(query)).mappings().first()
    if row is None:
        raise NotFoundError(f"no break {break_id}")
    return dict(row)


def _still_open(row: dict[str, Any], break_id: str) -> None:
    if row["state"] not in OPEN_STATES:
        raise ConflictError(f"break {break_id} is already {row['state']}")


async def assign_break(engine: AsyncEngine, break_id: str, owner: str, *, by: str, now: datetime) -> None:
    pk = parse_break_id(break_id)
    async with engine.begin() as conn:
        row = await _locked(conn, pk, break_id)
        _still_open(row, break_id)
        await conn.execute(update(recon_breaks).where(recon_breaks.c.id == pk).values(owner=owner[:64]))
        await conn.execute(
            insert(recon_break_comments).values(break_id=pk, by=by[:64], at=now, text=f"owner: {owner[:64]}")
        )


async def add_comment(engine: AsyncEngine, break_id: str, text: str, *, by: str, now: datetime) -> None:
    pk = parse_break_id(break_id)
    if not text.strip():
        raise BadRequestError("/text: a comment needs some text", errors=[FieldError("/text", "empty")])
    async with engine.begin() as conn:
        await _locked(conn, pk, break_id)
        await conn.execute(insert(recon_break_comments).values(break_id=pk, by=by[:64], at=now, text=text[:1000]))


async def resolve_break(engine: AsyncEngine, break_id: str, reason: str, *, by: str, now: datetime) -> None:
    """Close a break with a reason (no ledger entry: a line in suspense must be matched or written off)."""
    pk = parse_break_id(break_id)
    async with engine.begin() as conn:
        row = await _locked(conn, pk, break_id)
        _still_open(row, break_id)
        if row["suspense_entry"] is not None:
            raise ConflictError(
                f"break {break_id}'s line sits in suspense: match it by hand or write it off, so the ledger follows"
            )
        await conn.execute(
            update(recon_breaks)
            .where(recon_breaks.c.id == pk)
            .values(state="resolved", closed_at=now, closed_by=by[:64], reason=reason[:200])
        )


async def write_off_break(
    engine: AsyncEngine, break_id: str, reason: str, rules: ReconRules, *, by: str, now: datetime
) -> str:
    """Write a break's suspense off (four eyes above the threshold); its new state."""
    pk = parse_break_id(break_id)
    async with engine.begin() as conn:
        row = await _locked(conn, pk, break_id)
        _still_open(row, break_id)
        if row["suspense_entry"] is None:
            raise ConflictError(
                f"break {break_id} has nothing in suspense to write off; resolve it with a reason or match it"
            )
        above = abs(row["amount_minor"]) > rules.four_eyes_minor(row["currency"])
        if above and row["state"] == "open":
            await conn.execute(
                update(recon_breaks)
                .where(recon_breaks.c.id == pk)
                .values(state="pending_write_off", write_off_by=by[:64], reason=reason[:200])
            )
            return "pending_write_off"
        if above and row["write_off_by"] == by[:64]:
            raise FourEyesError(f"four eyes: {by} asked for this write-off; another finance person must approve it")
        ledger = rules_for(conn)
        entry_ids: list[int] = []
        if ledger is not None:
            entry = line_entry(
                ledger,
                "recon_write_off",
                source=row["source"],
                currency=row["currency"],
                signed_minor=row["amount_minor"],
                memo=f"write-off of {break_id}: {reason[:100]}",
            )
            entry_ids = await post(conn, [entry], now, ledger)
        await conn.execute(
            update(recon_breaks)
            .where(recon_breaks.c.id == pk)
            .values(
                state="written_off",
                closed_at=now,
                closed_by=by[:64],
                reason=(row["reason"] if above and row["reason"] else reason)[:200],
                closing_entry=entry_ids[0] if entry_ids else None,
            )
        )
        return "written_off"
