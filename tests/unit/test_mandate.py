"""SEPA Core mandates and their dates: known-good and known-bad values as data tables."""

from __future__ import annotations

from datetime import date

import pytest

from gateway.domain.errors import (
    CollectionDateError,
    CreditorIdentifierError,
    DomainError,
    MandateIdError,
    PreNotificationError,
    SequenceTypeError,
    SignatureDateError,
)
from gateway.domain.mandate import (
    Mandate,
    add_months,
    earliest_due_date,
    is_target2_business_day,
    latest_submission_date,
    refund_claim_admissible,
    refund_claim_deadline,
    schedule_collection,
    settlement_date,
    target2_closing_days,
    validate_creditor_id,
    validate_mandate_id,
    validate_sequence_type,
)

TODAY = date(2026, 12, 6)  # a Sunday

GOOD_MANDATE_IDS = [
    "M",
    "MANDATE-2026-0001",
    "abc/def?ghi:(1).2,3'4+5",
    "A" * 35,
    "12345678901234567890123456789012345",
]
BAD_MANDATE_IDS = [
    ("", "empty"),
    ("A" * 36, "36 characters, at most 35"),
    ("MANDATE 1", "contains ' '"),
    ("MANDAT_1", "contains '_'"),
    ("MANDÄT-1", "contains 'Ä'"),
    ("/MANDATE", "may not start or end with '/'"),
    ("MANDATE/", "may not start or end with '/'"),
    ("MAN//DATE", "nor contain '//'"),
]


@pytest.mark.parametrize("value", GOOD_MANDATE_IDS)
def test_good_mandate_ids_pass_unchanged(value: str) -> None:
    assert validate_mandate_id(value) == value


@pytest.mark.parametrize(("value", "why"), BAD_MANDATE_IDS)
def test_bad_mandate_ids_raise_one_line_naming_the_problem(value: str, why: str) -> None:
    with pytest.raises(MandateIdError, match=why) as caught:
        validate_mandate_id(value, "/debits/0/mandate_id")
    assert "\n" not in caught.value.message
    assert caught.value.errors[0].pointer == "/debits/0/mandate_id"


# the Bundesbank's published test CI, python-stdnum's example, and three whose check digits
# ``_mod97_10`` below computes independently; compact and upper-case on the way out
GOOD_CREDITOR_IDS = [
    ("DE98ZZZ09999999999", "DE98ZZZ09999999999"),
    ("de98 zzz 09999999999", "DE98ZZZ09999999999"),
    ("ES23ZZZ47690558N", "ES23ZZZ47690558N"),
    ("ES 23 ZZZ 47690558N", "ES23ZZZ47690558N"),
    ("NL42ZZZ123456780001", "NL42ZZZ123456780001"),
    ("FR72ZZZ123456", "FR72ZZZ123456"),
    ("IT09ZZZ0123456789A", "IT09ZZZ0123456789A"),
]


def _mod97_10(ci: str) -> bool:
    """EPC262-08 by hand: national id + country + check digits, letters as 10..35, remainder 1."""
    rearranged = ci[7:] + ci[:4]
    return int("".join(str(int(c, 36)) for c in rearranged)) % 97 == 1


BAD_CREDITOR_IDS = [
    "DE99ZZZ09999999999",  # check digits wrong
    "DE98ZZZ0999999999",  # one digit short: the check fails
    "XX98ZZZ09999999999",  # not a country
    "DE98",  # too short
    "",
]


@pytest.mark.parametrize(("value", "compact"), GOOD_CREDITOR_IDS)
def test_good_creditor_ids_validate_with_iso7064_mod97_10(value: str, compact: str) -> None:
    assert validate_creditor_id(value) == compact
    assert _mod97_10(compact)


@pytest.mark.parametrize("value", BAD_CREDITOR_IDS)
def test_bad_creditor_ids_raise_creditor_identifier_error(value: str) -> None:
    with pytest.raises(CreditorIdentifierError, match=r"creditor identifier .* is invalid") as caught:
        validate_creditor_id(value)
    assert caught.value.errors[0].pointer == "/creditor/creditor_id"


def test_the_business_code_does_not_enter_the_check_digits() -> None:
    # EPC262-08: positions 5-7 (the creditor business code) are skipped by MOD 97-10
    assert validate_creditor_id("DE98ABC09999999999") == "DE98ABC09999999999"


@pytest.mark.parametrize("value", ["FRST", "RCUR", "OOFF", "FNAL"])
def test_sequence_types(value: str) -> None:
    assert validate_sequence_type(value) == value


@pytest.mark.parametrize("value", ["frst", "RPRE", "", "FIRST"])
def test_unknown_sequence_types_are_refused(value: str) -> None:
    with pytest.raises(SequenceTypeError, match="is not one of FRST, RCUR, OOFF, FNAL"):
        validate_sequence_type(value)


def test_a_mandate_validates_each_field_on_construction() -> None:
    mandate = Mandate.create("MANDATE-1", date(2026, 1, 2), "de98zzz09999999999", today=TODAY)

    assert mandate == Mandate("MANDATE-1", date(2026, 1, 2), "DE98ZZZ09999999999")
    with pytest.raises(SignatureDateError, match="2026-12-07 is in the future"):
        Mandate.create("MANDATE-1", date(2026, 12, 7), "DE98ZZZ09999999999", today=TODAY)
    with pytest.raises(MandateIdError):
        Mandate.create("MANDATE 1", date(2026, 1, 2), "DE98ZZZ09999999999", today=TODAY)
    with pytest.raises(CreditorIdentifierError):
        Mandate.create("MANDATE-1", date(2026, 1, 2), "DE99ZZZ09999999999", today=TODAY)


def test_mandate_errors_are_domain_errors_answered_422() -> None:
    for cls in (MandateIdError, SignatureDateError, SequenceTypeError, CreditorIdentifierError):
        assert issubclass(cls, DomainError) and cls.status == 422


# -- TARGET2 ------------------------------------------------------------------------------

EASTER = [  # (year, Good Friday, Easter Monday): Easter moves, the calendar follows it
    (2024, date(2024, 3, 29), date(2024, 4, 1)),
    (2025, date(2025, 4, 18), date(2025, 4, 21)),
    (2026, date(2026, 4, 3), date(2026, 4, 6)),
    (2027, date(2027, 3, 26), date(2027, 3, 29)),
    (2038, date(2038, 4, 23), date(2038, 4, 26)),
]


@pytest.mark.parametrize(("year", "good_friday", "easter_monday"), EASTER)
def test_target2_closes_on_the_six_days_with_easter_computed(year: int, good_friday: date, easter_monday: date) -> None:
    assert target2_closing_days(year) == {
        date(year, 1, 1),
        good_friday,
        easter_monday,
        date(year, 5, 1),
        date(year, 12, 25),
        date(year, 12, 26),
    }


@pytest.mark.parametrize(
    ("day", "open_"),
    [
        (date(2026, 12, 4), True),  # Friday
        (date(2026, 12, 5), False),  # Saturday
        (date(2026, 12, 6), False),  # Sunday
        (date(2026, 12, 24), True),  # Christmas Eve is a TARGET2 day
        (date(2026, 12, 25), False),
        (date(2026, 12, 31), True),
        (date(2026, 10, 3), False),  # Saturday (and a German holiday: not a TARGET2 one)
        (date(2025, 10, 3), True),  # German Unity Day on a Friday: TARGET2 is open
    ],
)
def test_target2_business_days(day: date, open_: bool) -> None:
    assert is_target2_business_day(day) is open_


# due date → (settles on, latest submission D-1)
SUBMISSION = [
    (date(2026, 12, 15), date(2026, 12, 15), date(2026, 12, 14)),  # Tue → Mon
    (date(2026, 12, 14), date(2026, 12, 14), date(2026, 12, 11)),  # Mon → previous Fri
    (date(2026, 12, 28), date(2026, 12, 28), date(2026, 12, 24)),  # Mon after Christmas → Thu 24th
    (date(2026, 12, 26), date(2026, 12, 28), date(2026, 12, 24)),  # due on a closing day: settles Mon
    (date(2026, 4, 7), date(2026, 4, 7), date(2026, 4, 2)),  # Tue after Easter → Thu before Good Friday
    (date(2027, 1, 4), date(2027, 1, 4), date(2026, 12, 31)),  # over New Year
]


@pytest.mark.parametrize(("due", "settles", "submit_by"), SUBMISSION)
@pytest.mark.parametrize("sequence_type", ["FRST", "RCUR", "OOFF", "FNAL"])
def test_every_sequence_type_must_reach_the_bank_by_d_minus_1(
    due: date, settles: date, submit_by: date, sequence_type: str
) -> None:
    assert settlement_date(due) == settles
    assert latest_submission_date(due, sequence_type) == submit_by


def test_a_collection_submitted_in_time_gets_its_schedule() -> None:
    schedule = schedule_collection(
        date(2026, 12, 28),
        "FRST",
        today=date(2026, 12, 24),
        notified_on=date(2026, 12, 14),
        signed_on=date(2026, 12, 1),
    )

    assert (schedule.settles_on, schedule.submit_by, schedule.notify_by) == (
        date(2026, 12, 28),
        date(2026, 12, 24),
        date(2026, 12, 14),
    )


def test_a_collection_submitted_after_d_minus_1_is_refused_with_one_line() -> None:
    with pytest.raises(CollectionDateError) as caught:
        schedule_collection(date(2026, 12, 28), "RCUR", today=date(2026, 12, 25))

    assert caught.value.message == (
        "due date 2026-12-28 needs submission by 2026-12-24 (D-1 TARGET2 business day); today is 2026-12-25"
    )
    assert caught.value.errors[0].pointer == "/due_on"


def test_pre_notification_is_14_days_by_default_and_configurable() -> None:
    due = date(2027, 1, 20)
    with pytest.raises(PreNotificationError, match=r"needs notice by 2027-01-06 \(14 calendar days\)"):
        schedule_collection(due, "RCUR", today=date(2027, 1, 8), notified_on=date(2027, 1, 7))

    agreed = schedule_collection(
        due, "RCUR", today=date(2027, 1, 8), notified_on=date(2027, 1, 7), pre_notification_days=2
    )
    assert agreed.notify_by == date(2027, 1, 18)
    with pytest.raises(PreNotificationError, match="cannot be negative"):
        schedule_collection(due, "RCUR", today=date(2027, 1, 8), pre_notification_days=-1)


def test_a_mandate_signed_after_the_due_date_or_in_the_future_is_refused() -> None:
    with pytest.raises(SignatureDateError):
        schedule_collection(date(2027, 1, 20), "FRST", today=date(2027, 1, 8), signed_on=date(2027, 1, 9))


@pytest.mark.parametrize(
    ("today", "notified_on", "days", "earliest"),
    [
        (date(2026, 12, 4), None, 14, date(2026, 12, 18)),  # 14 days rule dominates
        (date(2026, 12, 4), None, 0, date(2026, 12, 7)),  # Fri → next TARGET2 day Mon
        (date(2026, 12, 24), date(2026, 12, 1), 14, date(2026, 12, 28)),  # notified long ago: D-1 dominates
        (date(2026, 12, 24), date(2026, 12, 20), 5, date(2026, 12, 28)),
    ],
)
def test_earliest_due_date(today: date, notified_on: date | None, days: int, earliest: date) -> None:
    assert earliest_due_date(today, notified_on=notified_on, pre_notification_days=days) == earliest


# -- refund windows -------------------------------------------------------------------------

REFUNDS = [
    # settled on, claimed on, authorised, admissible
    (date(2026, 3, 2), date(2026, 4, 27), True, True),  # 8 weeks = 56 days: the last day
    (date(2026, 3, 2), date(2026, 4, 28), True, False),
    (date(2026, 3, 2), date(2026, 3, 2), True, True),
    (date(2026, 3, 2), date(2026, 3, 1), True, False),  # before the debit: nothing to refund
    (date(2026, 3, 2), date(2027, 4, 2), False, True),  # 13 months: the last day
    (date(2026, 3, 2), date(2027, 4, 3), False, False),
    (date(2026, 3, 2), date(2026, 6, 1), False, True),  # unauthorised: after 8 weeks still in time
    (date(2026, 1, 31), date(2027, 2, 28), False, True),  # 31 Jan + 13 months: clamped to 28 Feb
    (date(2026, 1, 31), date(2027, 3, 1), False, False),
]


@pytest.mark.parametrize(("settled", "claimed", "authorised", "admissible"), REFUNDS)
def test_refund_windows_8_weeks_authorised_13_months_unauthorised(
    settled: date, claimed: date, authorised: bool, admissible: bool
) -> None:
    assert refund_claim_admissible(settled, claimed, authorised=authorised) is admissible


def test_refund_deadlines_and_month_arithmetic() -> None:
    assert refund_claim_deadline(date(2026, 3, 2), authorised=True) == date(2026, 4, 27)
    assert refund_claim_deadline(date(2026, 3, 2), authorised=False) == date(2027, 4, 2)
    assert add_months(date(2027, 12, 31), 2) == date(2028, 2, 29)  # leap year
    assert add_months(date(2026, 11, 15), 13) == date(2027, 12, 15)
