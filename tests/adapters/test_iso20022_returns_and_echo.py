"""pain.002 returns (RJCT flagged RTRN), the echoed original amount, and reason descriptions."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from gateway.domain.status import Status
from gateway.errors import TransientPartnerError
from gateway_adapters.iso20022_bank.pain002 import (
    PaymentInformationStatus,
    StatusReport,
    TransactionStatus,
    build_pain002,
    parse_pain002,
    status_updates,
)
from gateway_adapters.iso20022_bank.reasons import REASON_CODES, RETURN_REASON_CODES, describe_reason


def report(**tx: object) -> bytes:
    fields = {"status": "RJCT", "instruction_id": "ins_1", "end_to_end_id": "INV-1", "reason_code": "AC04", **tx}
    return build_pain002(
        StatusReport(
            message_id="RPT1",
            created_at=datetime(2026, 1, 5, tzinfo=UTC),
            original_message_id="ins_1",
            payments=(PaymentInformationStatus("ins_1", transactions=(TransactionStatus(**fields),)),),  # type: ignore[arg-type]
        )
    )


@pytest.mark.parametrize(("returned", "status"), [(True, Status.RETURNED), (False, Status.REJECTED)])
def test_a_flagged_rjct_is_a_return_with_its_reason_code(returned: bool, status: Status) -> None:
    (update,) = status_updates(parse_pain002(report(returned=returned)))

    assert (update.status, update.reason_code, update.partner_status) == (status, "AC04", "RJCT")


def test_the_original_amount_is_read_back() -> None:
    (tx,) = parse_pain002(report(amount=Decimal("12.50"), currency="EUR")).transactions

    assert (tx.amount, tx.currency) == (Decimal("12.50"), "EUR")


def test_a_broken_original_amount_is_a_contract_error_naming_it() -> None:
    body = report(amount=Decimal("12.50"), currency="EUR").replace(b">12.50<", b">twelve<")

    with pytest.raises(Exception, match="OrgnlTxRef/Amt/InstdAmt"):
        parse_pain002(body)


def test_every_return_code_is_a_known_reason_and_has_a_description() -> None:
    assert set(REASON_CODES) >= RETURN_REASON_CODES
    assert describe_reason("AM04", None) == "insufficient funds"
    assert describe_reason("AM04", "bank text") == "bank text"
    assert describe_reason("XX99", None) == "reason code XX99"
    assert describe_reason(None, None) is None


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        ({"kind": "wrong_amount"}, r"names 1251\.00 EUR, not 1250\.00 EUR"),
        ({"kind": "wrong_currency", "currency": "USD"}, r"names 1250\.00 USD, not 1250\.00 EUR"),
        ({"kind": "wrong_content_type"}, "text/html, not XML"),
    ],
)
async def test_an_answer_naming_another_payment_or_not_xml_is_retried_not_trusted(
    bank_rig: Any, new_order: Any, fault: dict[str, Any], message: str
) -> None:
    rig = await bank_rig(scenario={"name": "echo", "faults": [fault]})
    order = new_order()

    with pytest.raises(TransientPartnerError, match=message):
        await rig.adapter.submit(order)
    result = await rig.adapter.submit(order)  # the fault struck once: the retry's answer is genuine

    assert result.status is Status.SUBMITTED and result.partner_reference.startswith("SIMB")
    assert [p["submissions"] for p in rig.bank.describe()] == [2]
