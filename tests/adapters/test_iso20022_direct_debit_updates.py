"""The adapter's reading of camt.054 for one direct debit: collected, refused, returned, and refunds
(MD06 / MD01) against their 8-week / 13-month windows."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

from gateway.domain.accounts import IbanAccount
from gateway.domain.collection import CollectionOrder, Mandate, Payer
from gateway.domain.collection_status import CollectionStatus
from gateway.domain.money import Money
from gateway_adapters.iso20022_bank.adapter import collection_update
from gateway_adapters.iso20022_bank.camt054 import NotificationEntry, build_camt054, read_camt054

ORDER = CollectionOrder(
    id="col_01TESTDIRECTDEBIT",
    business_unit="erp-europe",
    reference="DD-0001",
    kind="direct_debit",
    money=Money(Decimal("250.00"), "EUR"),
    payer=Payer("Nordic Parts AB", iban=IbanAccount("DE89370400440532013000")),
    mandate=Mandate("MNDT-0042", date(2026, 1, 15), "RCUR"),
)


def entry(kind: str, booked_on: date, code: str | None = None, instruction_id: str = ORDER.id) -> NotificationEntry:
    return NotificationEntry(
        kind=kind,
        amount=Decimal("250.00"),
        currency="EUR",
        booked_on=booked_on,
        end_to_end_id=instruction_id,
        servicer_reference=f"REF-{kind}-{booked_on:%Y%m%d}",
        instruction_id=instruction_id,
        mandate_id="MNDT-0042",
        debtor_name="Nordic Parts AB",
        debtor_iban="DE89370400440532013000",
        reason_code=code,
    )


def notification(*entries: NotificationEntry) -> list:
    body = build_camt054(
        list(entries),
        account_iban="DE02120300000000202051",
        currency="EUR",
        message_id="NTF-1",
        notification_id="NTF-1",
        created_at=datetime(2026, 12, 6, tzinfo=UTC),
    )
    return read_camt054(body)


SETTLED = date(2026, 3, 2)


def test_nothing_yet_then_collected_then_returned_with_its_code() -> None:
    assert collection_update(ORDER, notification(entry("collected", SETTLED, instruction_id="col_other"))) is None
    collected = collection_update(ORDER, notification(entry("collected", SETTLED)))
    assert collected is not None and (collected.status, collected.partner_status) == (
        CollectionStatus.COLLECTED,
        "BOOK",
    )
    returned = collection_update(ORDER, notification(entry("collected", SETTLED), entry("returned", SETTLED, "AM04")))
    assert returned is not None
    assert (returned.status, returned.reason_code, returned.partner_status) == (
        CollectionStatus.RETURNED,
        "AM04",
        "return",
    )
    assert returned.collection_id == ORDER.id and returned.reason


def test_a_refusal_before_settlement_is_a_rejection() -> None:
    update = collection_update(ORDER, notification(entry("rejected", SETTLED, "MS02")))
    assert update is not None
    assert (update.status, update.reason_code, update.partner_status) == (CollectionStatus.REJECTED, "MS02", "refusal")


def test_refunds_say_whether_they_came_within_their_window() -> None:
    in_time = collection_update(
        ORDER, notification(entry("collected", SETTLED), entry("returned", date(2026, 4, 20), "MD06"))
    )
    late = collection_update(
        ORDER, notification(entry("collected", SETTLED), entry("returned", date(2026, 5, 20), "MD06"))
    )
    unauthorised = collection_update(
        ORDER, notification(entry("collected", SETTLED), entry("returned", date(2027, 1, 20), "MD01"))
    )
    assert in_time is not None and late is not None and unauthorised is not None
    assert in_time.status is CollectionStatus.RETURNED and in_time.partner_status == "refund"
    assert "within the 8-week window ending 2026-04-27" in (in_time.reason or "")
    assert "after the 8-week window ending 2026-04-27" in (late.reason or "")
    assert "within the 13-month window" in (unauthorised.reason or "") and unauthorised.reason_code == "MD01"


def test_an_amount_that_is_not_the_collection_s_is_not_taken_as_collected() -> None:
    other = NotificationEntry(**{**entry("collected", SETTLED).__dict__, "amount": Decimal("25.00")})
    assert collection_update(ORDER, notification(other)) is None
