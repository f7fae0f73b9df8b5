"""Partner statements as values: what an importer reads, what reconciliation matches.

A ``Statement`` is one account's statement for a period (a camt.053 ``Stmt``, an
MT940 message, a NACHA file), its lines in integer minor units. Readers live in
the adapters and offer themselves through the ``gateway_statement_formats`` hook
as ``StatementFormat`` values; ``check_controls`` checks a statement's own
figures (opening + movements = closing, one currency, declared count and sum)
before anything of it is stored.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import BinaryIO

from gateway.domain.errors import DomainError
from gateway.domain.money import minor_units

__all__ = [
    "FetchedFile",
    "LineItem",
    "Statement",
    "StatementControlError",
    "StatementFetch",
    "StatementFormat",
    "StatementLine",
    "StreamFallback",
    "check_controls",
    "check_header",
    "check_line",
    "check_totals",
    "statement_line",
    "to_minor",
]


class StatementControlError(DomainError):
    """A statement's own control figures do not add up; nothing of it may be stored."""

    default_message = "statement control figures do not add up"
    slug = "statement-controls"


class StreamFallback(Exception):
    """A parallel reader (``StatementFormat.stream_file``) cannot vouch for reading this file as the streamed
    reader would: the import rolls back what it stored of it and reads it again with ``stream``."""


def to_minor(amount: Decimal, currency: str) -> int:
    """An exact ``Decimal`` amount as an integer count of the currency's minor units; refuses sub-minor digits."""
    scaled = amount.scaleb(minor_units(currency))
    if scaled != scaled.to_integral_value():
        raise StatementControlError(f"{amount} has more decimals than {currency} allows")
    return int(scaled)


@dataclass(frozen=True)
class LineItem:
    """What a statement line is made of, when its file itemises it (a card acquirer's payout batch)."""

    kind: str  # charge | chargeback | payout | payout_return
    reference: str  # the gateway's id of the charge (collection) or payout (instruction)
    amount_minor: int  # gross, signed as the line: credit (money to us) positive
    fee_minor: int  # what the partner kept for it (never negative)
    partner_reference: str | None = None


@dataclass(frozen=True)
class StatementLine:
    """One booked movement (or a return / notification of change) on a statement."""

    amount_minor: int  # never negative; ``credit`` gives the direction
    credit: bool
    currency: str
    booked_on: date | None = None
    value_on: date | None = None
    end_to_end_id: str | None = None
    partner_reference: str | None = None  # the reference the partner gives the movement (trace, customer ref)
    servicer_reference: str | None = None  # the account servicer's own reference (AcctSvcrRef, bank ref)
    counterparty_name: str | None = None
    counterparty_account: str | None = None  # masked by the reader: last four characters only
    kind: str = "booked"  # booked | return | change (NACHA notification of change)
    reason_code: str | None = None  # return or change reason (R01, C01, camt RtrInf)
    original_reference: str | None = None  # for a return: the reference of the movement returned
    text: str | None = None  # remittance / narrative, at most 140 characters
    remittance_reference: str | None = None  # structured creditor reference (ISO 11649 RF, camt Strd/CdtrRefInf)
    #: the transactions the line settles and their fees, if the file itemises them: the items' gross less
    #: their fees is the line's amount (``check_line``)
    items: tuple[LineItem, ...] = ()

    @property
    def direction(self) -> str:
        return "credit" if self.credit else "debit"

    @property
    def signed_minor(self) -> int:
        return self.amount_minor if self.credit else -self.amount_minor


_new = object.__new__


def statement_line(
    amount_minor: int,
    credit: bool,
    currency: str,
    booked_on: date | None,
    value_on: date | None,
    end_to_end_id: str | None,
    partner_reference: str | None,
    servicer_reference: str | None,
    counterparty_name: str | None,
    counterparty_account: str | None,
    kind: str,
    reason_code: str | None,
    original_reference: str | None,
    text: str | None,
    remittance_reference: str | None,
) -> StatementLine:
    """``StatementLine(...)`` of a line without items, for a streamed reader's hot path (one per entry).

    The same value, built by filling its ``__dict__`` at once: a frozen dataclass's ``__init__`` sets each
    of its sixteen fields through ``object.__setattr__``, twice the cost (``StatementLine`` has no
    ``__post_init__`` to skip; a test holds the field list to this one).
    """
    line = _new(StatementLine)
    line.__dict__.update(
        {
            "amount_minor": amount_minor,
            "credit": credit,
            "currency": currency,
            "booked_on": booked_on,
            "value_on": value_on,
            "end_to_end_id": end_to_end_id,
            "partner_reference": partner_reference,
            "servicer_reference": servicer_reference,
            "counterparty_name": counterparty_name,
            "counterparty_account": counterparty_account,
            "kind": kind,
            "reason_code": reason_code,
            "original_reference": original_reference,
            "text": text,
            "remittance_reference": remittance_reference,
            "items": (),
        }
    )
    return line


@dataclass(frozen=True)
class Statement:
    """One account's statement for a period, as a partner sent it."""

    source: str  # who sent it: the adapter's name (the idempotency scope of ``statement_id``)
    format: str  # the format it came in (camt.053, mt940, nacha)
    statement_id: str
    currency: str
    account: str | None = None  # masked
    sequence: int | None = None  # the partner's statement number, if it numbers them
    period_start: date | None = None
    period_end: date | None = None
    opening_minor: int | None = None
    closing_minor: int | None = None
    lines: tuple[StatementLine, ...] = ()
    #: control figures the file declares, checked against the lines (None: not declared)
    declared_count: int | None = None
    declared_credits_minor: int | None = None
    declared_debits_minor: int | None = None
    #: problems the reader saw that make the figures unusable (e.g. balances in two currencies)
    problems: tuple[str, ...] = field(default=())

    @property
    def credits_minor(self) -> int:
        return sum(line.amount_minor for line in self.lines if line.credit)

    @property
    def debits_minor(self) -> int:
        return sum(line.amount_minor for line in self.lines if not line.credit)


def check_header(statement: Statement) -> None:
    """The checks of a statement that need none of its lines."""
    if not statement.statement_id:
        raise StatementControlError("a statement has no id")
    if statement.problems:
        raise StatementControlError(f"statement {statement.statement_id!r}: {statement.problems[0]}")
    minor_units(statement.currency)  # CurrencyError for a code that is not ISO 4217 (e.g. DEM)


def check_line(statement: Statement, n: int, line: StatementLine) -> None:
    """The checks of line ``n`` of ``statement``."""
    if line.currency != statement.currency:
        where = f"statement {statement.statement_id!r}"
        raise StatementControlError(f"{where}: line {n} is in {line.currency}, the statement in {statement.currency}")
    if line.amount_minor < 0:
        raise StatementControlError(f"statement {statement.statement_id!r}: line {n} has a negative amount")
    if line.items:
        gross = sum(i.amount_minor for i in line.items)
        fees = sum(i.fee_minor for i in line.items)
        if any(i.fee_minor < 0 for i in line.items) or gross - fees != line.signed_minor:
            raise StatementControlError(
                f"statement {statement.statement_id!r}: line {n}: its items' gross {gross} less fees {fees}"
                f" is not its amount {line.signed_minor} (minor units of {statement.currency})"
            )


def check_totals(statement: Statement, count: int, credits_minor: int, debits_minor: int) -> None:
    """The control figures (declared count and sums, opening + movements = closing) against the lines' totals."""
    where = f"statement {statement.statement_id!r}"
    if statement.declared_count is not None and statement.declared_count != count:
        raise StatementControlError(f"{where}: declares {statement.declared_count} entries but holds {count}")
    for name, declared, actual in (
        ("credits", statement.declared_credits_minor, credits_minor),
        ("debits", statement.declared_debits_minor, debits_minor),
    ):
        if declared is not None and declared != actual:
            raise StatementControlError(f"{where}: declares {name} of {declared} but its lines sum to {actual}")
    if statement.opening_minor is not None and statement.closing_minor is not None:
        expected = statement.opening_minor + credits_minor - debits_minor
        if expected != statement.closing_minor:
            raise StatementControlError(
                f"{where}: opening {statement.opening_minor} + movements "
                f"{credits_minor - debits_minor} = {expected}, "
                f"but the closing balance is {statement.closing_minor} (minor units of {statement.currency})"
            )


def check_controls(statement: Statement) -> None:
    """Raise ``StatementControlError`` with one line if the statement's figures do not add up."""
    check_header(statement)
    for n, line in enumerate(statement.lines, start=1):
        check_line(statement, n, line)
    check_totals(statement, len(statement.lines), statement.credits_minor, statement.debits_minor)


@dataclass(frozen=True)
class StatementFormat:
    """A statement format an adapter reads: its name, how to recognise a file, how to read one."""

    name: str  # e.g. camt.053, mt940, nacha
    source: str  # the adapter (partner) whose statements these are
    description: str
    #: True if the first bytes of a file look like this format (for ``--format auto``)
    sniff: Callable[[bytes], bool]
    #: every statement in the file; a ``GatewayError`` (one line) if the file cannot be read
    read: Callable[[bytes], Sequence[Statement]]
    #: the file read as it streams (any size, bounded memory): each ``Statement`` without its lines, then
    #: its lines; ``None`` if the format is only read whole
    stream: Callable[[BinaryIO], Iterator[Statement | StatementLine]] | None = None
    #: the same items as ``stream`` for a file on disk, read faster (several processes); it raises
    #: ``StreamFallback`` (before or after yielding items) when it cannot vouch for that; ``None``: ``stream`` only
    stream_file: Callable[[Path], Iterator[Statement | StatementLine]] | None = None


@dataclass(frozen=True)
class StatementFetch:
    """What the gateway asks an adapter to fetch (``Adapter.fetch_statements``): which days, and from where on.

    End-of-day statements are asked only for days that are over (``closed_days``): a day's statement
    imported before the day ends would be stored once, incomplete. Notifications are asked from the
    one after the highest sequence stored (``after``).
    """

    today: date  # the gateway's day (UTC)
    days: int  # how many closed days back to ask end-of-day statements for
    #: per format: the highest statement sequence of this source already stored (0: none)
    after: Mapping[str, int] = field(default_factory=dict)

    def closed_days(self) -> list[date]:
        """The ``days`` days before ``today``, oldest first."""
        return [self.today - timedelta(days=n) for n in range(self.days, 0, -1)]


@dataclass(frozen=True)
class FetchedFile:
    """A statement file an adapter fetched from its partner, as the partner sent it."""

    format: str  # the name of a statement format (``camt.053``) the import reads it with
    name: str  # what it is, for the report and the log: ``camt.053 2026-12-04``
    body: bytes = field(repr=False)
