"""Status webhooks end to end: a gateway, the bank simulator and a real receiver on loopback ports.

Runs on SQLite and (with GATEWAY_TEST_DATABASE_URL) PostgreSQL.
"""

from __future__ import annotations

import asyncio
import re
import socket
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest
from sqlalchemy import func, select

from gateway.contracts.registry import contracts
from gateway.errors import SignatureError
from gateway.partners.signing import verify_signature
from gateway.store.tables import webhook_deliveries
from gateway.webhooks.urls import is_public
from tests.support import REPO, Database, LiveGateway, stop_gateway
from tests.webhooks.support import Receiver, create_endpoint, deliveries, start, submit, wait_until


def docs_verify() -> Callable[..., bool]:
    """The ``verify`` function docs/webhooks.md gives business units, exactly as written there."""
    text = (REPO / "docs" / "webhooks.md").read_text(encoding="utf-8")
    found = re.search(r"```python\n(.*?)```", text, re.DOTALL)
    assert found, "docs/webhooks.md has no Python snippet"
    namespace: dict[str, Any] = {}
    exec(compile(found.group(1), "docs/webhooks.md", "exec"), namespace)
    return namespace["verify"]  # type: ignore[no-any-return]


async def test_every_status_change_is_delivered_signed_in_order_with_a_stable_event_id(
    database: Database, receiver: Receiver
) -> None:
    gw = await start(database)
    try:
        endpoint = await create_endpoint(gw, receiver.url)
        finals = await create_endpoint(gw, receiver.url.replace("/hooks", "/hooks?finals"), events=["settled"])
        instruction_id = await submit(gw)
        await gw.wait_for(instruction_id)
        got = await receiver.wait_for(6)
    finally:
        await stop_gateway(gw)
    secret = endpoint["secret"].encode()
    first = [r for r in got if r.path_qs == "/hooks"]
    second = [r for r in got if r.path_qs == "/hooks?finals"]
    for r in got:
        doc = r.doc
        contracts().validate("status-event", doc, "1.0")
        assert doc["instruction_id"] == instruction_id and doc["applied"] is True
        assert r.headers["Gateway-Contract"] == "status-event/1.0"
        assert r.event_id == f"evt_{instruction_id.removeprefix('ins_')}_{doc['sequence']}"
    # the first endpoint: every applied change once, in the instruction's order; the second: settled only
    assert [r.doc["status"] for r in first] == ["received", "accepted", "routed", "submitted", "settled"]
    sequences = [r.doc["sequence"] for r in first]
    assert sequences == sorted(sequences) and len({r.event_id for r in first}) == 5
    (settled,) = second
    assert settled.doc["status"] == "settled" and settled.event_id == first[-1].event_id
    assert settled.body == first[-1].body
    verify_signature(finals["secret"].encode(), settled.body, settled.headers["Gateway-Signature"])
    # the receiver's side as docs/webhooks.md shows it
    verify = docs_verify()
    header = first[0].headers["Gateway-Signature"]
    stamp = int(header.split(",")[0].removeprefix("t="))
    assert all(verify(endpoint["secret"], r.body, r.headers["Gateway-Signature"]) for r in first)
    assert not verify(finals["secret"], first[0].body, header)
    assert not verify(endpoint["secret"], first[0].body + b" ", header)
    assert verify(endpoint["secret"], first[0].body, header, now=stamp + 300)
    assert not verify(endpoint["secret"], first[0].body, header, now=stamp + 301)  # the 5-minute tolerance
    for r in first:
        assert verify_signature(secret, r.body, r.headers["Gateway-Signature"])  # within the 5-minute tolerance
    with pytest.raises(SignatureError):
        verify_signature(finals["secret"].encode(), first[0].body, first[0].headers["Gateway-Signature"])
    with pytest.raises(SignatureError):
        verify_signature(secret, first[0].body + b" ", first[0].headers["Gateway-Signature"])


async def test_a_receiver_error_is_retried_with_the_same_event_until_it_answers_2xx(
    database: Database, receiver: Receiver
) -> None:
    gw = await start(database, dispatch=False, poll=False, simulators=False, partners={})
    try:
        endpoint = await create_endpoint(gw, receiver.url)
        receiver.answers[:] = [500, 503]
        instruction_id = await submit(gw)
        got = await receiver.wait_for(3)
        items = await wait_until(lambda: _delivered(gw))
    finally:
        await stop_gateway(gw)
    assert {r.event_id for r in got} == {f"evt_{instruction_id.removeprefix('ins_')}_1"}
    assert len({r.body for r in got}) == 1
    for r in got:
        verify_signature(endpoint["secret"].encode(), r.body, r.headers["Gateway-Signature"])
    (item,) = items
    assert item["attempts"] == 3 and item["last_status_code"] == 200 and item["delivered_at"]


async def _delivered(gw: LiveGateway) -> list[dict[str, Any]]:
    return await deliveries(gw, status="delivered")


async def test_an_endpoint_failing_n_times_in_a_row_is_disabled_and_resumes_when_enabled(
    database: Database, receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    gw = await start(
        database, dispatch=False, poll=False, simulators=False, partners={}, webhooks__disable_after_failures=3
    )
    try:
        endpoint = await create_endpoint(gw, receiver.url)
        receiver.answers[:] = [500] * 3
        await submit(gw)
        await receiver.wait_for(3)

        async def disabled() -> dict[str, Any] | None:
            async with gw.session.get(f"{gw.url}/v1/webhook-endpoints/{endpoint['id']}", headers=gw.headers()) as resp:
                view = await resp.json()
            return None if view["enabled"] else view

        view = await wait_until(disabled)
        assert view["disabled_reason"] == "disabled after 3 failed deliveries in a row"
        assert view["consecutive_failures"] == 3
        await asyncio.sleep(0.3)
        assert len(receiver.received) == 3  # nothing more is sent to a disabled endpoint
        (pending,) = await deliveries(gw, status="pending")
        assert pending["attempts"] == 3 and pending["last_status_code"] == 500
        async with gw.session.post(
            f"{gw.url}/v1/webhook-deliveries/{pending['id']}/redeliver", headers=gw.headers()
        ) as resp:
            assert resp.status == 409  # enable it first
        async with gw.session.patch(
            f"{gw.url}/v1/webhook-endpoints/{endpoint['id']}", json={"enabled": True}, headers=gw.headers()
        ) as resp:
            assert resp.status == 200
            assert (await resp.json())["consecutive_failures"] == 0
        await receiver.wait_for(4)
        await wait_until(lambda: _delivered(gw))
    finally:
        await stop_gateway(gw)
    assert gw.runtime.metrics.webhook_endpoints_disabled._value.get() == 1
    assert any("ALERT: webhook endpoint" in r.getMessage() and r.levelname == "WARNING" for r in caplog.records)


async def test_a_delivery_past_its_retry_window_is_failed_listed_and_redelivered_by_hand(
    database: Database, receiver: Receiver
) -> None:
    gw = await start(
        database, dispatch=False, poll=False, simulators=False, partners={}, webhooks__retry_for_seconds=0.3
    )
    try:
        await create_endpoint(gw, receiver.url)
        receiver.answers[:] = [500] * 1000
        await submit(gw)
        (failed,) = await wait_until(lambda: deliveries(gw, status="failed"))
        assert failed["next_attempt_at"] is None and failed["attempts"] >= 1
        tries = len(receiver.received)
        receiver.answers.clear()
        async with gw.session.post(
            f"{gw.url}/v1/webhook-deliveries/{failed['id']}/redeliver", headers=gw.headers()
        ) as resp:
            assert resp.status == 202, await resp.text()
            assert (await resp.json())["status"] == "pending"
        (done,) = await wait_until(lambda: _delivered(gw))
        async with gw.session.get(
            f"{gw.url}/v1/webhook-deliveries", params={"status": "sent"}, headers=gw.headers()
        ) as resp:
            assert resp.status == 400
    finally:
        await stop_gateway(gw)
    assert done["id"] == failed["id"] and done["event_id"] == failed["event_id"]
    assert len(receiver.received) == tries + 1
    assert receiver.received[-1].event_id == receiver.received[0].event_id
    assert receiver.received[-1].body == receiver.received[0].body


async def test_after_a_rotation_both_secrets_sign_during_the_overlap_then_only_the_new_one(
    database: Database, receiver: Receiver
) -> None:
    gw = await start(database, dispatch=False, poll=False, simulators=False, partners={})
    try:
        endpoint = await create_endpoint(gw, receiver.url)
        rotate = f"{gw.url}/v1/webhook-endpoints/{endpoint['id']}/rotate-secret"
        async with gw.session.post(rotate, json={"overlap_seconds": 3600}, headers=gw.headers()) as resp:
            assert resp.status == 200, await resp.text()
            rotated = await resp.json()
        assert rotated["previous_secret_valid_until"] is not None
        await submit(gw)
        (during,) = await receiver.wait_for(1)
        async with gw.session.post(rotate, json={"overlap_seconds": 0}, headers=gw.headers()) as resp:
            latest = await resp.json()
        assert latest["previous_secret_valid_until"] is None
        await submit(gw)
        after = (await receiver.wait_for(2))[1]
        async with gw.session.get(f"{gw.url}/v1/webhook-endpoints", headers=gw.headers()) as resp:
            listed = await resp.json()
    finally:
        await stop_gateway(gw)
    old, new, newest = (e["secret"].encode() for e in (endpoint, rotated, latest))
    assert len({old, new, newest}) == 3
    assert during.headers["Gateway-Signature"].count("v1=") == 2
    verify_signature(old, during.body, during.headers["Gateway-Signature"])
    assert docs_verify()(endpoint["secret"], during.body, during.headers["Gateway-Signature"])
    assert not docs_verify()(endpoint["secret"], after.body, after.headers["Gateway-Signature"])
    verify_signature(new, during.body, during.headers["Gateway-Signature"])
    verify_signature(newest, after.body, after.headers["Gateway-Signature"])
    for stale in (old, new):
        with pytest.raises(SignatureError):
            verify_signature(stale, after.body, after.headers["Gateway-Signature"])
    assert "secret" not in listed["items"][0]


REFUSED_URLS = [
    ("ftp://hooks.example.com/x", "https://"),
    ("http://127.0.0.1:9/hooks", "not a public address"),
    ("http://localhost/hooks", "loopback"),
    ("http://api.localhost/hooks", "loopback"),
    ("http://10.1.2.3/hooks", "not a public address"),
    ("http://192.168.0.10/hooks", "not a public address"),
    ("http://169.254.169.254/latest/meta-data", "not a public address"),
    ("http://100.64.0.1/hooks", "not a public address"),
    ("http://0.0.0.0/hooks", "not a public address"),
    ("http://[::1]/hooks", "host name or IPv4 address"),
    ("http://[::ffff:127.0.0.1]/hooks", "host name or IPv4 address"),
    ("https://user:pw@hooks.example.com/x", "no user name, password"),
]


async def test_endpoint_urls_that_are_not_http_or_not_public_are_refused(database: Database) -> None:
    gw = await start(
        database, dispatch=False, poll=False, simulators=False, partners={}, webhooks__allow_private_addresses=False
    )
    try:
        for url, why in REFUSED_URLS:
            async with gw.session.post(
                f"{gw.url}/v1/webhook-endpoints", json={"url": url}, headers=gw.headers()
            ) as resp:
                assert resp.status == 422, url
                problem = await resp.json()
                assert problem["errors"][0]["pointer"] == "/url", url
                assert why in problem["errors"][0]["detail"] or why in problem["detail"], (url, problem)
        ok = await create_endpoint(gw, "https://hooks.example.com/gateway")
        async with gw.session.patch(
            f"{gw.url}/v1/webhook-endpoints/{ok['id']}", json={"url": "http://127.0.0.1/x"}, headers=gw.headers()
        ) as resp:
            assert resp.status == 422
        async with gw.runtime.engine.connect() as conn:
            count = await conn.scalar(select(func.count()).select_from(webhook_deliveries))
    finally:
        await stop_gateway(gw)
    assert count == 0


async def test_a_name_that_resolves_to_a_private_address_is_refused_when_connecting(
    database: Database, receiver: Receiver
) -> None:
    """DNS rebinding: the URL passed the check (a name), but the name resolves to a loopback address."""
    assert receiver.app is not None
    name = socket.gethostname()
    addresses = {info[4][0] for info in socket.getaddrinfo(name, receiver.app.port, socket.AF_INET)}
    assert addresses and not any(is_public(a) for a in addresses), f"{name} must resolve to this machine"
    gw = await start(database, dispatch=False, poll=False, simulators=False, partners={}, webhooks__enabled=False)
    try:
        endpoint = await create_endpoint(gw, f"http://{name}:{receiver.app.port}/hooks")
        strict = replace(gw.runtime.settings.webhooks, allow_private_addresses=False)
        worker = gw.runtime.new_webhook_worker(owner="strict", settings=strict)
        await submit(gw)
        try:
            await wait_until(worker.run_once)
        finally:
            await worker.stop()
        (refused,) = await deliveries(gw, endpoint_id=endpoint["id"])
        assert receiver.received == []
        # the same delivery, by a worker of a development setting: it arrives
        dev = gw.runtime.new_webhook_worker(owner="dev")
        await dev.start()
        try:
            await receiver.wait_for(1)
        finally:
            await dev.stop()
    finally:
        await stop_gateway(gw)
    assert refused["status"] == "pending" and refused["attempts"] == 1
    assert "not a public address" in refused["last_error"]
