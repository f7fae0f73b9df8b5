"""Parsing an instruction: the fast path (nothing wrong) and the full report (every failing field) agree."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.contracts.registry import contracts
from gateway.contracts.versions import upcast
from gateway.domain.errors import DomainError
from gateway.domain.instruction import parse_instruction
from gateway.store.codec import InstructionCodec
from tests.support import NOW, TEST_CODEC, example_instruction


def _latest(**changes: Any) -> dict[str, Any]:
    return upcast(contracts(), "instruction", "1.0", example_instruction(**changes))


def _errors(doc: dict[str, Any], **kwargs: Any) -> list[tuple[str, str]]:
    with pytest.raises(DomainError) as caught:
        parse_instruction(doc, **kwargs)
    return [(e.pointer, e.message) for e in caught.value.errors]


def test_plain_text_parses_to_the_same_instruction() -> None:
    doc = _latest(
        ultimate_debtor={"name": "HE Benelux BV", "identification": {"lei": "529900T8BM49AURSDO55"}}, purpose="SUPP"
    )
    assert parse_instruction(doc, plain_text=True) == parse_instruction(doc)


BAD: list[tuple[str, dict[str, Any], list[str]]] = [
    (
        "amount and IBAN",
        {"amount": "12.345", "debtor_iban": "DE00370400440532013000"},
        ["/amount", "/debtor/account/iban"],
    ),
    ("currency", {"currency": "XAU"}, ["/currency"]),
    (
        "BIC and LEI",
        {"debtor_bic": "COBAZZFF", "lei": "529900T8BM49AURSDO56"},
        ["/debtor/agent/bic", "/ultimate_creditor/identification/lei"],
    ),
    ("zero amount", {"amount": "0.00"}, ["/amount"]),
]


@pytest.mark.parametrize(("case", "change", "pointers"), BAD, ids=[c for c, _, _ in BAD])
def test_every_failing_field_is_reported_whichever_path(case: str, change: dict[str, Any], pointers: list[str]) -> None:
    doc = _latest()
    doc["amount"] = change.get("amount", doc["amount"])
    doc["currency"] = change.get("currency", doc["currency"])
    if "debtor_iban" in change:
        doc["debtor"]["account"]["iban"] = change["debtor_iban"]
    if "debtor_bic" in change:
        doc["debtor"]["agent"]["bic"] = change["debtor_bic"]
    if "lei" in change:
        doc["ultimate_creditor"] = {"name": "X", "identification": {"lei": change["lei"]}}
    found = _errors(doc)
    assert [pointer for pointer, _ in found] == pointers, case
    assert _errors(doc, plain_text=True) == found


def test_control_characters_are_found_unless_the_caller_vouches_for_the_text() -> None:
    doc = _latest()
    doc["debtor"]["name"] = "HE Appliances\nEurope"
    doc["amount"] = "12.345"
    assert [pointer for pointer, _ in _errors(doc)] == ["/debtor/name", "/amount"]


def test_rows_made_together_are_the_rows_made_one_by_one() -> None:
    data = [parse_instruction(_latest()) for _ in range(3)]
    ids = [f"ins_{i}" for i in range(3)]
    together = TEST_CODEC.new_rows(list(zip(ids, data, strict=True)), "bu_1", "1.1", NOW, "key_1")
    for instruction_id, one, row in zip(ids, data, together, strict=True):
        alone = TEST_CODEC.new_row(instruction_id, "bu_1", one, "1.1", NOW, submitted_by="key_1")
        assert list(row) == list(alone)  # same columns, same order
        accounts = ("debtor_account", "creditor_account")  # fresh nonces: different tokens, same plaintext
        assert all(row[c] != alone[c] for c in accounts)
        assert {k: v for k, v in row.items() if k not in accounts} == {
            k: v for k, v in alone.items() if k not in accounts
        }
    order = TEST_CODEC.payment_order({**together[0], "metadata": {}}, "bu_1")
    assert order.debtor.account == data[0].debtor.account and order.creditor.account == data[0].creditor.account
    assert isinstance(TEST_CODEC, InstructionCodec)


def test_given_parties_are_taken_on_the_fast_path_and_in_the_full_report() -> None:
    known = parse_instruction(_latest())
    parties = (known.debtor, known.creditor)
    doc = _latest()
    # the given parties are used as they are, whichever path parses the rest
    for kwargs in ({}, {"plain_text": True}):
        data = parse_instruction(doc, parties, **kwargs)
        assert data == parse_instruction(doc)
        assert data.debtor is known.debtor and data.creditor is known.creditor
    # the parties' fields are not parsed again: only the rest of the document is judged
    doc["debtor"]["account"]["iban"] = "DE00370400440532013000"
    doc["creditor"]["name"] = "line\nbreak"
    assert parse_instruction(doc, parties).debtor is known.debtor
    # a failing field elsewhere takes the full report, which still takes the given parties
    doc["amount"] = "12.345"
    doc["remittance_information"] = {"unstructured": "Invoice\t1"}
    assert [pointer for pointer, _ in _errors(doc)] == [
        "/creditor/name",
        "/remittance_information/unstructured",
        "/amount",
        "/debtor/account/iban",
    ]
    found = _errors(doc, parties=parties)
    assert [pointer for pointer, _ in found] == ["/remittance_information/unstructured", "/amount"]
    assert _errors(doc, parties=parties, plain_text=True) == found
