"""Masking and cutting of partner messages (gateway.partners.capture): known-good and known-bad values as data."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from gateway.partners.capture import DROPPED, MessageLog, about, capturing, mask_body, record_exchange

AT = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)

#: (body, media type, what must not be in the masked text, what must be)
MASKED = [
    (b"<IBAN>DE89370400440532013000</IBAN>", "application/xml", "DE89370400440532013000", "******************3000"),
    (
        b"<CdtrAcct><Id><Othr><Id>123456789012</Id></Othr></Id></CdtrAcct>",
        "application/xml",
        "123456789012",
        "********9012",
    ),
    (b'{"destination": {"wallet": "wal_nordic_parts_01"}}', "application/json", "wal_nordic_parts_01", "_01"),
    (b'{"account": {"number": "000123456789"}}', "application/json", "000123456789", "********6789"),
    (b'{"card": "4111111111111111"}', "application/json", "4111111111111111", "************1111"),
    (b"paid with 4111111111111111 today", "text/plain", "4111111111111111", "************1111"),
    (b'{"signature": "t=1,v1=abcdef", "api_key": "sk_live_x"}', "application/json", "abcdef", DROPPED),
    (b'{"webhook_secret": "whsec_abc"}', None, "whsec_abc", DROPPED),
]

#: values that look like account numbers but fail their checksum: shown as they are (references, amounts)
KEPT = [
    (b"<MsgId>GW20261206120000000001</MsgId>", "application/xml", "GW20261206120000000001"),
    (b"<InstrId>ins_01J0000000000000000000001</InstrId>", "application/xml", "ins_01J0000000000000000000001"),
    (b'{"amount": 1234567890123}', "application/json", "1234567890123"),
    # a gateway id holding a run that passes the IBAN checksum ("QG43BJ9XZNKA1JPVSD7G4"): about 1 id in 100 does
    (b"<EndToEndId>ins_01M96QG43BJ9XZNKA1JPVSD7G4</EndToEndId>", "application/xml", "ins_01M96QG43BJ9XZNKA1JPVSD7G4"),
    (b'{"instruction_id": "ins_01M96QG43BJ9XZNKA1JPVSD7G4"}', "application/json", "ins_01M96QG43BJ9XZNKA1JPVSD7G4"),
]


@pytest.mark.parametrize(("body", "media_type", "hidden", "shown"), MASKED)
def test_account_numbers_are_masked_and_secrets_dropped(
    body: bytes, media_type: str | None, hidden: str, shown: str
) -> None:
    text = mask_body(body, media_type)
    assert hidden not in text
    assert shown in text


@pytest.mark.parametrize(("body", "media_type", "kept"), KEPT)
def test_values_that_are_no_account_number_are_kept(body: bytes, media_type: str, kept: str) -> None:
    assert kept in mask_body(body, media_type)


def test_an_iban_beside_a_gateway_id_is_still_masked() -> None:
    text = mask_body(b"<Ustrd>ins_01M96QG43BJ9XZNKA1JPVSD7G4 DE89370400440532013000</Ustrd>", "application/xml")
    assert "ins_01M96QG43BJ9XZNKA1JPVSD7G4" in text
    assert "DE89370400440532013000" not in text and "******************3000" in text


def test_a_nacha_entry_shows_only_the_last_four_of_its_dfi_account() -> None:
    header = "101 091000019 0910000191612061200A094101GATEWAY BANK           HE APPLIANCES          ".ljust(94)
    entry = "622091000019" + "98765432101234567" + "0000012500" + "INV-1".ljust(15) + "NORDIC PARTS".ljust(22)
    entry = (entry + "  0" + "091000010000001").ljust(94)
    assert len(entry) == 94
    text = mask_body(f"{header}\n{entry}\n".encode(), "text/plain")
    assert "98765432101234567" not in text
    lines = text.split("\n")
    assert lines[1][12:29] == "*************4567" and len(lines[1]) == 94
    assert lines[1][:12] == entry[:12] and lines[1][29:] == entry[29:]


def test_known_account_identifiers_are_masked_wherever_they_appear() -> None:
    secrets = [f"ACCT{n:08d}" for n in range(20)]  # a bulk message: one pass over the body
    body = " ".join(f"to {s};" for s in secrets).encode()
    text = mask_body(body, "text/plain", secrets)
    assert not any(s in text for s in secrets)
    assert text.count("********") == 20


def test_a_long_body_is_cut_after_masking_and_flagged() -> None:
    iban = "DE89370400440532013000"
    log = MessageLog("submit", max_bytes=40)
    body = ("x" * 30 + iban + "y" * 100).encode()
    message = log.message("out", "bank", "POST", "https://bank.example/pain001?token=s3cret", None, {}, body, (), AT)
    assert message.truncated and message.size == len(body)
    assert len(message.body.encode()) == 40 and "DE89" not in message.body and "3704" not in message.body
    assert message.path == "/pain001"  # never the query or the host


def test_nothing_is_recorded_outside_a_log_and_requests_are_tied_to_their_payments() -> None:
    record_exchange("POST", "http://bank/pain001", {}, b"<x/>", 202, {}, b"<y/>", AT)  # no log: nothing happens
    log = MessageLog("submit")
    with capturing(log), about("iso20022_bank", ["ins_a", "ins_b"]):
        record_exchange(
            "POST",
            "http://bank/pain001",
            {"Authorization": "Bearer sk_live_secret", "Content-Type": "application/xml; charset=utf-8"},
            b"<x/>",
            202,
            {"Content-Type": "application/json"},
            json.dumps({"token": "t0k"}).encode(),
            AT,
        )
    sent, answer = log.take()
    assert (sent.direction, sent.status_code, sent.media_type) == ("out", None, "application/xml")
    assert (answer.direction, answer.status_code, json.loads(answer.body)) == ("in", 202, {"token": DROPPED})
    assert sent.instruction_ids == answer.instruction_ids == ("ins_a", "ins_b")
    assert sent.id != answer.id and sent.id.startswith("pmsg_")
    assert "sk_live_secret" not in repr(sent) and log.take() == []
