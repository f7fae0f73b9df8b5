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

import asyncio
import contextlib
import hashlib
import logging
import marshal
import os
import pickle
import re
import resource
import subprocess
from bisect import bisect_left, bisect_right
from collections import defaultdict
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, BinaryIO

from sqlalchemy import ColumnElement, Select, String, and_, exists, func, or_, select, type_coerce
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.collector import collector_paused
from gateway.recon.keys import name_key, words
from gateway.recon.rules import MatchRule, ReconRules
from gateway.store.bulk import select_rows
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
from gateway.workers import end_worker, read_frame, start_worker, worker_command

__all__ = [
    "ITEM_SIGNS",
    "LINE_ID",
    "PARALLEL_MIN_LINES",
    "Decision",
    "ItemView",
    "LineReader",
    "LineView",
    "PaymentBook",
    "PaymentView",
    "decide",
    "index_payments",
    "line_id",
    "load_named_elsewhere",
    "load_open_collections",
    "load_open_lines",
    "load_open_payments",
    "load_open_returned",
    "name_key",
    "not_a_receipt",
    "open_lines_query",
    "pairing_fingerprint",
    "statement_sources",
    "words",
]

log = logging.getLogger(__name__)

#: a statement line's id in the API: ``ln_<statement>_<line>``
LINE_ID = re.compile(r"^ln_([1-9][0-9]{0,17})_([1-9][0-9]{0,8})$")


def line_id(statement_pk: int, line: int) -> str:
    return f"ln_{statement_pk}_{line}"


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
    #: what the line settles, if its file itemises it (a card payout batch): matched item by item
    items: tuple[ItemView, ...] = ()

    @property
    def id(self) -> str:
        """The line's id in the API (``line_id``), made when asked: a run reads a million lines and names few."""
        return line_id(self.pk, self.line)

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
    #: the creditor's name, compared without case or spacing (``name_key``; normalised only when a rule compares it)
    creditor: str
    business_unit: str = ""
    #: payment (an instruction), charge (a collected collection) or chargeback (``<collection id>/cb``); returned:
    #: an instruction settled and returned since, found only through the items of an itemised line (its batch)
    kind: str = "payment"

    @property
    def keys(self) -> tuple[str, ...]:
        """What a line may name it by: id, reference, partner reference (if any)."""
        if self.partner_reference:
            return (self.id, self.reference, self.partner_reference)
        return (self.id, self.reference)


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
    """Open payments indexed for every rule; a payment taken by a match leaves them all.

    Payments are compared by identity (``PaymentView`` has ``eq=False``), so the
    sets below hash object ids, not strings.
    """

    #: adapter -> id / reference / partner reference -> the payment with it, or the list of them if several
    #: (a batch's partner reference): a million keys name one payment each, and need no list of one
    by_key: dict[str, dict[str, PaymentView | list[PaymentView]]] = field(default_factory=dict)
    #: (adapter, currency) -> amounts sorted, and the payments in that order; built on first use from the
    #: payments still open then (the amount rules come after the reference rules, which take most of them)
    by_amount: dict[tuple[str, str], tuple[list[int], list[PaymentView]]] | None = None
    payments: list[PaymentView] = field(default_factory=list)
    taken: set[PaymentView] = field(default_factory=set)
    #: (adapter, key) of payments no line may be guessed onto another for: matched, or not settled
    named_elsewhere: set[tuple[str, str]] = field(default_factory=set)
    #: charges and chargebacks (collections), found only through the items of an itemised line
    collections: list[PaymentView] = field(default_factory=list)
    _items: dict[tuple[str, str, str], PaymentView] | None = None

    @classmethod
    def of(cls, payments: Iterable[PaymentView]) -> _Book:
        book = cls()
        by_key = book.by_key
        index: dict[str, PaymentView | list[PaymentView]] = {}
        get = index.get
        adapter = None
        for p in payments:
            if p.kind != "payment":
                book.collections.append(p)
                continue
            book.payments.append(p)
            if p.adapter != adapter:
                adapter = p.adapter
                index = by_key.setdefault(adapter, {})
                get = index.get
            for k in (p.id, p.reference, p.partner_reference) if p.partner_reference else (p.id, p.reference):
                found = get(k)
                if found is None:
                    index[k] = p
                elif found.__class__ is list:
                    found.append(p)
                else:
                    index[k] = [found, p]
        return book

    def amounts(self) -> dict[tuple[str, str], tuple[list[int], list[PaymentView]]]:
        if self.by_amount is None:
            buckets: dict[tuple[str, str], list[PaymentView]] = defaultdict(list)
            taken = self.taken
            for p in self.payments:
                if p not in taken:
                    buckets[(p.adapter, p.currency)].append(p)
            self.by_amount = {}
            for key, found in buckets.items():
                found.sort(key=_amount_of)
                self.by_amount[key] = ([p.amount_minor for p in found], found)
        return self.by_amount

    def names_another(self, line: LineView) -> bool:
        """The line names a payment that is matched already (in this run or before) or not settled."""
        index = self.by_key.get(line.source, {})
        taken = self.taken
        for ref in line.refs:
            if (line.source, ref) in self.named_elsewhere:
                return True
            found = index.get(ref)
            if found is not None and any(p in taken for p in _each(found)):
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
            for p in _each(found):
                if p not in taken and p not in out:
                    out.append(p)
        return out

    def item(self, source: str, item: ItemView) -> PaymentView | None:
        """The open payment, charge or chargeback an item names (``None``: none, or taken)."""
        if self._items is None:
            self._items = {}
            for p in self.collections:
                if p.kind == "returned":  # a payout settled in the batch and returned since: named like a payout
                    for key in p.keys:
                        self._items.setdefault((p.adapter, "payout", key), p)
                else:
                    self._items[(p.adapter, p.kind, p.id.removesuffix("/cb"))] = p
            for adapter, index in self.by_key.items():
                for key, found in index.items():
                    if found.__class__ is not list:  # one payment with this key
                        self._items[(adapter, "payout", key)] = found  # type: ignore[assignment]
        found = self._items.get((source, item.kind, item.reference))
        return None if found is None or found in self.taken else found

    def near(self, source: str, currency: str, amount: int, rule: MatchRule) -> list[PaymentView]:
        bucket = self.amounts().get((source, currency))
        if bucket is None:
            return []
        amounts, found = bucket
        if rule.any_amount:
            lo, hi = 0, len(found)
        else:
            slack = max(rule.tolerance_minor, amount * rule.tolerance_bp // 10_000 + 1)
            lo, hi = bisect_left(amounts, amount - slack), bisect_right(amounts, amount + slack)
        taken = self.taken
        return [p for p in found[lo:hi] if p not in taken]


#: the open payments indexed for ``decide`` (``index_payments``)
PaymentBook = _Book


def _each(found: PaymentView | list[PaymentView]) -> Sequence[PaymentView]:
    """The payments of an index entry (``_Book.by_key``)."""
    return found if found.__class__ is list else (found,)  # type: ignore[return-value]


def _amount_of(p: PaymentView) -> int:
    return p.amount_minor


def _fits(rule: MatchRule, line: LineView, p: PaymentView) -> bool:
    """Every criterion of ``rule`` other than the reference it was found by (and the amount)."""
    if p.currency != line.currency:
        return False
    if rule.counterparty and (not line.counterparty or name_key(p.creditor) != line.counterparty):
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


def _one_to_one(
    rule: MatchRule,
    lines: Sequence[LineView],
    book: _Book,
    rejected: Collection[str],
    used: set[LineView],
    out: list[Decision],
) -> tuple[set[PaymentView], list[LineView]]:
    """Each line's decision by a one-to-one rule, against the book as it is when the rule starts, appended to
    ``out`` unless finance rejected that pairing or an earlier line of this rule won its payment (the pass
    ``_decide`` makes for the other rules, done here as each decision is made); the payments this rule took,
    and the lines it left open.

    The hot path of a run: ``_candidates`` and ``named`` inlined for the rules that find by
    reference or remittance word, ``_fits`` called only for criteria beyond the currency.
    """
    won: set[PaymentView] = set()  # taken by this rule's earlier decisions
    rest: list[LineView] = []
    keep, win, use = rest.append, won.add, used.add
    by_key, taken = book.by_key, book.taken
    by_reference = rule.reference
    by_name = by_reference or rule.remittance
    only_currency = not (rule.counterparty or rule.date_window_days is not None or rule.remittance)
    exact_only = not rule.any_amount and not rule.tolerance_minor and not rule.tolerance_bp
    status_one = "suggested" if rule.best == "suggested" else "confirmed"
    source, index = None, None
    for line in lines:
        if line.items:
            keep(line)
            continue  # an itemised line is decided item by item, by a one-to-many rule (``_itemised``)
        if by_name:
            if line.source != source:
                source = line.source
                index = by_key.get(source)
            if index is None:
                keep(line)
                continue
            found: list[PaymentView] | None = None
            for ref in line.refs if by_reference else line.words:
                hit = index.get(ref)
                if hit is None:
                    continue
                if hit.__class__ is list:
                    for p in hit:  # type: ignore[union-attr]
                        if p in taken:
                            continue
                        if found is None:
                            found = [p]
                        elif p not in found:
                            found.append(p)
                elif hit in taken:
                    continue
                elif found is None:
                    found = [hit]  # type: ignore[list-item]
                elif hit not in found:
                    found.append(hit)  # type: ignore[arg-type]
            if found is None:
                keep(line)
                continue
        elif book.names_another(line):
            keep(line)
            continue  # a duplicate or a status mismatch: never guessed onto another payment
        else:
            found = book.near(line.source, line.currency, line.amount_minor, rule)
        if only_currency:
            currency = line.currency
            if len(found) != 1 or found[0].currency != currency:
                found = [p for p in found if p.currency == currency]
        else:
            found = [p for p in found if _fits(rule, line, p)]
        d: Decision | None = None
        amount = line.amount_minor
        if len(found) == 1:
            p = found[0]
            difference = amount - p.amount_minor
            if difference == 0:
                d = Decision(rule, [line], found, status_one, amount, amount)
            elif not exact_only and rule.accepts(difference, p.amount_minor):
                d = Decision(rule, [line], found, _status(rule, True, difference), amount, p.amount_minor)
        elif found:
            exact = [p for p in found if p.amount_minor == amount]
            if len(exact) == 1:  # ambiguous: one of several has the exact amount
                p = exact[0]
                d = Decision(rule, [line], exact, "suggested", amount, amount)
        if d is None or (rejected and pairing_fingerprint(d.lines, d.payments) in rejected):
            keep(line)
            continue
        if line in used:
            continue  # the same line given twice: decided where it came first
        if p in won:
            keep(line)  # lost to an earlier decision of the same rule
            continue
        use(line)
        win(p)
        out.append(d)
    return won, rest


def _one_to_many(rule: MatchRule, lines: Sequence[LineView], book: _Book) -> list[Decision]:
    """Each line's decision by a one-to-many rule: a batch reference's payments added up, or, for an itemised
    line, the payments, charges and chargebacks its items name (``_itemised``)."""
    out: list[Decision] = []
    for line in lines:
        if line.items:
            d = _itemised(rule, line, book)
            if d is not None:
                out.append(d)
            continue
        for ref in line.refs:  # the batch's reference: every open payment carrying it
            group = [p for p in book.named(line.source, (ref,)) if p.currency == line.currency]
            if len(group) < 2 or not all(_fits(rule, line, p) for p in group):
                continue
            total = sum(p.amount_minor for p in group)
            if rule.accepts(line.amount_minor - total, total):
                status = _status(rule, True, line.amount_minor - total)
                out.append(Decision(rule, [line], group, status, line.amount_minor, total))
                break
    return out


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


def _many_to_one(rule: MatchRule, lines: Sequence[LineView], book: _Book) -> list[Decision]:
    """Lines naming the same single payment, added up."""
    groups: dict[str, tuple[PaymentView, list[LineView]]] = {}
    for line in lines:
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


def index_payments(payments: Iterable[PaymentView]) -> _Book:
    """The index ``decide`` builds of ``payments`` first, built beforehand: a run on SQLite builds it while its
    line reader still reads (``service``). Used by one ``decide``, which takes the payments from it."""
    with collector_paused():
        return _Book.of(payments)


def decide(
    lines: Sequence[LineView],
    payments: Iterable[PaymentView] | _Book,
    rules: ReconRules,
    named_elsewhere: Iterable[tuple[str, str]] = (),
    rejected: Collection[str] = (),
) -> list[Decision]:
    """The matches the rules find, in rule order; no line and no payment in two of them.

    ``payments``: the open payments, or their index (``index_payments``) if built beforehand.
    ``named_elsewhere``: (adapter, reference) of payments matched before or not
    settled; a line naming one is never matched to another payment by amount.
    ``rejected``: fingerprints (``pairing_fingerprint``) of pairings finance
    rejected; a rule that finds one again passes, and the line stays open for
    the rules after it.

    Each rule looks at the lines no earlier rule matched, against the payments
    open when it starts; when two of its decisions want the same line or
    payment, the first (in line order) wins. An itemised line is decided only
    by a one-to-many rule that explains fees (``_itemised``).
    """
    with collector_paused():  # a million lines and payments: the collector would walk them again and again
        return _decide(lines, payments, rules, named_elsewhere, rejected)


def _decide(
    lines: Sequence[LineView],
    payments: Iterable[PaymentView] | _Book,
    rules: ReconRules,
    named_elsewhere: Iterable[tuple[str, str]],
    rejected: Collection[str],
) -> list[Decision]:
    book = payments if isinstance(payments, _Book) else _Book.of(payments)
    book.named_elsewhere = set(named_elsewhere)
    taken = book.taken
    used: set[LineView] = set()
    out: list[Decision] = []
    remaining = list(lines)
    for rule in rules.rules:
        if not (rule.many_lines or rule.many_payments):
            won, remaining = _one_to_one(rule, remaining, book, rejected, used, out)
            taken |= won
            continue
        if rule.many_lines:
            found = _many_to_one(rule, [x for x in remaining if not x.items], book)
        else:
            found = _one_to_many(rule, remaining, book)
        if rejected:
            found = [d for d in found if pairing_fingerprint(d.lines, d.payments) not in rejected]
        won: set[PaymentView] = set()  # taken by this rule's earlier decisions
        for d in found:
            if len(d.lines) == 1 and len(d.payments) == 1:
                x, p = d.lines[0], d.payments[0]
                if x in used or p in won:
                    continue  # lost to an earlier decision of the same rule
                used.add(x)
                won.add(p)
            else:
                if any(x in used for x in d.lines) or any(p in won for p in d.payments):
                    continue
                used.update(d.lines)
                won.update(d.payments)
            out.append(d)
        if found:
            taken |= won
            remaining = [x for x in remaining if x not in used]
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


class _Days(dict[Any, date | None]):
    """What the driver returns for a day or a UTC time (SQLite: text; PostgreSQL: a date or an aware datetime) →
    the UTC day, as ``days[value]``: each distinct value converted once (a run reads a million rows of a few
    days), a value seen before found at the speed of a dict look-up."""

    def __missing__(self, value: Any) -> date | None:
        if value is None:
            found = None
        elif isinstance(value, str):
            found = date.fromisoformat(value[:10])
        elif isinstance(value, datetime):
            found = (value.astimezone(UTC) if value.tzinfo is not None else value).date()
        else:
            found = value
        self[value] = found
        return found


def open_lines_query(source: str | None = None) -> Select[Any]:
    """The SELECT of the booked statement lines in no match yet, in statement order: only the columns the rules
    use, days as the driver returns them (no per-row type processing)."""
    query = (
        select(
            statement_lines.c.statement_pk,
            statement_lines.c.line,
            statements.c.source,
            statement_lines.c.amount_minor,
            statement_lines.c.direction,
            statement_lines.c.currency,
            type_coerce(func.coalesce(statement_lines.c.value_on, statement_lines.c.booked_on), String()),
            statement_lines.c.end_to_end_id,
            statement_lines.c.partner_reference,
            statement_lines.c.servicer_reference,
            statement_lines.c.counterparty_name,
            statement_lines.c.text,
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
    return query


async def load_open_lines(conn: AsyncConnection, source: str | None = None) -> list[LineView]:
    """Booked statement lines in no match yet, in statement order (``open_lines_query``).

    Names and remittance words are normalised once here, for every rule (as ``keys.line_values`` does for the
    lines a ``LineReader`` reads).
    """
    query = open_lines_query(source)
    items = await _open_items(conn)
    days = _Days()

    def views(rows: Iterable[Sequence[Any]]) -> list[LineView]:
        out = []
        append = out.append
        for pk, line, src, amount, direction, currency, on, e2e, partner_ref, servicer_ref, name, text in rows:
            append(
                LineView(
                    pk,
                    line,
                    src,
                    amount,
                    direction,
                    currency,
                    days[on],
                    # the references it has, in this order: most lines have an end-to-end id and the partner's
                    # reference and no servicer reference, made here without the ``filter`` (a quarter of a view)
                    (e2e, partner_ref)
                    if servicer_ref is None and e2e and partner_ref
                    else tuple(filter(None, (e2e, partner_ref, servicer_ref))),
                    name_key(name) if name else "",
                    words(text) if text else (),
                    "booked",  # the only kind read
                    items.get((pk, line), ()) if items else (),
                )
            )
        return out

    return await select_rows(conn, query, views)


async def _open_items(conn: AsyncConnection) -> dict[tuple[int, int], tuple[ItemView, ...]]:
    """The items of itemised lines in no match yet, by line (read as driver tuples, like the lines)."""
    t = statement_line_items.c
    query = (
        select(t.statement_pk, t.line, t.kind, t.reference, t.amount_minor, t.fee_minor)
        .where(
            ~exists().where(
                and_(
                    recon_match_lines.c.statement_pk == t.statement_pk,
                    recon_match_lines.c.line == t.line,
                )
            )
        )
        .order_by(t.statement_pk, t.line, t.item)
    )
    out: dict[tuple[int, int], list[ItemView]] = defaultdict(list)
    for pk, line, kind, reference, amount, fee in (await conn.execute(query)).all():
        out[(pk, line)].append(ItemView(kind, reference, amount, fee))
    return {k: tuple(v) for k, v in out.items()}


#: runs on a SQLite file with at least this many statement lines (matched or not: ``count(*)``, which SQLite answers
#: from an index) read their open lines in a worker process (``LineReader``); fewer are read here, in the run's
#: process, where starting a worker would cost more than it saves
PARALLEL_MIN_LINES = 100_000
_LINE_WORKER = worker_command("gateway.recon.line_reader")


def _drain(stream: BinaryIO) -> list[bytes] | None:
    """The frames a line reader writes, up to its end frame; ``None`` if it ended without one (killed, failed)."""
    frames = []
    while (frame := read_frame(stream)) is not None:
        if not frame:
            return frames
        frames.append(frame)
    return None


class LineReader:
    """A run's open statement lines, read by a worker process (``gateway.recon.line_reader``) from the same
    SQLite file while the run reads the payments: the worker's SQLite and the making of its rows' values run on
    another core (a thread would hold this process's interpreter lock row by row).

    ``start`` starts it where it pays (SQLite, a database file, two CPUs or more, ``PARALLEL_MIN_LINES``) and
    gives ``None`` elsewhere; ``lines`` gives the same views as ``load_open_lines``, and reads them with
    ``load_open_lines`` itself when the worker did not hand over every line (it died, was killed, or failed):
    the run only reads at that point, so nothing is left half done. ``close`` ends the worker whatever happened.
    """

    def __init__(self, worker: subprocess.Popen[bytes], drained: asyncio.Future[list[bytes] | None]) -> None:
        self.worker = worker
        self._drained = drained
        #: the worker's CPU seconds once it has ended: those of this process's children that ended meanwhile
        #: (``resource.RUSAGE_CHILDREN``), the worker's unless another child (a camt import's worker) ended too
        self.cpu_seconds = 0.0
        self._children_cpu = _children_cpu()
        self._status: int | None = None

    @classmethod
    async def start(cls, conn: AsyncConnection, source: str | None = None) -> LineReader | None:
        url = conn.engine.url
        path = url.database
        if conn.dialect.name != "sqlite" or not path or path == ":memory:" or "uri" in url.query:
            return None  # PostgreSQL, or no file a second process could open by its name
        if (os.cpu_count() or 1) < 2:
            return None
        if (await conn.scalar(select(func.count()).select_from(statement_lines)) or 0) < PARALLEL_MIN_LINES:
            return None
        compiled = open_lines_query(source).compile(dialect=conn.dialect, compile_kwargs={"render_postcompile": True})
        params = tuple(compiled.params[name] for name in compiled.positiontup or ())
        job = pickle.dumps((os.path.abspath(path), str(compiled), params), protocol=pickle.HIGHEST_PROTOCOL)
        worker = start_worker(_LINE_WORKER)
        assert worker.stdin is not None and worker.stdout is not None
        try:
            worker.stdin.write(job)
            worker.stdin.close()
        except OSError:  # gone already: the run reads its lines itself
            log.warning("the line reader process ended before its job: reading the lines here")
            end_worker(worker, kill=True)
            return None
        return cls(worker, asyncio.get_running_loop().run_in_executor(None, _drain, worker.stdout))

    async def lines(self, conn: AsyncConnection, source: str | None = None) -> list[LineView]:
        """The open lines, as ``load_open_lines(conn, source)`` reads them."""
        try:
            frames = await asyncio.shield(self._drained)
        finally:
            await self.close()
        if frames is None or self._status != 0:
            log.warning("the line reader process ended with status %s: reading the lines here", self._status)
            return await load_open_lines(conn, source)
        items = await _open_items(conn)
        days = _Days()
        out = []
        append = out.append
        loads = marshal.loads
        for frame in frames:
            for pk, line, src, amount, direction, currency, on, refs, name, said in loads(frame):
                append(
                    LineView(
                        pk,
                        line,
                        src,
                        amount,
                        direction,
                        currency,
                        days[on],
                        refs,
                        name,
                        said,
                        "booked",
                        items.get((pk, line), ()) if items else (),
                    )
                )
        return out

    async def close(self) -> None:
        """End the worker (killed if it has not handed everything over) and wait for it; again: nothing."""
        if self._status is not None:
            return
        if not self._drained.done():
            self.worker.kill()  # stopped early (the run failed, was cancelled): what it reads is not wanted
        with contextlib.suppress(Exception):
            await asyncio.shield(self._drained)  # the pipe ends with the worker
        self._status = end_worker(self.worker, kill=False)
        self.cpu_seconds = _children_cpu() - self._children_cpu


def _children_cpu() -> float:
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


async def statement_sources(conn: AsyncConnection, source: str | None = None) -> set[str]:
    """The sources of every statement (``source`` alone if given): those of the open lines, and maybe more."""
    query = select(statements.c.source).distinct()
    if source is not None:
        query = query.where(statements.c.source == source)
    return set((await conn.scalars(query)).all())


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


async def _load_unmatched(
    conn: AsyncConnection, adapters: Iterable[str], status: str, kind: str = "payment"
) -> list[PaymentView]:
    """Payments through ``adapters`` in ``status`` and in no match yet (one SELECT of the columns the rules use)."""
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
            type_coerce(instructions.c.updated_at, String()),
            instructions.c.creditor_name,
            business_units.c.name,
        )
        .join(business_units, business_units.c.id == instructions.c.business_unit_id)
        .where(
            instructions.c.adapter.in_(names),
            instructions.c.status == status,
            ~exists().where(recon_match_payments.c.instruction_id == instructions.c.id),
        )
    )
    days = _Days()

    def views(rows: Iterable[Sequence[Any]]) -> list[PaymentView]:
        return [
            PaymentView(id_, ref, partner_ref, adapter, amount, currency, days[at], creditor or "", bu, kind)
            for id_, ref, partner_ref, adapter, amount, currency, at, creditor, bu in rows
        ]

    return await select_rows(conn, query, views)


async def load_open_returned(conn: AsyncConnection, adapters: Iterable[str]) -> list[PaymentView]:
    """Payments through ``adapters`` returned here and in no match yet, for itemised lines: an ACH batch settled
    them with the rest before the return came back (the return is its own line, ``service.match_returns``)."""
    return await _load_unmatched(conn, adapters, "returned", kind="returned")


async def load_open_payments(conn: AsyncConnection, adapters: Iterable[str]) -> list[PaymentView]:
    """Settled payments through ``adapters`` in no match yet."""
    return await _load_unmatched(conn, adapters, "settled")


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
    # no ``adapter IN`` in SQL: it would lead SQLite to walk every payment of those adapters (its index) rather
    # than the few matched or not settled lately; the adapters are kept below instead
    matched = (
        select(*cols)
        .join(recon_match_payments, recon_match_payments.c.instruction_id == instructions.c.id)
        .join(recon_matches, recon_matches.c.id == recon_match_payments.c.match_id)
        .where(recon_matches.c.matched_at >= since)
    )
    status = instructions.c.status
    unsettled = select(*cols).where(  # not settled: before or after it, so (status, updated_at) is searched
        or_(status < "settled", status > "settled"), instructions.c.updated_at >= since
    )
    wanted = set(names)
    out: dict[tuple[str, str], tuple[str, str, bool]] = {}
    for query, is_matched in ((unsettled, False), (matched, True)):
        for r in (await conn.execute(query)).all():
            if r.adapter not in wanted:
                continue
            for ref in (r.id, r.reference, r.partner_reference):
                if ref:
                    out[(r.adapter, ref)] = (r.id, r.status, is_matched)
    return out
