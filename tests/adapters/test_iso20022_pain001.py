"""pain.001.001.09 output: valid against the official XSD, carrying the gateway's identifiers."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
import xmlschema
from lxml import etree

from gateway.errors import ContractError
from gateway.partners.adapter import PaymentOrder
from gateway_adapters.iso20022_bank.pain001 import build_pain001, read_pain001
from gateway_adapters.iso20022_bank.schemas import PAIN001_NAMESPACE, PAIN001_XSD

NS = {"p": PAIN001_NAMESPACE}
CREATED = datetime(2024, 5, 6, 10, 30, 15, 123456, tzinfo=UTC)
EXECUTION = date(2024, 5, 7)

OrderFactory = Callable[..., PaymentOrder]


@pytest.fixture(scope="module")
def official_xsd() -> xmlschema.XMLSchema:
    """xmlschema is an independent validator from the lxml one the adapter uses."""
    return xmlschema.XMLSchema(str(PAIN001_XSD))


def build(order: PaymentOrder) -> bytes:
    return build_pain001(order, created_at=CREATED, execution_date=EXECUTION)


def xpath(body: bytes, path: str) -> list[str]:
    return [str(v) for v in etree.fromstring(body).xpath(path, namespaces=NS)]


@pytest.mark.parametrize("amount", ["0.01", "1250.00", "999999.99"])
@pytest.mark.parametrize("with_bic", [True, False], ids=["with-bic", "without-bic"])
def test_pain001_validates_against_official_xsd(
    official_xsd: xmlschema.XMLSchema, new_order: OrderFactory, amount: str, with_bic: bool
) -> None:
    order = new_order(
        amount=amount,
        creditor_bic="BNPAFRPPXXX" if with_bic else None,
        debtor_bic="COBADEFFXXX" if with_bic else None,
    )
    body = build(order)

    official_xsd.validate(body.decode())
    assert xpath(body, "//p:InstdAmt/text()") == [amount]
    assert xpath(body, "//p:InstdAmt/@Ccy") == ["EUR"]
    assert xpath(body, "//p:GrpHdr/p:CtrlSum/text()") == [amount]


def test_pain001_carries_gateway_ids_and_business_reference(new_order: OrderFactory) -> None:
    order = new_order(id="ins_42", reference="INV-9", remittance="Invoice 9")
    body = build(order)

    assert xpath(body, "//p:GrpHdr/p:MsgId/text()") == ["ins_42"]
    assert xpath(body, "//p:PmtInfId/text()") == ["ins_42"]
    assert xpath(body, "//p:PmtId/p:InstrId/text()") == ["ins_42"]
    assert xpath(body, "//p:PmtId/p:EndToEndId/text()") == ["INV-9"]
    assert xpath(body, "//p:RmtInf/p:Ustrd/text()") == ["Invoice 9"]
    assert xpath(body, "//p:ReqdExctnDt/p:Dt/text()") == ["2024-05-07"]
    assert xpath(body, "//p:GrpHdr/p:CreDtTm/text()") == ["2024-05-06T10:30:15+00:00"]
    assert xpath(body, "//p:Cdtr/p:Nm/text()") == ["Nordic Parts AB"]
    assert xpath(body, "//p:SvcLvl/p:Cd/text()") == ["SEPA"]


def test_pain001_without_bics_omits_creditor_agent_and_marks_debtor_agent_not_provided(
    new_order: OrderFactory,
) -> None:
    body = build(new_order(creditor_bic=None, debtor_bic=None))

    assert xpath(body, "//p:CdtrAgt") == []
    assert xpath(body, "//p:DbtrAgt/p:FinInstnId/p:Othr/p:Id/text()") == ["NOTPROVIDED"]
    assert xpath(body, "//p:BICFI") == []


def test_pain001_with_bics_names_both_agents(new_order: OrderFactory) -> None:
    body = build(new_order())

    assert xpath(body, "//p:DbtrAgt/p:FinInstnId/p:BICFI/text()") == ["COBADEFFXXX"]
    assert xpath(body, "//p:CdtrAgt/p:FinInstnId/p:BICFI/text()") == ["BNPAFRPPXXX"]


def test_pain001_uses_the_currency_minor_units(official_xsd: xmlschema.XMLSchema, new_order: OrderFactory) -> None:
    body = build(new_order(amount="1250", currency="JPY"))

    official_xsd.validate(body.decode())
    assert xpath(body, "//p:InstdAmt/text()") == ["1250"]
    assert xpath(body, "//p:SvcLvl") == []  # not a SEPA payment
    assert xpath(body, "//p:ChrgBr/text()") == ["SHAR"]


def test_pain001_without_remittance_information_omits_rmtinf(new_order: OrderFactory) -> None:
    body = build(new_order(remittance=None))

    assert xpath(body, "//p:RmtInf") == []


def test_pain001_cleans_names_it_cannot_carry(new_order: OrderFactory) -> None:
    body = build(new_order(creditor_name="Nordic\x07 Parts " + "x" * 200))

    (name,) = xpath(body, "//p:Cdtr/p:Nm/text()")
    assert len(name) == 140
    assert "\x07" not in name


def test_pain001_refuses_reference_longer_than_the_schema_allows(new_order: OrderFactory) -> None:
    with pytest.raises(ContractError) as caught:
        build(new_order(reference="R" * 36))

    pointers = [e.pointer for e in caught.value.errors]
    assert any(p.endswith("/PmtId/EndToEndId") for p in pointers), pointers


def test_read_pain001_returns_what_was_built(new_order: OrderFactory) -> None:
    order = new_order(amount="0.01")
    message = read_pain001(build(order))

    (tx,) = message.transactions
    assert message.message_id == order.id
    assert tx.key == order.id
    assert tx.end_to_end_id == order.reference
    assert tx.amount == Decimal("0.01")
    assert tx.currency == "EUR"
    assert tx.creditor_iban == order.creditor.account.iban
    assert order.creditor.account.iban not in repr(tx)


def test_real_pain001_v03_sample_is_not_accepted_as_v09(partner_files) -> None:
    sample = (partner_files / "pain001" / "pain.001.001.03.xml").read_bytes()

    with pytest.raises(ContractError) as caught:
        read_pain001(sample)

    assert caught.value.errors[0].pointer.startswith("/Document")
    assert "pain.001.001.03" in caught.value.errors[0].message
    assert "pain.001.001.09" in caught.value.message
