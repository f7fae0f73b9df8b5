"""gateway_client against a live gateway on a loopback port (the real app, SQLite and PostgreSQL).

The client is synchronous (requests): it runs in a worker thread while the gateway serves on
the test's event loop.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.store.webhooks import event_id
from gateway_client import AuthError, ConflictError, GatewayClient, NotFoundError, ValidationError, verify
from tests.support import Database, example_instruction, stop_gateway
from tests.webhooks.support import Receiver, start

QUIET = {"dispatch": False, "poll": False, "simulators": False, "partners": {}}


def _until(check: Any, timeout: float = 15) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)


def instructions_lifecycle(url: str, key: str) -> dict[str, Any]:
    with GatewayClient(url, key) as client:
        body = example_instruction()
        first = client.submit_instruction(body, idempotency_key="live-1")
        replay = client.submit_instruction(body, idempotency_key="live-1")
        with pytest.raises(ConflictError) as reused:
            client.submit_instruction(example_instruction(), idempotency_key="live-1")
        with pytest.raises(ValidationError) as invalid:
            client.submit_instruction({**example_instruction(), "currency": "EURO"})
        others = [client.submit_instruction(example_instruction())["id"] for _ in range(2)]
        view = client.get_instruction(first["id"])
        listed = [i["id"] for i in client.list_instructions(page_size=1)]
        by_reference = list(client.list_instructions(reference=body["reference"]))
        events = list(client.list_instruction_events(first["id"], page_size=1))
        cancelled = client.cancel_instruction(others[0])
        with pytest.raises(ConflictError) as twice:
            client.cancel_instruction(others[0])
        with pytest.raises(NotFoundError):
            client.get_instruction("ins_" + "0" * 26)
    with GatewayClient(url, "gk_unknown_key_for_tests") as stranger, pytest.raises(AuthError) as refused:
        stranger.get_instruction(first["id"])
    return {
        "first": first,
        "replay": replay,
        "reused": reused.value,
        "invalid": invalid.value,
        "others": others,
        "view": view,
        "listed": listed,
        "by_reference": by_reference,
        "events": events,
        "cancelled": cancelled,
        "twice": twice.value,
        "refused": refused.value,
    }


async def test_submit_get_list_cancel_against_a_live_gateway(database: Database) -> None:
    gw = await start(database, **QUIET)
    try:
        got = await asyncio.to_thread(instructions_lifecycle, gw.url, gw.key)
    finally:
        await stop_gateway(gw)
    first = got["first"]
    assert first["status"] == "received" and first["id"].startswith("ins_")
    assert got["replay"]["id"] == first["id"]
    assert got["reused"].status == 409 and got["reused"].slug == "idempotency-conflict"
    assert got["invalid"].status == 422 and got["invalid"].pointer == "/currency"
    assert got["view"]["id"] == first["id"] and got["view"]["events"][0]["status"] == "received"
    assert got["listed"] == [*reversed(got["others"]), first["id"]]  # newest first, one page at a time
    assert [i["id"] for i in got["by_reference"]] == [first["id"]]
    assert [e["sequence"] for e in got["events"]] == list(range(1, len(got["events"]) + 1))
    assert got["cancelled"]["status"] == "cancelled"
    assert got["twice"].status == 409
    assert got["refused"].status == 401


def webhooks_lifecycle(url: str, key: str, receiver_url: str, received: list[Any]) -> dict[str, Any]:
    with GatewayClient(url, key) as client:
        created = client.create_webhook_endpoint(receiver_url)
        endpoint_id = created["id"]
        instruction_id = client.submit_instruction(example_instruction())["id"]
        _until(lambda: received)
        delivered = _until(lambda: list(client.list_webhook_deliveries(status="delivered", endpoint_id=endpoint_id)))
        again = client.redeliver(delivered[0]["id"])
        _until(lambda: len(received) >= 2)
        listed = list(client.list_webhook_endpoints(page_size=1))
        one = client.get_webhook_endpoint(endpoint_id)
        changed = client.update_webhook_endpoint(endpoint_id, events=["settled", "rejected"], enabled=False)
        rotated = client.rotate_webhook_secret(endpoint_id, overlap_seconds=60)
        second = client.create_webhook_endpoint(receiver_url + "?second", events=["*"])
        both = [e["id"] for e in client.list_webhook_endpoints(page_size=1)]
        with pytest.raises(ValidationError) as bad_url:
            client.create_webhook_endpoint("ftp://erp.example/hooks")
        client.delete_webhook_endpoint(endpoint_id)
        with pytest.raises(NotFoundError) as gone:
            client.get_webhook_endpoint(endpoint_id)
    return {
        "created": created,
        "instruction_id": instruction_id,
        "delivered": delivered,
        "again": again,
        "listed": listed,
        "one": one,
        "changed": changed,
        "rotated": rotated,
        "second": second,
        "both": both,
        "bad_url": bad_url.value,
        "gone": gone.value,
    }


async def test_webhook_endpoints_and_deliveries_against_a_live_gateway(database: Database, receiver: Receiver) -> None:
    gw = await start(database, **QUIET)
    try:
        got = await asyncio.to_thread(webhooks_lifecycle, gw.url, gw.key, receiver.url, receiver.received)
    finally:
        await stop_gateway(gw)
    created, secret = got["created"], got["created"]["secret"]
    assert created["id"].startswith("whe_") and secret.startswith("whsec_")
    first_event = event_id(got["instruction_id"], 1)
    assert [d["event_id"] for d in got["delivered"]] == [first_event]
    assert got["again"]["status"] == "pending"
    # the redelivery is the same event, the same body, signed with the endpoint's secret
    assert [r.event_id for r in receiver.received[:2]] == [first_event, first_event]
    assert receiver.received[0].body == receiver.received[1].body
    for r in receiver.received[:2]:
        verify(r.headers, r.body, secret)
    assert [e["id"] for e in got["listed"]] == [created["id"]] and "secret" not in got["one"]
    assert got["changed"]["events"] == ["settled", "rejected"] and got["changed"]["enabled"] is False
    assert got["rotated"]["secret"] not in (secret, None) and got["rotated"]["previous_secret_valid_until"]
    assert got["both"] == [got["second"]["id"], created["id"]]
    assert got["bad_url"].status == 422 and got["bad_url"].pointer == "/url"
    assert got["gone"].status == 404


def holds_lifecycle(url: str, submitter: str, finance: str, held: list[str]) -> dict[str, Any]:
    with GatewayClient(url, finance) as client, GatewayClient(url, submitter) as own:
        pending = list(client.list_holds(state="pending", page_size=1))
        one = client.get_hold(held[0])
        with pytest.raises(AuthError) as not_finance:
            own.approve_hold(held[0], "my own payment")
        with pytest.raises(ValidationError) as no_comment:
            client.approve_hold(held[0], "")
        approved = client.approve_hold(held[0], "known supplier")
        rejected = client.reject_hold(held[1], "no contract on file")
        with pytest.raises(ConflictError) as twice:
            client.reject_hold(held[0], "changed my mind")
        decided = list(client.list_holds(state="decided"))
    return {
        "pending": pending,
        "one": one,
        "not_finance": not_finance.value,
        "no_comment": no_comment.value,
        "approved": approved,
        "rejected": rejected,
        "twice": twice.value,
        "decided": decided,
    }


async def test_holds_are_listed_and_decided_by_finance_against_a_live_gateway(
    database: Database, tmp_path: Path
) -> None:
    risk = tmp_path / "risk.yaml"
    rules = {"timezone": "UTC", "hold_expiry": "1h", "rules": {"new_beneficiary": {"large_amount": "5000"}}}
    risk.write_text(yaml.safe_dump({"defaults": rules}))
    gw = await start(database, risk__file=str(risk))
    try:
        finance = await gw.new_key("group-finance", ("finance",))
        held = []
        for _ in range(2):
            resp = await gw.post_instruction(example_instruction(amount="9000.00"))
            held.append((await resp.json())["id"])
        for instruction_id in held:
            await gw.wait_for(instruction_id, lambda view: view["status"] == "held")
        got = await asyncio.to_thread(holds_lifecycle, gw.url, gw.key, finance, held)
        settled = await gw.wait_for(held[0])
        refused = await gw.wait_for(held[1])
    finally:
        await stop_gateway(gw)
    assert sorted(h["instruction_id"] for h in got["pending"]) == sorted(held)  # two pages of one
    assert got["one"]["instruction_id"] == held[0] and got["one"]["decision"] is None
    assert got["not_finance"].status == 403
    assert got["no_comment"].status == 422 and got["no_comment"].pointer == "/comment"
    assert got["approved"]["decision"] == "approved" and got["rejected"]["decision"] == "rejected"
    assert got["twice"].status == 409
    assert sorted(h["instruction_id"] for h in got["decided"]) == sorted(held)
    assert settled["status"] == "settled" and refused["status"] == "rejected"
