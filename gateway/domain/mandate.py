"""SEPA Core direct debit mandates and the scheme's date rules, as values and pure functions.

A ``Mandate`` validates on construction, each step raising one specific
``MandateError`` (one line, with the JSON pointer of the failing field):

- mandate id (AT-01): 1 to 35 characters of the EPC character set
  (``a-z A-Z 0-9 / - ? : ( ) . , ' +``), no space, not starting or ending with
  ``/`` and without ``//`` (EPC IG rules for identifiers);
- signature date (AT-25): not after today;
- creditor identifier (CI, AT-02): ISO 7064 MOD 97-10 over the CI without its
  business code, as EPC262-08 defines it (``stdnum.eu.at_02``).

Dates (SEPA Core rulebook since November 2016): FRST, RCUR, OOFF and FNAL
collections all reach the debtor bank at the latest one TARGET2 business day
before the due date (D-1); the debtor is pre-notified at least 14 calendar days
before the due date unless creditor and debtor agreed otherwise (the
``pre_notification_days`` parameter). TARGET2 is closed on weekends, 1 January,
Good Friday, Easter Monday, 1 May, 25 and 26 December (``holidays``' ``XECB``
calendar, which computes Easter). A due date on a closing day settles on the
next TARGET2 business day.

Refund rights (rulebook 4.3.4): a debtor may claim a refund of an authorised
collection within 8 weeks of the debit date (``MD06``), and of an unauthorised
one (no valid mandate, ``MD01``) within 13 months.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import date, timedelta
from functools import cache

import holidays
from stdnum.eu import at_02
from stdnum.exceptions import ValidationError as _StdnumError

from gateway.domain.errors import (
    CollectionDateError,
    CreditorIdentifierError,
    MandateIdError,
    PreNotificationError,
    SequenceTypeError,
    SignatureDateError,
)

__all__ = [
    "AUTHORISED_REFUND_WEEKS",
    "DEFAULT_PRE_NOTIFICATION_DAYS",
    "SEQUENCE_TYPES",
    "UNAUTHORISED_REFUND_MONTHS",
    "CollectionSchedule",
    "Mandate",
    "add_months",
    "earliest_due_date",
    "is_target2_business_day",
    "latest_submission_date",
    "next_target2_business_day",
    "previous_target2_business_day",
    "refund_claim_admissible",
    "refund_claim_deadline",
    "schedule_collection",
    "settlement_date",
    "target2_closing_days",
    "validate_creditor_id",
    "validate_mandate_id",
    "validate_sequence_type",
    "validate_signature_date",
]

#: FRST first of a recurrent series, RCUR recurrent, OOFF one-off, FNAL last of a series
SEQUENCE_TYPES: tuple[str, ...] = ("FRST", "RCUR", "OOFF", "FNAL")
#: the rulebook's default, when creditor and debtor agreed no other period
DEFAULT_PRE_NOTIFICATION_DAYS = 14
AUTHORISED_REFUND_WEEKS = 8
UNAUTHORISED_REFUND_MONTHS = 13
MANDATE_ID_MAX_LENGTH = 35

_MANDATE_ID_CHARS = re.compile(r"[A-Za-z0-9/\-?:().,'+]+")


# -- validators (each raises one specific error) ------------------------------------


def validate_mandate_id(value: str, pointer: str = "/mandate/id") -> str:
    """The mandate id as given, or ``MandateIdError`` naming what is wrong."""
    if not isinstance(value, str) or not value:
        raise MandateIdError("mandate id is empty", pointer=pointer)
    if len(value) > MANDATE_ID_MAX_LENGTH:
        raise MandateIdError(f"mandate id has {len(value)} characters, at most 35 allowed", pointer=pointer)
    if not _MANDATE_ID_CHARS.fullmatch(value):
        bad = next(c for c in value if not _MANDATE_ID_CHARS.fullmatch(c))
        raise MandateIdError(f"mandate id contains {bad!r}; allowed: a-z A-Z 0-9 / - ? : ( ) . , ' +", pointer=pointer)
    if value.startswith("/") or value.endswith("/") or "//" in value:
        raise MandateIdError("mandate id may not start or end with '/' nor contain '//'", pointer=pointer)
    return value


def validate_signature_date(signed_on: date, today: date, pointer: str = "/mandate/signed_on") -> date:
    """The signature date, or ``SignatureDateError`` if it lies after ``today``."""
    if signed_on > today:
        raise SignatureDateError(
            f"mandate signature date {signed_on.isoformat()} is in the future (today is {today.isoformat()})",
            pointer=pointer,
        )
    return signed_on


def validate_sequence_type(value: str, pointer: str = "/sequence_type") -> str:
    """The sequence type, or ``SequenceTypeError``."""
    if value not in SEQUENCE_TYPES:
        raise SequenceTypeError(f"sequence type {value!r} is not one of {', '.join(SEQUENCE_TYPES)}", pointer=pointer)
    return value


def validate_creditor_id(value: str, pointer: str = "/creditor/creditor_id") -> str:
    """The creditor identifier in compact upper-case form, or ``CreditorIdentifierError``."""
    try:
        return str(at_02.validate(value))
    except _StdnumError as exc:
        raise CreditorIdentifierError(f"creditor identifier {value!r} is invalid: {exc}", pointer=pointer) from None


@dataclass(frozen=True)
class Mandate:
    """A signed SEPA Core mandate: the debtor's authorisation for one creditor (CI)."""

    mandate_id: str
    signed_on: date
    creditor_id: str

    @classmethod
    def create(cls, mandate_id: str, signed_on: date, creditor_id: str, *, today: date) -> Mandate:
        """Validate each field (in this order) and build the mandate."""
        return cls(
            validate_mandate_id(mandate_id),
            validate_signature_date(signed_on, today),
            validate_creditor_id(creditor_id),
        )


# -- the TARGET2 calendar -------------------------------------------------------------


@cache
def target2_closing_days(year: int) -> frozenset[date]:
    """The TARGET2 closing days of ``year`` other than weekends (Easter computed by ``holidays``)."""
    return frozenset(holidays.financial_holidays("XECB", years=year))


def is_target2_business_day(day: date) -> bool:
    return day.weekday() < 5 and day not in target2_closing_days(day.year)


def next_target2_business_day(day: date) -> date:
    """The first TARGET2 business day strictly after ``day``."""
    day += timedelta(days=1)
    while not is_target2_business_day(day):
        day += timedelta(days=1)
    return day


def previous_target2_business_day(day: date) -> date:
    """The last TARGET2 business day strictly before ``day``."""
    day -= timedelta(days=1)
    while not is_target2_business_day(day):
        day -= timedelta(days=1)
    return day


def settlement_date(due_on: date) -> date:
    """The day a collection due on ``due_on`` settles: the due date, or the next TARGET2 business day."""
    return due_on if is_target2_business_day(due_on) else next_target2_business_day(due_on)


def latest_submission_date(due_on: date, sequence_type: str = "RCUR") -> date:
    """The last day the collection may reach the debtor bank: D-1 TARGET2 business day (all sequence types)."""
    validate_sequence_type(sequence_type)
    return previous_target2_business_day(settlement_date(due_on))


def earliest_due_date(
    today: date,
    *,
    notified_on: date | None = None,
    pre_notification_days: int = DEFAULT_PRE_NOTIFICATION_DAYS,
) -> date:
    """The earliest due date a collection submitted ``today`` can ask for.

    At least the next TARGET2 business day (so ``today`` is D-1 at the latest)
    and, if the debtor is notified on ``notified_on`` (default ``today``), no
    earlier than ``pre_notification_days`` calendar days after it.
    """
    notice = (notified_on or today) + timedelta(days=pre_notification_days)
    return max(next_target2_business_day(today), notice)


@dataclass(frozen=True)
class CollectionSchedule:
    """When a collection is due, settles, must be submitted by, and when the debtor had to be notified."""

    due_on: date
    settles_on: date
    submit_by: date
    notify_by: date


def schedule_collection(
    due_on: date,
    sequence_type: str,
    *,
    today: date,
    notified_on: date | None = None,
    signed_on: date | None = None,
    pre_notification_days: int = DEFAULT_PRE_NOTIFICATION_DAYS,
    pointer: str = "/due_on",
) -> CollectionSchedule:
    """Check a collection submitted ``today`` for ``due_on`` against the scheme's dates.

    Raises ``SequenceTypeError``, ``SignatureDateError`` (mandate signed after
    the due date or in the future), ``CollectionDateError`` (``today`` is after
    the D-1 TARGET2 business day) or ``PreNotificationError`` (``notified_on``
    later than ``pre_notification_days`` before ``due_on``; not checked when
    ``notified_on`` is None, i.e. the caller notifies on its own schedule).
    """
    validate_sequence_type(sequence_type)
    if pre_notification_days < 0:
        raise PreNotificationError("pre-notification days cannot be negative", pointer="/pre_notification_days")
    if signed_on is not None:
        validate_signature_date(signed_on, min(today, due_on))
    schedule = CollectionSchedule(
        due_on=due_on,
        settles_on=settlement_date(due_on),
        submit_by=latest_submission_date(due_on, sequence_type),
        notify_by=due_on - timedelta(days=pre_notification_days),
    )
    if today > schedule.submit_by:
        raise CollectionDateError(
            f"due date {due_on.isoformat()} needs submission by {schedule.submit_by.isoformat()} "
            f"(D-1 TARGET2 business day); today is {today.isoformat()}",
            pointer=pointer,
        )
    if notified_on is not None and notified_on > schedule.notify_by:
        raise PreNotificationError(
            f"debtor notified on {notified_on.isoformat()}, but due date {due_on.isoformat()} needs notice "
            f"by {schedule.notify_by.isoformat()} ({pre_notification_days} calendar days)",
            pointer="/notified_on",
        )
    return schedule


# -- refund rights ----------------------------------------------------------------------


def add_months(day: date, months: int) -> date:
    """``day`` plus calendar months, clamped to the last day of a shorter month (31 Jan + 1 = 28/29 Feb)."""
    index = day.month - 1 + months
    year, month = day.year + index // 12, index % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def refund_claim_deadline(settled_on: date, *, authorised: bool) -> date:
    """The last day a debtor may claim a refund: 8 weeks (authorised) or 13 months (unauthorised) after the debit."""
    if authorised:
        return settled_on + timedelta(weeks=AUTHORISED_REFUND_WEEKS)
    return add_months(settled_on, UNAUTHORISED_REFUND_MONTHS)


def refund_claim_admissible(settled_on: date, claimed_on: date, *, authorised: bool) -> bool:
    """Whether a refund claimed on ``claimed_on`` for a debit settled on ``settled_on`` is in time."""
    return settled_on <= claimed_on <= refund_claim_deadline(settled_on, authorised=authorised)
