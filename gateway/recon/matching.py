"""Matching statement lines to the gateway's payments, and the breaks left over.

Rules are tried in order for each booked statement line not matched yet; a line
and a payment are each used at most once (``recon_matches`` has the line as its
key and the instruction id unique):

1. ``instruction-id`` — the line carries the gateway's instruction id (camt
   ``InstrId``/``EndToEndId``, an MT940 or NACHA reference);
2. ``end-to-end-id`` — the line's end-to-end id is the business unit's reference
   of a payment sent through that partner;
3. ``partner-reference`` — the line's partner or servicer reference is the one
   the partner gave the payment when it took it;
4. ``amount-date-counterparty`` — one payment through that partner, in the same
   currency, within the amount tolerance, within the date window, to the same
   counterparty name.

A match by reference with the same amount and currency is ``confirmed``; a
reference match whose amount differs, a reference shared by several payments,
and every match by rule 4 are ``suggested`` and wait for finance to confirm.
What is left are breaks: statement lines nothing explains, returns and
notifications of change, suggested matches, and settled payments missing from
their partner's statements.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import and_, exists, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from gateway.config import ReconciliationSettings
from gateway.domain.money import amount_text
from gateway.errors import ConflictError, NotFoundError
from gateway.store.exposure import release_reconciled
from gateway.store.tables import instructions, recon_matches, statement_lines, statements

__all__ = [
    "BREAK_KINDS",
    "LINE_ID",
    "Break",
    "MatchRun",
    "confirm_match",
    "line_id",
    "list_breaks",
    "run_matching",
]

#: what a break can be
BREAK_KINDS = ("unexpected_line", "duplicate", "return", "change", "suggested_match", "missing_on_statement")
#: a statement line's id in the API: ``ln_<statement>_<line>``
LINE_ID = re.compile(r"^ln_([1-9][0-9]{0,17})_([1-9][0-9]{0,8})$")
#: the statuses in which a payment may be on a partner's statement
_ON_STATEMENT = ("submitted", "settled", "returned")
_LINE_BREAK = {"booked": "unexpected_line", "return": "return", "change": "change"}


def line_id(statement_pk: int, line: int) -> str:
    return f"ln_{statement_pk}_{line}"


def _name(value: str | None) -> str:
    return " ".join((value or "").casefold().split())


@dataclass(frozen=True)
class MatchRun:
    """What one run of the rules found."""

    lines: int  # unmatched booked lines looked at
    confirmed: int
    suggested: int

    def as_dict(self) -> dict[str, int]:
        return {
            "lines": self.lines,
            "confirmed": self.confirmed,
            "suggested": self.suggested,
            "unmatched": self.lines - self.confirmed - self.suggested,
        }


@dataclass(frozen=True)
class _Line:
    pk: int
    line: int
    source: str
    amount_minor: int
    currency: str
    day: date | None
    end_to_end_id: str | None
    partner_reference: str | None
    servicer_reference: str | None
    counterparty: str


@dataclass(frozen=True)
class _Payment:
    id: str
    reference: str
    partner_reference: str | None
    adapter: str
    amount_minor: int
    currency: str
    day: date
    creditor: str


def _tolerance(rules: ReconciliationSettings, amount: int) -> int:
    return max(rules.amount_tolerance_minor, amount * rules.amount_tolerance_bp // 10_000)


async def _unmatched_lines(conn: AsyncConnection, source: str | None) -> list[_Line]:
    query = (
        select(statement_lines, statements.c.source)
        .join(statements, statements.c.id == statement_lines.c.statement_pk)
        .where(
            statement_lines.c.kind == "booked",
            ~exists().where(
                and_(
                    recon_matches.c.statement_pk == statement_lines.c.statement_pk,
                    recon_matches.c.line == statement_lines.c.line,
                )
            ),
        )
        .order_by(statement_lines.c.statement_pk, statement_lines.c.line)
    )
    if source is not None:
        query = query.where(statements.c.source == source)
    return [
        _Line(
            pk=r.statement_pk,
            line=r.line,
            source=r.source,
            amount_minor=r.amount_minor,
            currency=r.currency,
            day=r.value_on or r.booked_on,
            end_to_end_id=r.end_to_end_id,
            partner_reference=r.partner_reference,
            servicer_reference=r.servicer_reference,
            counterparty=_name(r.counterparty_name),
        )
        for r in (await conn.execute(query)).all()
    ]


async def _unmatched_payments(conn: AsyncConnection, adapters: Iterable[str]) -> list[_Payment]:
    query = select(
        instructions.c.id,
        instructions.c.reference,
        instructions.c.partner_reference,
        instructions.c.adapter,
        instructions.c.amount_minor,
        instructions.c.currency,
        instructions.c.updated_at,
        instructions.c.creditor_name,
    ).where(
        instructions.c.adapter.in_(sorted(set(adapters))),
        instructions.c.status.in_(_ON_STATEMENT),
        ~exists().where(recon_matches.c.instruction_id == instructions.c.id),
    )
    return [
        _Payment(
            id=r.id,
            reference=r.reference,
            partner_reference=r.partner_reference,
            adapter=r.adapter,
            amount_minor=r.amount_minor,
            currency=r.currency,
            day=r.updated_at.date(),
            creditor=_name(r.creditor_name),
        )
        for r in (await conn.execute(query)).all()
    ]


class _Book:
    """The payments still open, indexed for each rule; a payment taken by a match leaves every index."""

    def __init__(self, payments: list[_Payment]) -> None:
        self.by_id = {p.id: p for p in payments}
        self.by_reference: dict[tuple[str, str], list[_Payment]] = defaultdict(list)
        self.by_partner_reference: dict[tuple[str, str], list[_Payment]] = defaultdict(list)
        self.by_amount: dict[tuple[str, str], list[_Payment]] = defaultdict(list)
        for p in payments:
            self.by_reference[(p.adapter, p.reference)].append(p)
            if p.partner_reference:
                self.by_partner_reference[(p.adapter, p.partner_reference)].append(p)
            self.by_amount[(p.adapter, p.currency)].append(p)
        self.taken: set[str] = set()
        #: (adapter, id / reference / partner reference) of every payment already matched, in this run or before
        self.claimed: set[tuple[str, str]] = set()

    def take(self, p: _Payment) -> None:
        self.taken.add(p.id)
        self.claimed.update((p.adapter, ref) for ref in (p.id, p.reference, p.partner_reference) if ref)

    def open(self, found: Iterable[_Payment | None]) -> list[_Payment]:
        return [p for p in found if p is not None and p.id not in self.taken]


def _decide(line: _Line, book: _Book, rules: ReconciliationSettings) -> tuple[_Payment, str, str] | None:
    """(payment, status, rule) for a line, or None."""
    by_reference: list[tuple[str, list[_Payment]]] = [
        (
            "instruction-id",
            book.open([book.by_id.get(line.partner_reference or ""), book.by_id.get(line.end_to_end_id or "")]),
        ),
        ("end-to-end-id", book.open(book.by_reference.get((line.source, line.end_to_end_id or ""), []))),
        (
            "partner-reference",
            book.open(
                [
                    *book.by_partner_reference.get((line.source, line.partner_reference or ""), []),
                    *book.by_partner_reference.get((line.source, line.servicer_reference or ""), []),
                ]
            ),
        ),
    ]
    for rule, found in by_reference:
        unique = list({p.id: p for p in found}.values())
        if not unique:
            continue
        same = [p for p in unique if p.currency == line.currency and p.amount_minor == line.amount_minor]
        if len(unique) == 1 and same:
            return unique[0], "confirmed", rule
        if len(same) == 1:
            return same[0], "suggested", f"{rule} (ambiguous)"
        if len(unique) == 1 and unique[0].currency == line.currency:
            return unique[0], "suggested", f"{rule} (amount differs)"
    refs = (line.end_to_end_id, line.partner_reference, line.servicer_reference)
    if any((line.source, ref) in book.claimed for ref in refs if ref):
        return None  # it names a payment already matched: a duplicate, never guessed onto another payment
    if not line.counterparty or line.day is None:
        return None
    window = timedelta(days=rules.date_window_days)
    near = [
        p
        for p in book.open(book.by_amount.get((line.source, line.currency), []))
        if abs(p.amount_minor - line.amount_minor) <= _tolerance(rules, p.amount_minor)
        and abs(p.day - line.day) <= window
        and p.creditor == line.counterparty
    ]
    if len(near) == 1:
        return near[0], "suggested", "amount-date-counterparty"
    return None


async def run_matching(
    engine: AsyncEngine, rules: ReconciliationSettings, *, now: datetime, source: str | None = None
) -> MatchRun:
    """Match every unmatched booked statement line (of ``source``, or all) that a rule explains."""
    async with engine.connect() as conn:
        lines = await _unmatched_lines(conn, source)
        book = _Book(await _unmatched_payments(conn, {line.source for line in lines}))
        book.claimed = await _matched_references(conn)
    rows: list[dict[str, Any]] = []
    for line in lines:
        decided = _decide(line, book, rules)
        if decided is None:
            continue
        payment, status, rule = decided
        book.take(payment)
        rows.append(
            {
                "statement_pk": line.pk,
                "line": line.line,
                "instruction_id": payment.id,
                "status": status,
                "rule": rule,
                "matched_at": now,
            }
        )
    if rows:
        try:
            async with engine.begin() as conn:
                await conn.execute(insert(recon_matches), rows)
                # a payment confirmed on the bank's statement is final: its credit exposure is released
                await release_reconciled(conn, [r["instruction_id"] for r in rows if r["status"] == "confirmed"], now)
        except IntegrityError:
            raise ConflictError("another matching run took some of these lines or payments; run it again") from None
    confirmed = sum(1 for r in rows if r["status"] == "confirmed")
    return MatchRun(lines=len(lines), confirmed=confirmed, suggested=len(rows) - confirmed)


# -- breaks ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Break:
    """Something finance has to look at."""

    kind: str
    id: str  # a statement line (ln_…) or, for a missing payment, the instruction id
    source: str
    currency: str
    amount_minor: int
    on: date | None
    age_days: int | None
    detail: str
    instruction_id: str | None = None
    statement_id: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "id": self.id,
            "source": self.source,
            "statement_id": self.statement_id,
            "instruction_id": self.instruction_id,
            "currency": self.currency,
            "amount": amount_text(self.amount_minor, self.currency),
            "amount_minor": self.amount_minor,
            "date": self.on.isoformat() if self.on else None,
            "age_days": self.age_days,
            "detail": self.detail,
        }


def _age(today: date, on: date | None) -> int | None:
    return (today - on).days if on is not None else None


async def _matched_references(conn: AsyncConnection) -> set[tuple[str, str]]:
    """(adapter, id, reference or partner reference) of every matched payment: a line naming one is a duplicate."""
    rows = (
        await conn.execute(
            select(
                instructions.c.adapter, instructions.c.id, instructions.c.reference, instructions.c.partner_reference
            ).join(recon_matches, recon_matches.c.instruction_id == instructions.c.id)
        )
    ).all()
    return {(r.adapter, ref) for r in rows for ref in (r.id, r.reference, r.partner_reference) if ref}


async def _line_breaks(conn: AsyncConnection, today: date) -> list[Break]:
    matched = await _matched_references(conn)
    query = (
        select(statement_lines, statements.c.source, statements.c.statement_id, recon_matches)
        .join(statements, statements.c.id == statement_lines.c.statement_pk)
        .outerjoin(
            recon_matches,
            and_(
                recon_matches.c.statement_pk == statement_lines.c.statement_pk,
                recon_matches.c.line == statement_lines.c.line,
            ),
        )
        .where((recon_matches.c.instruction_id.is_(None)) | (recon_matches.c.status == "suggested"))
    )
    out = []
    for r in (await conn.execute(query)).mappings().all():
        on = r["value_on"] or r["booked_on"]
        refs = [r["end_to_end_id"], r["partner_reference"], r["servicer_reference"]]
        ref_text = ", ".join(x for x in refs if x) or "no reference"
        if r["instruction_id"] is not None:
            kind, detail = "suggested_match", f"{r['rule']}: {r['direction']} {ref_text}"
        else:
            kind = _LINE_BREAK.get(r["kind"], "unexpected_line")
            if kind == "unexpected_line" and any((r["source"], ref) in matched for ref in refs if ref):
                kind = "duplicate"  # names a payment another line already matched
            reason = f" {r['reason_code']}" if r["reason_code"] else ""
            original = f" of {r['original_reference']}" if r["original_reference"] else ""
            detail = f"{r['kind']}{reason}{original}: {r['direction']} {ref_text}"
        out.append(
            Break(
                kind=kind,
                id=line_id(r["statement_pk"], r["line"]),
                source=r["source"],
                currency=r["currency"],
                amount_minor=r["amount_minor"],
                on=on,
                age_days=_age(today, on),
                detail=detail[:200],
                instruction_id=r["instruction_id"],
                statement_id=r["statement_id"],
            )
        )
    return out


async def _missing_breaks(conn: AsyncConnection, rules: ReconciliationSettings, today: date) -> list[Break]:
    latest = {
        r.source: r.last
        for r in (
            await conn.execute(
                select(
                    statements.c.source,
                    func.max(func.coalesce(statements.c.period_end, statements.c.period_start)).label("last"),
                ).group_by(statements.c.source)
            )
        ).all()
        if r.last is not None
    }
    out = []
    for source, last in sorted(latest.items()):
        cutoff = last - timedelta(days=rules.missing_after_days)
        query = select(
            instructions.c.id, instructions.c.amount_minor, instructions.c.currency, instructions.c.updated_at
        ).where(
            instructions.c.adapter == source,
            instructions.c.status == "settled",
            ~exists().where(recon_matches.c.instruction_id == instructions.c.id),
        )
        for r in (await conn.execute(query)).all():
            settled_on = r.updated_at.date()
            if settled_on > cutoff:
                continue
            out.append(
                Break(
                    kind="missing_on_statement",
                    id=r.id,
                    source=source,
                    currency=r.currency,
                    amount_minor=r.amount_minor,
                    on=settled_on,
                    age_days=_age(today, settled_on),
                    detail=f"settled on {settled_on}, on no statement of {source} through {last}",
                    instruction_id=r.id,
                )
            )
    return out


async def list_breaks(engine: AsyncEngine, rules: ReconciliationSettings, *, now: datetime) -> list[Break]:
    """Every open break, in a stable order (kind, then id)."""
    today = now.date()
    async with engine.connect() as conn:
        found = await _line_breaks(conn, today) + await _missing_breaks(conn, rules, today)
    return sorted(found, key=lambda b: (BREAK_KINDS.index(b.kind), b.id))


async def confirm_match(engine: AsyncEngine, line: str, *, by: str, now: datetime) -> str:
    """Confirm the suggested match of a statement line; the instruction id it was matched to."""
    found = LINE_ID.fullmatch(line)
    if found is None:
        raise NotFoundError(f"{line[:60]!r} is not a statement line id (ln_<statement>_<line>)")
    pk, number = int(found.group(1)), int(found.group(2))
    key = and_(recon_matches.c.statement_pk == pk, recon_matches.c.line == number)
    async with engine.begin() as conn:
        row = (await conn.execute(select(recon_matches).where(key))).mappings().first()
        if row is None:
            raise NotFoundError(f"statement line {line} has no suggested match")
        if row["status"] != "suggested":
            raise ConflictError(f"the match of statement line {line} is already confirmed")
        done = await conn.execute(
            update(recon_matches)
            .where(key, recon_matches.c.status == "suggested")
            .values(status="confirmed", confirmed_by=by[:64], confirmed_at=now)
        )
        if done.rowcount != 1:
            raise ConflictError(f"the match of statement line {line} is already confirmed")
        await release_reconciled(conn, [row["instruction_id"]], now)
    return str(row["instruction_id"])
