"""gateway_client.verify against signatures made by the gateway's own signer (gateway.webhooks.worker)."""

from __future__ import annotations

import json

import pytest

from gateway.webhooks.worker import SIGNATURE_HEADER, signature_header
from gateway_client import SignatureVerificationError, parse_event, verify

BODY = json.dumps({"instruction_id": "ins_01JD0000000000000000000000", "sequence": 3, "status": "routed"}).encode()
NEW = "whsec_new_secret_for_tests_only"
OLD = "whsec_old_secret_for_tests_only"
T = 1_796_212_800


def headers(*secrets: str, body: bytes = BODY, at: int = T) -> dict[str, str]:
    return {SIGNATURE_HEADER: signature_header(tuple(s.encode() for s in secrets), body, at)}


def test_a_body_signed_by_the_gateway_verifies_and_gives_its_timestamp() -> None:
    assert verify(headers(NEW), BODY, NEW, now=T) == T
    assert verify(headers(NEW), BODY, NEW.encode(), now=T + 300) == T  # the 5-minute tolerance, both ways
    assert verify(headers(NEW), BODY, NEW, now=T - 300) == T


def test_during_a_rotation_either_secret_verifies_and_several_secrets_may_be_given() -> None:
    both = headers(NEW, OLD)
    assert both[SIGNATURE_HEADER].count("v1=") == 2
    assert verify(both, BODY, NEW, now=T) == T
    assert verify(both, BODY, OLD, now=T) == T
    assert verify(headers(OLD), BODY, [NEW, OLD], now=T) == T  # the receiver already holds the new secret


def test_header_names_are_matched_case_insensitively() -> None:
    lower = {k.lower(): v for k, v in headers(NEW).items()}
    assert verify(lower, BODY, NEW, now=T) == T


@pytest.mark.parametrize(
    ("given", "body", "secrets", "now", "message"),
    [
        (headers(NEW), BODY + b" ", NEW, T, "does not match"),
        (headers(NEW), BODY, OLD, T, "does not match"),
        (headers(NEW), BODY, [OLD, "whsec_other"], T, "does not match"),
        (headers(NEW), BODY, NEW, T + 301, "outside the tolerance"),
        (headers(NEW), BODY, NEW, T - 301, "outside the tolerance"),
        ({}, BODY, NEW, T, "header is missing"),
        ({SIGNATURE_HEADER: ""}, BODY, NEW, T, "header is missing"),
        ({SIGNATURE_HEADER: "v1=" + "0" * 64}, BODY, NEW, T, "no valid timestamp"),
        ({SIGNATURE_HEADER: f"t={T},t={T},v1=" + "0" * 64}, BODY, NEW, T, "no valid timestamp"),
        ({SIGNATURE_HEADER: f"t=soon,v1={'0' * 64}"}, BODY, NEW, T, "no valid timestamp"),
        ({SIGNATURE_HEADER: f"t={T}"}, BODY, NEW, T, "no well-formed v1"),
        ({SIGNATURE_HEADER: f"t={T},v1=abc"}, BODY, NEW, T, "no well-formed v1"),
        ({SIGNATURE_HEADER: f"t={T},garbage"}, BODY, NEW, T, "malformed"),
        ({SIGNATURE_HEADER: f"t={T},v1=" + "0" * 2000}, BODY, NEW, T, "malformed"),
        ({SIGNATURE_HEADER: f"t={T},v1=é"}, BODY, NEW, T, "malformed"),
    ],
)
def test_anything_else_is_refused_with_a_typed_error(given: dict, body: bytes, secrets, now: int, message: str) -> None:
    with pytest.raises(SignatureVerificationError, match=message) as caught:
        verify(given, body, secrets, now=now)
    for secret in (NEW, OLD):
        assert secret not in str(caught.value)


def test_an_unknown_scheme_beside_v1_is_ignored() -> None:
    header = headers(NEW)[SIGNATURE_HEADER] + ",v0=legacy"
    assert verify({SIGNATURE_HEADER: header}, BODY, NEW, now=T) == T


def test_no_secret_is_a_programming_error_not_a_refusal() -> None:
    with pytest.raises(ValueError, match="at least one"):
        verify(headers(NEW), BODY, [], now=T)
    with pytest.raises(ValueError, match="at least one"):
        verify(headers(NEW), BODY, "", now=T)


def test_parse_event_verifies_first_then_reads_the_json() -> None:
    assert parse_event(headers(NEW), BODY, NEW, now=T)["sequence"] == 3
    with pytest.raises(SignatureVerificationError, match="does not match"):
        parse_event(headers(NEW), b"{}", NEW, now=T)
    with pytest.raises(SignatureVerificationError, match="not JSON"):
        parse_event(headers(NEW, body=b"not json"), b"not json", NEW, now=T)
    with pytest.raises(SignatureVerificationError, match="not a JSON object"):
        parse_event(headers(NEW, body=b"[1]"), b"[1]", NEW, now=T)
