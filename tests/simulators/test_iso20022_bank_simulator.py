"""The ISO 20022 bank simulator over HTTP: contract checks, idempotency, callbacks, admin."""

from __future__ import annotations

import json
import socket
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from gateway.errors import ConfigError
from gateway.partners.signing import sign_payload, verify_signature
from gateway_adapters.iso20022_bank.pain002 import parse_pain002
from gateway_simulators.core import CoreSettings, Decision, Simulator
from gateway_simulators.core.scenario import legacy_rules
from gateway_simulators.iso20022_bank import BANK, Iso20022Bank, create_app, signed_status_report
from tests.support import load_bench

CALLBACK_SECRET = b"bank-callback-secret"
BankClient = Callable[..., Awaitable[TestClient]]
Pain001 = Callable[..., bytes]
Sign = Callable[..., dict[str, str]]
Receiver = Callable[..., Awaitable[Any]]


async def answer(resp: Any) -> bytes:
    """The response body, after checking the bank signed it."""
    body: bytes = await resp.read()
    verify_signature(CALLBACK_SECRET, body, resp.headers.get("X-Signature"))
    return body


# -- contract checks ------------------------------------------------------------------


async def test_xsd_invalid_body_gets_400_ff01_naming_the_failure(
    bank_client: BankClient, pain001: Pain001, sign: Sign
) -> None:
    client = await bank_client()
    body = pain001().replace(b"<EndToEndId>INV-7</EndToEndId>", b"<EndToEndId>" + b"E" * 36 + b"</EndToEndId>")

    resp = await client.post("/pain001", data=body, headers=sign(body))
    report = parse_pain002(await answer(resp))

    assert resp.status == 400
    assert report.group_status == "RJCT"
    assert report.group_reason_code == "FF01"
    assert report.group_reason is not None and "EndToEndId" in report.group_reason
    assert report.original_message_id == "ins_sim_0001"
    assert client.app[BANK].payments == {}


async def test_other_pain001_version_gets_400_ff01(bank_client: BankClient, sign: Sign, partner_files: Any) -> None:
    client = await bank_client()
    body = (partner_files / "pain001" / "pain.001.001.03.xml").read_bytes()

    resp = await client.post("/pain001", data=body, headers=sign(body))
    report = parse_pain002(await answer(resp))

    assert resp.status == 400
    assert report.group_reason_code == "FF01"
    assert "pain.001.001.03" in (report.group_reason or "")
    assert report.original_message_id == "Message-ID-4711"


@pytest.mark.parametrize("body", [b"<not xml", b"<!DOCTYPE d [<!ENTITY x 'y'>]><d>&x;</d>"], ids=["broken", "dtd"])
async def test_unparseable_body_gets_400_ff01(bank_client: BankClient, sign: Sign, body: bytes) -> None:
    client = await bank_client()

    resp = await client.post("/pain001", data=body, headers=sign(body))
    report = parse_pain002(await answer(resp))

    assert resp.status == 400
    assert report.group_reason_code == "FF01"
    assert report.original_message_id == "NOTPROVIDED"


async def test_bad_request_signature_gets_401_in_bank_json(bank_client: BankClient, pain001: Pain001) -> None:
    client = await bank_client()
    body = pain001()
    forged = {"Idempotency-Key": "k", "X-Signature": sign_payload(b"guess", body)}

    resp = await client.post("/pain001", data=body, headers=forged)
    error = json.loads(await answer(resp))["error"]

    assert resp.status == 401
    assert error["code"] == "SIGNATURE_INVALID"
    assert error["message"]
    assert client.app[BANK].payments == {}


async def test_missing_idempotency_key_gets_400(bank_client: BankClient, pain001: Pain001, sign: Sign) -> None:
    client = await bank_client()
    body = pain001()

    resp = await client.post("/pain001", data=body, headers=sign(body, key=None))

    assert resp.status == 400
    assert json.loads(await answer(resp))["error"]["code"] == "IDEMPOTENCY_KEY_MISSING"


async def test_unavailable_bank_answers_503_with_retry_after(
    bank_client: BankClient, pain001: Pain001, sign: Sign
) -> None:
    client = await bank_client(unavailable_for=2, retry_after=3)
    body = pain001()

    statuses = [(await client.post("/pain001", data=body, headers=sign(body))).status for _ in range(3)]
    resp = await client.post("/pain001", data=body, headers=sign(body))

    assert statuses == [503, 503, 202]
    assert resp.status == 202  # the replay of the accepted submission
    assert len(client.app[BANK].payments) == 1


# -- idempotency --------------------------------------------------------------------


async def test_same_key_and_payment_replays_the_first_answer(
    bank_client: BankClient, pain001: Pain001, sign: Sign
) -> None:
    client = await bank_client()
    first_body = pain001()
    rebuilt = pain001(created_at=datetime(2024, 5, 6, 11, 0, tzinfo=UTC))  # a retry, later

    first = await client.post("/pain001", data=first_body, headers=sign(first_body))
    first_report = parse_pain002(await answer(first))
    again = await client.post("/pain001", data=rebuilt, headers=sign(rebuilt))
    again_report = parse_pain002(await answer(again))

    assert first.status == again.status == 202
    assert again_report.transactions == first_report.transactions
    (payment,) = client.app[BANK].describe()
    assert payment["submissions"] == 2
    assert payment["instruction_id"] == "ins_sim_0001"


async def test_same_key_with_other_payment_gets_409(bank_client: BankClient, pain001: Pain001, sign: Sign) -> None:
    client = await bank_client()
    body = pain001()
    other = pain001(amount="999.99")

    await client.post("/pain001", data=body, headers=sign(body))
    resp = await client.post("/pain001", data=other, headers=sign(other))

    assert resp.status == 409
    assert json.loads(await answer(resp))["error"]["code"] == "IDEMPOTENCY_CONFLICT"
    (payment,) = client.app[BANK].describe()
    assert payment["amount"] == "250.00"
    assert payment["submissions"] == 1


async def test_same_instruction_under_another_key_gets_409(
    bank_client: BankClient, pain001: Pain001, sign: Sign
) -> None:
    client = await bank_client()
    body = pain001()

    await client.post("/pain001", data=body, headers=sign(body, key="first-key"))
    resp = await client.post("/pain001", data=body, headers=sign(body, key="second-key"))

    assert resp.status == 409
    assert json.loads(await answer(resp))["error"]["code"] == "DUPLICATE_INSTRUCTION"
    assert len(client.app[BANK].payments) == 1


async def test_journal_names_every_payment_of_a_bulk_message_and_those_already_held(
    bank_client: BankClient, pain001_many: Pain001, sign: Sign
) -> None:
    client = await bank_client()
    first, second = (
        pain001_many("ins_bulk_01", "ins_bulk_02", "ins_bulk_03"),
        pain001_many("ins_bulk_03", "ins_bulk_04"),
    )
    assert (await client.post("/pain001", data=first, headers=sign(first, key="msg-1"))).status == 202
    assert (await client.post("/pain001", data=first, headers=sign(first, key="msg-1"))).status == 202  # a retry
    assert (await client.post("/pain001", data=second, headers=sign(second, key="msg-2"))).status == 202

    entries = (await (await client.get("/_sim/journal", params={"kind": "submit"})).json())["entries"]
    assert [(e["outcome"], e["instruction_id"], e["instruction_ids"], e["held_instruction_ids"]) for e in entries] == [
        ("created", "ins_bulk_01", ["ins_bulk_01", "ins_bulk_02", "ins_bulk_03"], []),
        ("replayed", "ins_bulk_01", ["ins_bulk_01", "ins_bulk_02", "ins_bulk_03"], []),
        ("created", "ins_bulk_03", ["ins_bulk_03", "ins_bulk_04"], ["ins_bulk_03"]),  # sent twice: not taken again
    ]
    # the instruction_id filter finds a payment anywhere in a message, not only the first
    only_2 = await (
        await client.get("/_sim/journal", params={"kind": "submit", "instruction_id": "ins_bulk_02"})
    ).json()
    assert [e["seq"] for e in only_2["entries"]] == [entries[0]["seq"], entries[1]["seq"]]
    assert len(client.app[BANK].payments) == 4
    # what bench/e2e.py counts: a retry on its own key is the same dispatch, a payment sent again is not
    checked = load_bench("e2e").double_dispatches(entries)
    assert checked == {"sent": 4, "double_dispatches": 1, "examples": ["ins_bulk_03"]}


async def test_journal_of_one_payment_names_it_alone(bank_client: BankClient, pain001: Pain001, sign: Sign) -> None:
    client = await bank_client()
    body = pain001()

    await client.post("/pain001", data=body, headers=sign(body, key="first-key"))
    await client.post("/pain001", data=body, headers=sign(body, key="second-key"))  # refused: already held

    (created, refused) = client.app[BANK].journal.select({"kind": "submit", "instruction_id": "ins_sim_0001"})
    assert (created.outcome, created.instruction_ids, created.held_instruction_ids) == ("created", ["ins_sim_0001"], [])
    assert (refused.outcome, refused.http_status, refused.held_instruction_ids) == ("refused", 409, ["ins_sim_0001"])


# -- status and callbacks -------------------------------------------------------------


async def test_status_endpoint_requires_a_signed_request(bank_client: BankClient) -> None:
    client = await bank_client()

    unsigned = await client.get("/payments/ins_x/status")
    unknown = await client.get(
        "/payments/ins_x/status", headers={"X-Signature": sign_payload(b"bank-request-secret", b"")}
    )

    assert unsigned.status == 401
    assert unknown.status == 404
    assert json.loads(await answer(unknown))["error"]["code"] == "NOT_FOUND"


async def test_callbacks_follow_the_timeline_and_status_agrees(
    bank_client: BankClient, pain001: Pain001, sign: Sign, receiver: Receiver
) -> None:
    server, received = await receiver()
    client = await bank_client()
    body = pain001()

    await client.post("/pain001", data=body, headers=sign(body, callback_url=str(server.make_url("/callbacks"))))
    await client.app[BANK].idle()
    status = await client.get(
        "/payments/ins_sim_0001/status", headers={"X-Signature": sign_payload(b"bank-request-secret", b"")}
    )

    assert [parse_pain002(b).transactions[0].status for b in received] == ["ACSP", "ACSC"]
    assert parse_pain002(await answer(status)).transactions[0].status == "ACSC"
    (payment,) = client.app[BANK].describe()
    assert payment["status"] == "settled"
    assert payment["history"] == ["RCVD", "ACTC", "ACSP", "ACSC"]
    assert payment["callbacks_sent"] == 2


async def test_callback_delivery_retries_server_errors(
    bank_client: BankClient, pain001: Pain001, sign: Sign, receiver: Receiver
) -> None:
    server, received = await receiver(503, 500)
    client = await bank_client()
    body = pain001()

    await client.post("/pain001", data=body, headers=sign(body, callback_url=str(server.make_url("/callbacks"))))
    await client.app[BANK].idle()

    (payment,) = client.app[BANK].describe()
    assert [c["attempts"] for c in payment["callbacks"]] == [3, 1]
    assert payment["callbacks_sent"] == 2
    assert len(received) == 2


async def test_callback_to_unreachable_receiver_gives_up_after_its_attempts(
    bank_client: BankClient, pain001: Pain001, sign: Sign
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))  # bound, never listening: connection refused
        nowhere = f"http://127.0.0.1:{sock.getsockname()[1]}/callbacks"
        client = await bank_client(callback_attempts=3, callback_backoff=0.001)
        body = pain001()

        await client.post("/pain001", data=body, headers=sign(body, callback_url=nowhere))
        await client.app[BANK].idle()

    (payment,) = client.app[BANK].describe()
    assert [(c["attempts"], c["delivered"]) for c in payment["callbacks"]] == [(3, False), (3, False)]
    assert payment["callbacks_sent"] == 0
    assert payment["status"] == "settled"  # the bank's state does not depend on the receiver


async def test_callback_refused_by_receiver_is_not_retried(
    bank_client: BankClient, pain001: Pain001, sign: Sign, receiver: Receiver
) -> None:
    server, received = await receiver(400)
    client = await bank_client()
    body = pain001()

    await client.post("/pain001", data=body, headers=sign(body, callback_url=str(server.make_url("/callbacks"))))
    await client.app[BANK].idle()

    (payment,) = client.app[BANK].describe()
    assert payment["callbacks"][0] == {"status": "ACSP", "attempts": 1, "delivered": False, "http_status": 400}
    assert payment["callbacks_sent"] == 1
    assert [parse_pain002(b).transactions[0].status for b in received] == ["ACSC"]


async def test_shutdown_cancels_pending_callbacks_cleanly(aiohttp_client: Any, pain001: Pain001, sign: Sign) -> None:
    app = create_app(
        {"request_secret": "bank-request-secret", "callback_secret": "bank-callback-secret", "callback_delay": 30}
    )
    client: TestClient = await aiohttp_client(app)
    body = pain001()
    await client.post("/pain001", data=body, headers=sign(body, callback_url="http://127.0.0.1:9/cb"))
    pending_before = app[BANK].pending_tasks

    await client.close()

    assert pending_before == 1
    assert app[BANK].pending_tasks == 0
    assert app[BANK].payments["ins_sim_0001"].iso_status == "ACTC"


async def test_reset_forgets_payments_and_stops_their_timeline(
    bank_client: BankClient, pain001: Pain001, sign: Sign
) -> None:
    client = await bank_client(callback_delay=30)
    body = pain001()
    await client.post("/pain001", data=body, headers=sign(body))

    resp = await client.post("/_sim/reset")
    listing = await client.get("/_sim/payments")

    assert resp.status == 200
    assert await listing.json() == []
    assert client.app[BANK].pending_tasks == 0


async def test_admin_listing_masks_ibans(bank_client: BankClient, pain001: Pain001, sign: Sign) -> None:
    client = await bank_client()
    body = pain001()
    await client.post("/pain001", data=body, headers=sign(body))

    text = await (await client.get("/_sim/payments")).text()
    (payment,) = json.loads(text)

    assert "FR1420041010050500013M02606" not in text
    assert "DE89370400440532013000" not in text
    assert payment["creditor_iban"].endswith("2606")
    assert payment["amount"] == "250.00"
    assert payment["end_to_end_id"] == "INV-7"
    assert payment["status"] in {"accepted", "settled"}


# -- rules, settings, helper ------------------------------------------------------------

RULES = legacy_rules(
    [
        {"match": {"reference": "^HOLD-"}, "outcome": "settle"},
        {"match": {"amount_min": "10000"}, "outcome": "reject", "reason_code": "AM02"},
        {"match": {"creditor_name": "(?i)sanctioned"}, "outcome": "reject", "reason_code": "RR04", "at": "submit"},
        {"match": {"currency": "EUR", "amount_max": "0.99"}, "outcome": "reject", "reason_code": "AM12"},
    ]
)


@pytest.mark.parametrize(
    ("order", "expected"),
    [
        ({}, ("settle", "callback", None)),
        ({"amount": "10000.00"}, ("reject", "callback", "AM02")),
        ({"amount": "10000.00", "reference": "HOLD-1"}, ("settle", "callback", None)),  # first match wins
        ({"creditor_name": "Sanctioned Ltd"}, ("reject", "submit", "RR04")),
        ({"amount": "0.50"}, ("reject", "callback", "AM12")),
        ({"creditor_name": "Nordic Parts REJECT-AC01"}, ("reject", "callback", "AC01")),
        ({"creditor_name": "Nordic Parts REJECTNOW-AC04"}, ("reject", "submit", "AC04")),
    ],
)
def test_first_matching_rule_decides(pain001: Pain001, order: dict[str, str], expected: tuple[Any, ...]) -> None:
    outcome = decide(pain001(**order), rules=RULES)

    assert (outcome.outcome, outcome.at, outcome.reason_code) == expected


def test_builtin_rules_can_be_switched_off(pain001: Pain001) -> None:
    body = pain001(creditor_name="Nordic Parts REJECT-AC01")

    assert decide(body, builtin=False).outcome == "settle"
    assert decide(body).outcome == "reject"


def decide(body: bytes, *, rules: Any = (), builtin: bool = True) -> Decision:
    """The simulator's decision for the one payment in ``body``."""
    partner = Iso20022Bank()
    (tx,) = partner.read_submission(body).transactions
    assert tx.amount > Decimal(0)
    settings = CoreSettings(b"r" * 8, b"c" * 8, rules=tuple(rules), builtin_rules=builtin)
    sim = Simulator(partner, settings)
    return sim.decide(sim.fields(tx))


@pytest.mark.parametrize(
    "settings",
    [
        {"callback_secret": "c"},
        {"request_secret": "r", "callback_secret": "c", "callback_delay": -1},
        {"request_secret": "r", "callback_secret": "c", "colour": "red"},
        {"request_secret": "r", "callback_secret": "c", "rules": [{"outcome": "reject"}]},
        {"request_secret": "r", "callback_secret": "c", "rules": [{"outcome": "maybe"}]},
        {
            "request_secret": "r",
            "callback_secret": "c",
            "rules": [{"match": {"creditor_name": "("}, "outcome": "settle"}],
        },
        {"request_secret": "r", "callback_secret": "c", "rules": [{"match": {"amount_min": 1.5}, "outcome": "settle"}]},
    ],
    ids=[
        "no-request-secret",
        "negative-delay",
        "unknown-key",
        "reject-without-code",
        "bad-outcome",
        "bad-regex",
        "float-amount",
    ],
)
def test_bad_settings_are_a_config_error(settings: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        create_app(settings)


def test_signed_status_report_is_signed_with_the_callback_secret() -> None:
    body, headers = signed_status_report(
        {"callback_secret": "bank-callback-secret"}, "ins_1", "INV-1", "RJCT", "AC01", account_servicer_reference="B1"
    )

    verify_signature(CALLBACK_SECRET, body, headers["X-Signature"])
    (tx,) = parse_pain002(body).transactions
    assert (tx.instruction_id, tx.end_to_end_id, tx.status, tx.reason_code) == ("ins_1", "INV-1", "RJCT", "AC01")
    assert tx.account_servicer_reference == "B1"
