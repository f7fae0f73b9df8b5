"""Matching statement lines to the gateway's payments by the rules of ``config/reconciliation.yaml``.

The rules are tried in order (``gateway.recon.rules``); within a rule every
criterion must hold. For each statement line not matched yet a rule looks for
the settled payments it could be:

- ``reference``: one of the line's references (end-to-end id, partner or
  servicer reference) is the payment's instruction id, business-unit reference
  or partner reference (through the same partner);
- ``remittance``: a word of the line's remittance text is the payment's
  instruction id or reference;
- ``counterparty`` + ``date_window_days``: the creditor's name and a settlement
  day within the window;
- ``amount``: exact, or within the rule's tolerance (absolute and %, the larger).

A rule with ``payments: many`` takes every open payment sharing the reference
(an ACH batch, a card payout) as one group whose total is compared with the
line (1:N); ``lines: many`` adds up every open line naming one payment (N:1).

A match is ``confirmed`` when it is unambiguous (one candidate, or one group)
and its amounts are equal, or differ within the tolerance of a rule that says
what explains the difference (``explains: fee | fx``); otherwise — several
candidates of which one has the exact amount, a difference nothing explains,
or a rule that only suggests — it is ``suggested`` for finance to confirm.

A line and a payment are each in one match at most: the decision keeps them
apart in memory, and the primary keys of ``recon_match_lines`` and
``recon_match_payments`` refuse a second use whatever runs concurrently.

A match is written with its ledger entries in one transaction
(``gateway.recon.postings``): settlement moves from the partner's book account
to the reconciled bank account, a difference is an adjustment.
"""

from __future__ import annotations

import hashlib
import re
from bisect import bisect_left, bisect_right
from collections import defaultdict
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime

from sqlalchemy import ColumnElement, and_, exists, select
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.recon.rules import MatchRule, ReconRules
from gateway.store.tables import (
    business_units,
    collections,
    instructions,
    receipts,
    recon_match_lines,
    recon_match_payments,
    recon_matches,
    statement_line_items,
    statement_lines,
    statements,
)

__all__ = [
    "ITEM_SIGNS",
    "LINE_ID",
    "Decision",
    "ItemView",
    "LineView",
    "PaymentView",
    "decide",
    "line_id",
    "load_named_elsewhere",
    "load_open_collections",
    "load_open_lines",
    "load_open_payments",
    "name_key",
    "not_a_receipt",
    "pairing_fingerprint",
    "words",
]

#: a statement line's id in the API: ``ln_<statement>_<line>``
LINE_ID = re.compile(r"^ln_([1-9][0-9]{0,17})_([1-9][0-9]{0,8})$")
_WORD = re.compile(r"[A-Za-z0-9_-]{4,40}")


def line_id(statement_pk: int, line: int) -> str:
    return f"ln_{statement_pk}_{line}"


def name_key(value: str | None) -> str:
    """A counterparty name compared without case or spacing."""
    return " ".join((value or "").casefold().split())


def words(text: str | None) -> tuple[str, ...]:
    """The words of a remittance text that could be a reference."""
    return tuple(_WORD.findall(text or ""))


@dataclass(frozen=True, slots=True)
class ItemView:
    """One transaction an itemised line settles (``statement_line_items``): gross signed as the line, credit
    positive."""

    kind: str  # charge | chargeback | payout | payout_return
    reference: str
    amount_minor: int
    fee_minor: int


#: an item's kind -> the sign of the gateway's amount in it, credit (money in) positive
ITEM_SIGNS = {"charge": 1, "chargeback": -1, "payout": -1, "payout_return": 1}


@dataclass(slots=True, eq=False)
class LineView:
    """A statement line as the rules see it."""

    pk: int
    line: int
    source: str
    amount_minor: int  # never negative
    direction: str  # debit | credit
    currency: str
    day: date | None
    refs: tuple[str, ...]
    counterparty: str
    words: tuple[str, ...] = ()
    kind: str = "booked"
    id: str = field(default="", compare=False)
    #: what the line settles, if its file itemises it (a card payout batch): matched item by item
    items: tuple[ItemView, ...] = ()

    def __post_init__(self) -> None:
        self.id = line_id(self.pk, self.line)

    @property
    def signed_minor(self) -> int:
        """Money out of the account is positive (what an outgoing payment is)."""
        return self.amount_minor if self.direction == "debit" else -self.amount_minor


@dataclass(slots=True, eq=False)
class PaymentView:
    """A settled payment not matched yet."""

    id: str
    reference: str
    partner_reference: str | None
    adapter: str
    amount_minor: int
    currency: str
    day: date
    creditor: str
    business_unit: str = ""
    keys: tuple[str, ...] = field(default=(), compare=False)  # id, reference, partner reference
    #: payment (an instruction), charge (a collected collection) or chargeback (``<collection id>/cb``)
    kind: str = "payment"

    def __post_init__(self) -> None:
        self.keys = (
            (self.id, self.reference, self.partner_reference)
            if self.partner_reference
            else (
                self.id,
                self.reference,
            )
        )


@dataclass(slots=True)
class Decision:
    """One match the rules found: lines, payments, how sure, and the difference."""

    rule: MatchRule
    lines: list[LineView]
    payments: list[PaymentView]
    status: str
    lines_minor: int
    payments_minor: int

    @property
    def difference_minor(self) -> int:
        return self.lines_minor - self.payments_minor

    @property
    def source(self) -> str:
        return self.lines[0].source

    @property
    def currency(self) -> str:
        return self.lines[0].currency


@dataclass
class _Book:
    """Open payments indexed for every rule; a payment taken by a match leaves them all."""

    #: adapter -> id / reference / partner reference -> the payments with it (almost always one)
    by_key: dict[str, dict[str, list[PaymentView]]] = field(default_factory=dict)
    by_amount: dict[tuple[str, str], tuple[list[int], list[PaymentView]]] = field(default_factory=dict)
    taken: set[str] = field(default_factory=set)
    #: (adapter, key) of payments no line may be guessed onto another for: matched, or not settled
    named_elsewhere: set[tuple[str, str]] = field(default_factory=set)
    #: charges and chargebacks (collections), found only through the items of an itemised line
    collections: list[PaymentView] = field(default_factory=list)
    _items: dict[tuple[str, str, str], PaymentView] | None = None

    @classmethod
    def of(cls, payments: Iterable[PaymentView]) -> _Book:
        book = cls()
        buckets: dict[tuple[str, str], list[PaymentView]] = defaultdict(list)
        for p in payments:
            if p.kind != "payment":
                book.collections.append(p)
                continue
            index = book.by_key.get(p.adapter)
            if index is None:
                index = book.by_key[p.adapter] = {}
            for k in p.keys:
                found = index.get(k)
                if found is None:
                    index[k] = [p]
                else:
                    found.append(p)
            buckets[(p.adapter, p.currency)].append(p)
        for key, found in buckets.items():
            found.sort(key=lambda p: p.amount_minor)
            book.by_amount[key] = ([p.amount_minor for p in found], found)
        return book

    def names_another(self, line: LineView) -> bool:
        """The line names a payment that is matched already (in this run or before) or not settled."""
        index = self.by_key.get(line.source, {})
        for ref in line.refs:
            if (line.source, ref) in self.named_elsewhere:
                return True
            if any(p.id in self.taken for p in index.get(ref, ())):
                return True
        return False

    def named(self, source: str, refs: Iterable[str]) -> list[PaymentView]:
        """Open payments any of ``refs`` names (each once)."""
        index = self.by_key.get(source)
        if index is None:
            return []
        taken = self.taken
        out: list[PaymentView] = []
        for ref in refs:
            found = index.get(ref)
            if found is None:
                continue
            for p in found:
                if p.id not in taken and p not in out:
                    out.append(p)
        return out

    def item(self, source: str, item: ItemView) -> PaymentView | None:
        """The open payment, charge or chargeback an item names (``None``: none, or taken)."""
        if self._items is None:
            self._items = {}
            for p in self.collections:
                self._items[(p.adapter, p.kind, p.id.removesuffix("/cb"))] = p
            for adapter, index in self.by_key.items():
                for key, found in index.items():
                    if len(found) == 1:
                        self._items[(adapter, "payout", key)] = found[0]
        found = self._items.get((source, item.kind, item.reference))
        return None if found is None or found.id in self.taken else found

    def near(self, source: str, currency: str, amount: int, rule: MatchRule) -> list[PaymentView]:
        bucket = self.by_amount.get((source, currency))
        if bucket is None:
            return []
        amounts, found = bucket
        if rule.any_amount:
            lo, hi = 0, len(found)
        else:
            slack = max(rule.tolerance_minor, amount * rule.tolerance_bp // 10_000 + 1)
            lo, hi = bisect_left(amounts, amount - slack), bisect_right(amounts, amount + slack)
        return [p for p in found[lo:hi] if p.id not in self.taken]


def _fits(rule: MatchRule, line: LineView, p: PaymentView) -> bool:
    """Every criterion of ``rule`` other than the reference it was found by (and the amount)."""
    if p.currency != line.currency:
        return False
    if rule.counterparty and (not line.counterparty or p.creditor != line.counterparty):
        return False
    if rule.date_window_days is not None and (line.day is None or abs((p.day - line.day).days) > rule.date_window_days):
        return False
    return not (rule.remittance and p.id not in line.words and p.reference not in line.words)


def _candidates(rule: MatchRule, line: LineView, book: _Book) -> list[PaymentView]:
    if rule.reference:  # found by one of the line's references: the reference criterion holds
        found = book.named(line.source, line.refs)
    elif rule.remittance:
        found = book.named(line.source, line.words)
    elif book.names_another(line):
        return []  # a duplicate or a status mismatch: never guessed onto another payment
    else:
        found = book.near(line.source, line.currency, line.amount_minor, rule)
    return [p for p in found if _fits(rule, line, p)]


def _status(rule: MatchRule, unambiguous: bool, difference: int) -> str:
    if rule.best == "suggested" or not unambiguous:
        return "suggested"
    if difference == 0 or rule.explains:
        return "confirmed"
    return "suggested"


def _one_to_one(rule: MatchRule, line: LineView, book: _Book) -> Decision | None:
    found = _candidates(rule, line, book)
    if not found:
        return None
    amount = line.amount_minor
    if len(found) == 1:
        p = found[0]
        if not rule.accepts(amount - p.amount_minor, p.amount_minor):
            return None
        status = _status(rule, True, amount - p.amount_minor)
        return Decision(rule, [line], [p], status, amount, p.amount_minor)
    exact = [p for p in found if p.amount_minor == amount]
    if len(exact) == 1:  # ambiguous: one of several has the exact amount
        return Decision(rule, [line], exact, "suggested", amount, amount)
    return None


def _one_to_many(rule: MatchRule, line: LineView, book: _Book) -> Decision | None:
    for ref in line.refs:  # the batch's reference: every open payment carrying it
        group = [p for p in book.named(line.source, (ref,)) if p.currency == line.currency]
        if len(group) < 2 or not all(_fits(rule, line, p) for p in group):
            continue
        total = sum(p.amount_minor for p in group)
        if rule.accepts(line.amount_minor - total, total):
            return Decision(
                rule, [line], group, _status(rule, True, line.amount_minor - total), line.amount_minor, total
            )
    return None


def _itemised(rule: MatchRule, line: LineView, book: _Book) -> Decision | None:
    """A line that itemises what it settles (a card payout batch): every item must name an open payment,
    charge or chargeback; the declared fees are the difference, so the rule must ``explain`` it as a fee.

    Confirmed when every item's gross is the gateway's amount (and the rule does not only suggest),
    suggested otherwise; one item naming nothing open leaves the line unmatched.
    """
    if rule.explains != "fee":
        return None
    group: list[PaymentView] = []
    exact = True
    gross = 0  # the gateway's amounts, credit positive
    for item in line.items:
        p = book.item(line.source, item)
        if p is None or p in group or p.currency != line.currency:
            return None
        sign = ITEM_SIGNS.get(item.kind, 0)
        exact = exact and sign * p.amount_minor == item.amount_minor
        gross += sign * p.amount_minor
        group.append(p)
    payments_minor = gross if line.direction == "credit" else -gross
    status = "confirmed" if exact and rule.best != "suggested" else "suggested"
    return Decision(rule, [line], group, status, line.amount_minor, payments_minor)


def _many_to_one(rule: MatchRule, lines: Sequence[LineView], book: _Book, used: set[str]) -> list[Decision]:
    """Lines naming the same single payment, added up."""
    groups: dict[str, tuple[PaymentView, list[LineView]]] = {}
    for line in lines:
        if line.id in used:
            continue
        found = _candidates(rule, line, book)
        if len(found) == 1:
            groups.setdefault(found[0].id, (found[0], []))[1].append(line)
    out = []
    for p, group in groups.values():
        if len(group) < 2:
            continue
        total = sum(x.amount_minor for x in group)
        if rule.accepts(total - p.amount_minor, p.amount_minor):
            out.append(Decision(rule, group, [p], _status(rule, True, total - p.amount_minor), total, p.amount_minor))
    return out


def pairing_fingerprint(lines: Iterable[LineView], payments: Iterable[PaymentView]) -> str:
    """What a pairing is made of, as one hash: its lines (id, amount, direction) and payments (id, amount,
    currency, references). A rejected pairing with the same fingerprint is never suggested again; a change
    to any of these (another amount, a partner reference learnt later) makes it a new pairing."""
    parts = sorted(f"L|{x.id}|{x.amount_minor}|{x.direction}" for x in lines)
    parts += sorted(
        f"P|{p.id}|{p.amount_minor}|{p.currency}|{p.reference}|{p.partner_reference or ''}" for p in payments
    )
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def decide(
    lines: Sequence[LineView],
    payments: Iterable[PaymentView],
    rules: ReconRules,
    named_elsewhere: Iterable[tuple[str, str]] = (),
    rejected: Collection[str] = (),
) -> list[Decision]:
    """The matches the rules find, in rule order; no line and no payment in two of them.

    ``named_elsewhere``: (adapter, reference) of payments matched before or not
    settled; a line naming one is never matched to another payment by amount.
    ``rejected``: fingerprints (``pairing_fingerprint``) of pairings finance
    rejected; a rule that finds one again passes, and the line stays open for
    the rules after it.
    """
    book = _Book.of(payments)
    book.named_elsewhere = set(named_elsewhere)
    used: set[str] = set()
    out: list[Decision] = []
    remaining = list(lines)
    for rule in rules.rules:
        if rule.many_lines:
            found = _many_to_one(rule, [x for x in remaining if not x.items], book, used)
        else:
            pick = _one_to_many if rule.many_payments else _one_to_one
            found = [
                d
                for d in (
                    (_itemised(rule, line, book) if rule.many_payments else None)
                    if line.items
                    else pick(rule, line, book)
                    for line in remaining
                )
                if d is not None
            ]
        if rejected:
            found = [d for d in found if pairing_fingerprint(d.lines, d.payments) not in rejected]
        for d in found:
            if any(x.id in used for x in d.lines) or any(p.id in book.taken for p in d.payments):
                continue  # lost to an earlier decision of the same rule
            used.update(x.id for x in d.lines)
            book.taken.update(p.id for p in d.payments)
            out.append(d)
        if found:
            remaining = [x for x in remaining if x.id not in used]
    return out


# -- loading what is open ------------------------------------------------------------------------


def not_a_receipt() -> ColumnElement[bool]:
    """Statement lines that are not an explained receipt (money in, matched to receivables or put on account).

    A credit nobody could match stays an ``unexpected_line`` until finance assigns its receipt. The same
    credit brought again by a report of another kind (a notification, then the day's statement: same
    bank reference and amount, no second receipt) is explained with it. The query must join ``statements``.
    """
    return ~exists().where(
        and_(
            receipts.c.statement_pk == statement_lines.c.statement_pk,
            receipts.c.line == statement_lines.c.line,
            receipts.c.state != "unmatched",
        )
    ) & ~exists().where(
        and_(
            statement_lines.c.direction == "credit",
            receipts.c.source == statements.c.source,
            receipts.c.servicer_reference == statement_lines.c.servicer_reference,
            receipts.c.amount_minor == statement_lines.c.amount_minor,
            receipts.c.currency == statement_lines.c.currency,
            receipts.c.state != "unmatched",
        )
    )


async def load_open_lines(conn: AsyncConnection, source: str | None = None) -> list[LineView]:
    """Booked statement lines in no match yet, in statement order."""
    query = (
        select(
            statement_lines.c.statement_pk,
            statement_lines.c.line,
            statements.c.source,
            statement_lines.c.amount_minor,
            statement_lines.c.direction,
            statement_lines.c.currency,
            statement_lines.c.value_on,
            statement_lines.c.booked_on,
            statement_lines.c.end_to_end_id,
            statement_lines.c.partner_reference,
            statement_lines.c.servicer_reference,
            statement_lines.c.counterparty_name,
            statement_lines.c.text,
            statement_lines.c.kind,
        )
        .join(statements, statements.c.id == statement_lines.c.statement_pk)
        .where(
            statement_lines.c.kind == "booked",
            ~exists().where(
                and_(
                    recon_match_lines.c.statement_pk == statement_lines.c.statement_pk,
                    recon_match_lines.c.line == statement_lines.c.line,
                )
            ),
            not_a_receipt(),
        )
        .order_by(statement_lines.c.statement_pk, statement_lines.c.line)
    )
    if source is not None:
        query = query.where(statements.c.source == source)
    items = await _open_items(conn)
    out = []
    for r in (await conn.execute(query)).all():
        refs = tuple(x for x in (r.end_to_end_id, r.partner_reference, r.servicer_reference) if x)
        out.append(
            LineView(
                r.statement_pk,
                r.line,
                r.source,
                r.amount_minor,
                r.direction,
                r.currency,
                r.value_on or r.booked_on,
                refs,
                name_key(r.counterparty_name),
                words(r.text),
                r.kind,
                items=items.get((r.statement_pk, r.line), ()),
            )
        )
    return out


async def _open_items(conn: AsyncConnection) -> dict[tuple[int, int], tuple[ItemView, ...]]:
    """The items of itemised lines in no match yet, by line."""
    query = (
        select(statement_line_items)
        .where(
            ~exists().where(
                and_(
                    recon_match_lines.c.statement_pk == statement_line_items.c.statement_pk,
                    recon_match_lines.c.line == statement_line_items.c.line,
                )
            )
        )
        .order_by(statement_line_items.c.statement_pk, statement_line_items.c.line, statement_line_items.c.item)
    )
    out: dict[tuple[int, int], list[ItemView]] = defaultdict(list)
    for r in (await conn.execute(query)).mappings().all():
        out[(r["statement_pk"], r["line"])].append(
            ItemView(r["kind"], r["reference"], r["amount_minor"], r["fee_minor"])
        )
    return {k: tuple(v) for k, v in out.items()}


async def load_open_collections(conn: AsyncConnection, adapters: Iterable[str]) -> list[PaymentView]:
    """Collected charges (and chargebacks) through ``adapters`` in no match yet, for itemised lines."""
    names = sorted(set(adapters))
    if not names:
        return []
    taken = select(recon_match_payments.c.instruction_id)
    rows = await conn.execute(
        select(
            collections.c.id,
            collections.c.reference,
            collections.c.partner_reference,
            collections.c.adapter,
            collections.c.amount_minor,
            collections.c.currency,
            collections.c.updated_at,
            collections.c.payer_name,
            collections.c.status,
            business_units.c.name.label("business_unit"),
        )
        .join(business_units, business_units.c.id == collections.c.business_unit_id)
        .where(collections.c.adapter.in_(names), collections.c.status.in_(("collected", "charged_back")))
    )
    found = rows.all()
    ids = [r.id for r in found] + [f"{r.id}/cb" for r in found if r.status == "charged_back"]
    matched: set[str] = set()
    for i in range(0, len(ids), 500):
        matched.update(
            (await conn.scalars(taken.where(recon_match_payments.c.instruction_id.in_(ids[i : i + 500])))).all()
        )
    out = []
    for r in found:
        views = [(r.id, "charge")] + ([(f"{r.id}/cb", "chargeback")] if r.status == "charged_back" else [])
        for view_id, kind in views:
            if view_id in matched:
                continue
            out.append(
                PaymentView(
                    view_id,
                    r.reference,
                    r.partner_reference,
                    r.adapter,
                    r.amount_minor,
                    r.currency,
                    r.updated_at.date(),
                    name_key(r.payer_name),
                    r.business_unit,
                    kind=kind,
                )
            )
    return out


async def load_open_payments(conn: AsyncConnection, adapters: Iterable[str]) -> list[PaymentView]:
    """Settled payments through ``adapters`` in no match yet."""
    names = sorted(set(adapters))
    if not names:
        return []
    query = (
        select(
            instructions.c.id,
            instructions.c.reference,
            instructions.c.partner_reference,
            instructions.c.adapter,
            instructions.c.amount_minor,
            instructions.c.currency,
            instructions.c.updated_at,
            instructions.c.creditor_name,
            business_units.c.name.label("business_unit"),
        )
        .join(business_units, business_units.c.id == instructions.c.business_unit_id)
        .where(
            instructions.c.adapter.in_(names),
            instructions.c.status == "settled",
            ~exists().where(recon_match_payments.c.instruction_id == instructions.c.id),
        )
    )
    return [
        PaymentView(
            r.id,
            r.reference,
            r.partner_reference,
            r.adapter,
            r.amount_minor,
            r.currency,
            r.updated_at.date(),
            name_key(r.creditor_name),
            r.business_unit,
        )
        for r in (await conn.execute(query)).all()
    ]


async def load_named_elsewhere(
    conn: AsyncConnection, adapters: Iterable[str], since: datetime
) -> dict[tuple[str, str], tuple[str, str, bool]]:
    """(adapter, id / reference / partner reference) → (instruction id, status, matched) of payments matched,
    or not settled, since ``since``."""
    names = sorted(set(adapters))
    if not names:
        return {}
    cols = (
        instructions.c.adapter,
        instructions.c.id,
        instructions.c.status,
        instructions.c.reference,
        instructions.c.partner_reference,
    )
    matched = (
        select(*cols)
        .join(recon_match_payments, recon_match_payments.c.instruction_id == instructions.c.id)
        .join(recon_matches, recon_matches.c.id == recon_match_payments.c.match_id)
        .where(instructions.c.adapter.in_(names), recon_matches.c.matched_at >= since)
    )
    unsettled = select(*cols).where(
        instructions.c.adapter.in_(names), instructions.c.status != "settled", instructions.c.updated_at >= since
    )
    out: dict[tuple[str, str], tuple[str, str, bool]] = {}
    for query, is_matched in ((unsettled, False), (matched, True)):
        for r in (await conn.execute(query)).all():
            for ref in (r.id, r.reference, r.partner_reference):
                if ref:
                    out[(r.adapter, ref)] = (r.id, r.status, is_matched)
    return out
