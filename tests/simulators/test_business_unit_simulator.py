"""The business-unit simulator: verifies, journals, de-duplicates webhooks, and plays faults from scenarios.

Requests are signed by the gateway's own signer (``gateway.webhooks.worker.signature_header``).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest

from gateway.api.server import RunningApp, bind, start_app
from gateway.cli import main
from gateway.errors import ConfigError
from gateway.plugins.manager import Plugins
from gateway.webhooks.worker import signature_header
from gateway_simulators.business_unit import (
    BUSINESS_UNIT,
    create_app,
    load_receiver_scenario,
    parse_receiver_scenario,
    receiver_scenario_names,
)
from gateway_simulators.business_unit.receiver import SCENARIO_DIR
from gateway_simulators.core import ScenarioError
from gateway_simulators.core.scenario import SCENARIO_DIR as PARTNER_SCENARIOS

SECRET = "whsec_business_unit_test_secret"
OLD = "whsec_business_unit_old_secret"
INS = "ins_01JD0000000000000000000000"


def event(sequence: int, status: str, instruction_id: str = INS) -> tuple[dict[str, str], bytes]:
    body = json.dumps({"instruction_id": instruction_id, "sequence": sequence, "status": status}).encode()
    headers = {
        "Content-Type": "application/json",
        "Gateway-Event-Id": f"evt_{instruction_id.removeprefix('ins_')}_{sequence}",
        "Gateway-Delivery-Id": f"whd_{sequence:026d}",
        "Gateway-Signature": signature_header((SECRET.encode(),), body, int(time.time())),
    }
    return headers, body


class Unit:
    def __init__(self, running: RunningApp, session: aiohttp.ClientSession) -> None:
        self.running = running
        self.session = session
        self.url = running.url
        self.state = running.runner.app[BUSINESS_UNIT]

    async def post(self, headers: dict[str, str], body: bytes, path: str = "/webhooks") -> int:
        async with self.session.post(self.url + path, data=body, headers=headers) as resp:
            await resp.read()
            return resp.status

    async def admin(self, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
        async with self.session.request(method, self.url + path, **kwargs) as resp:
            return resp.status, await resp.json()


@pytest.fixture
async def start_unit() -> AsyncIterator[Callable[..., Any]]:
    running: list[RunningApp] = []
    session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=1))

    async def start(**settings: Any) -> Unit:
        app = await start_app(create_app({"secrets": [SECRET], **settings}), bind("127.0.0.1", 0))
        running.append(app)
        return Unit(app, session)

    yield start
    await session.close()
    for app in running:
        await app.stop()


async def test_a_signed_event_is_taken_once_and_a_repeat_is_journalled_as_a_duplicate(start_unit: Any) -> None:
    unit = await start_unit()
    headers, body = event(1, "received")

    assert await unit.post(headers, body) == 200
    assert await unit.post(headers, body, "/webhooks/erp-europe") == 200

    status, journal = await unit.admin("GET", "/_sim/journal")
    assert status == 200
    first, second = journal["entries"]
    assert first["event_id"] == headers["Gateway-Event-Id"] and first["delivery_id"] == headers["Gateway-Delivery-Id"]
    assert (first["instruction_id"], first["sequence"], first["status"]) == (INS, 1, "received")
    assert first["verified"] and first["taken"] and not first["duplicate"] and first["outcome"] == "accepted"
    assert second["duplicate"] and second["outcome"] == "duplicate" and second["path"] == "/webhooks/erp-europe"
    assert len(unit.state.events) == 1


async def test_a_bad_or_missing_signature_is_refused_and_not_taken(start_unit: Any) -> None:
    unit = await start_unit()
    headers, body = event(1, "received")

    assert await unit.post(headers, body + b" ") == 401
    assert await unit.post({**headers, "Gateway-Signature": ""}, body) == 401
    stale = signature_header((SECRET.encode(),), body, int(time.time()) - 301)
    assert await unit.post({**headers, "Gateway-Signature": stale}, body) == 401

    _, journal = await unit.admin("GET", "/_sim/journal", params={"outcome": "refused"})
    details = [e["detail"] for e in journal["entries"]]
    assert (
        len(details) == 3 and "does not match" in details[0] and "missing" in details[1] and "tolerance" in details[2]
    )
    assert not any(e["verified"] or e["taken"] for e in journal["entries"])
    assert unit.state.events == {}


async def test_secrets_can_be_set_at_run_time_and_either_secret_of_a_rotation_verifies(start_unit: Any) -> None:
    unit = await start_unit(secrets=[])
    headers, body = event(1, "received")
    assert await unit.post(headers, body) == 401  # no secret yet

    status, answer = await unit.admin("PUT", "/_sim/secrets", json={"secrets": [OLD, SECRET]})
    assert (status, answer) == (200, {"secrets": 2})
    assert await unit.post(headers, body) == 200
    bad, _ = await unit.admin("PUT", "/_sim/secrets", json={"secrets": []})
    assert bad == 400


async def test_transport_faults_strike_each_event_at_most_times_and_are_journalled(start_unit: Any) -> None:
    scenario = {
        "name": "faults",
        "faults": [
            {"kind": "http_error", "status": 503, "retry_after": 2},
            {"kind": "latency", "delay": 0.2, "times": 1},
        ],
    }
    unit = await start_unit(scenario=scenario)
    headers, body = event(1, "received")

    async with unit.session.post(unit.url + "/webhooks", data=body, headers=headers) as resp:
        assert resp.status == 503 and resp.headers["Retry-After"] == "2"
    started = time.monotonic()
    assert await unit.post(headers, body) == 200  # each fault once per event: the retry gets through
    assert time.monotonic() - started >= 0.2

    _, journal = await unit.admin("GET", "/_sim/journal")
    failed, taken = journal["entries"]
    assert failed["faults"] == ["http_error"] and failed["outcome"] == "failed" and not failed["taken"]
    assert taken["faults"] == ["latency"] and taken["outcome"] == "accepted" and taken["taken"]
    _, only = await unit.admin("GET", "/_sim/journal", params={"fault": "http_error"})
    assert [e["seq"] for e in only["entries"]] == [1]


async def test_a_reset_before_drops_the_event_and_a_reset_after_takes_it_but_loses_the_answer(start_unit: Any) -> None:
    unit = await start_unit(scenario={"name": "resets", "faults": [{"kind": "reset"}]})
    headers, body = event(1, "received")
    with pytest.raises(aiohttp.ClientError):
        await unit.post(headers, body)
    assert await unit.post(headers, body) == 200

    after = await start_unit(scenario={"name": "resets-after", "faults": [{"kind": "reset", "after": True}]})
    with pytest.raises(aiohttp.ClientError):
        await after.post(headers, body)
    assert await after.post(headers, body) == 200

    _, before_journal = await unit.admin("GET", "/_sim/journal")
    _, after_journal = await after.admin("GET", "/_sim/journal")
    assert [(e["outcome"], e["taken"]) for e in before_journal["entries"]] == [("dropped", False), ("accepted", True)]
    # taken the first time (its answer lost), so the gateway's retry is a duplicate
    assert [(e["outcome"], e["taken"]) for e in after_journal["entries"]] == [("dropped", True), ("duplicate", True)]


async def test_a_hang_outlasts_the_sender_who_then_times_out(start_unit: Any) -> None:
    unit = await start_unit(scenario={"name": "hangs", "faults": [{"kind": "hang", "seconds": 1.5}]})
    headers, body = event(1, "received")

    with pytest.raises(TimeoutError):
        await unit.post(headers, body)  # the session waits 1 s
    await asyncio.sleep(0.6)

    _, journal = await unit.admin("GET", "/_sim/journal")
    (entry,) = journal["entries"]
    assert entry["faults"] == ["hang"] and entry["outcome"] == "dropped" and not entry["taken"]


async def test_events_are_recovered_in_sequence_order_and_late_ones_are_counted(start_unit: Any) -> None:
    unit = await start_unit()
    for sequence, status in [(1, "received"), (3, "routed"), (2, "accepted")]:
        headers, body = event(sequence, status)
        assert await unit.post(headers, body) == 200

    status, events = await unit.admin("GET", "/_sim/events")
    assert status == 200
    assert [(e["sequence"], e["status"]) for e in events["instructions"][INS]] == [
        (1, "received"),
        (2, "accepted"),
        (3, "routed"),
    ]
    assert events["late_events"] == 1
    _, info = await unit.admin("GET", "/_sim/status")
    assert info["events"] == 3 and info["requests"] == 3 and info["late_events"] == 1

    assert (await unit.admin("POST", "/_sim/reset"))[0] == 200
    _, journal = await unit.admin("GET", "/_sim/journal")
    assert journal["entries"] == [] and unit.state.events == {}
    assert (await unit.admin("GET", "/_sim/journal", params={"colour": "red"}))[0] == 400


async def test_a_body_that_is_not_an_event_is_refused_after_the_signature(start_unit: Any) -> None:
    unit = await start_unit()
    headers, _ = event(1, "received")
    body = b"[1, 2]"
    signed = {**headers, "Gateway-Signature": signature_header((SECRET.encode(),), body, int(time.time()))}

    assert await unit.post(signed, body) == 400
    no_id = {k: v for k, v in event(1, "received")[0].items() if k != "Gateway-Event-Id"}
    assert await unit.post(no_id, event(1, "received")[1]) == 400
    assert unit.state.events == {}


async def test_the_scenario_can_be_read_and_swapped_and_a_bad_one_names_its_line(start_unit: Any) -> None:
    unit = await start_unit(scenario="bu-flaky-receiver")
    status, current = await unit.admin("GET", "/_sim/scenario")
    assert status == 200 and current["name"] == "bu-flaky-receiver" and current["seed"] == 15

    bad = "name: wrong\nfaults:\n  - {kind: callback_duplicate}\n"
    status, answer = await unit.admin("PUT", "/_sim/scenario", data=bad)
    assert status == 400 and answer["error"]["pointer"] == "/faults/0/kind"
    status, answer = await unit.admin("PUT", "/_sim/scenario", data="name: quiet\nseed: 3\n")
    assert (status, answer) == (200, {"name": "quiet", "seed": 3})


def test_shipped_receiver_scenarios_load_and_play_only_transport_faults() -> None:
    assert receiver_scenario_names() == ["bu-flaky-receiver", "bu-happy"]
    flaky = load_receiver_scenario("bu-flaky-receiver")
    assert {f.kind for f in flaky.faults} == {"latency", "http_error", "reset", "hang"}
    assert any(f.after for f in flaky.faults) and any(not f.after for f in flaky.faults)
    with pytest.raises(ScenarioError, match="rules are for partner scenarios"):
        parse_receiver_scenario({"name": "x", "rules": [{"outcome": "settle"}]})
    with pytest.raises(
        ScenarioError, match=r"no business-unit scenario named 'nope'; shipped: bu-flaky-receiver, bu-happy"
    ):
        load_receiver_scenario("nope")
    assert load_receiver_scenario(SCENARIO_DIR / "bu-happy.yaml").name == "bu-happy"


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"colour": "red"}, "unknown settings"),
        ({"secrets": [""]}, "secrets must be a list"),
        ({"secrets": "whsec_a", "signature_tolerance_seconds": -1}, "signature_tolerance_seconds"),
        ({"seed": "x"}, "seed must be a whole number"),
    ],
)
def test_bad_settings_say_what_to_fix(settings: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        create_app(settings)


def test_the_simulator_is_installed_as_a_plugin_and_a_bad_scenario_is_exit_2(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert "business_unit" in Plugins().simulator_factories()

    partner_file = str(PARTNER_SCENARIOS / "flaky-network.yaml")
    assert main(["simulate", "business_unit", "--scenario", partner_file, "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert "/faults/7/kind: 'truncated_body': a business unit plays transport faults only" in err
    assert len(err.strip().splitlines()) == 1

    assert main(["simulate", "business_unit", "--scenario", "flaky-network", "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert "no business-unit scenario named 'flaky-network'; shipped: bu-flaky-receiver, bu-happy" in err


async def test_an_oversized_body_is_refused_unread(start_unit: Any) -> None:
    unit = await start_unit()
    headers, _ = event(1, "received")

    assert await unit.post(headers, b"x" * (256 * 1024 + 1)) == 413

    (entry,) = unit.state.journal
    assert entry.outcome == "bad_request" and not entry.taken and "larger than" in (entry.detail or "")
