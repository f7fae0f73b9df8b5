"""Every fault the simulator can inject, injected (the journal shows it) and survived by the gateway.

One gateway per layer: each payment carries a reference a scenario rule matches,
so each fault strikes its own payment, deterministically. Survived means every
payment reaches the final status the scenario predicts, booked once at the bank.
Runs on SQLite and (with GATEWAY_TEST_DATABASE_URL) PostgreSQL.
"""

from __future__ import annotations

import asyncio
import uuid
from decimal import Decimal
from typing import Any

from gateway_simulators.core import PaymentFields, parse_scenario
from gateway_simulators.pytest_plugin import SimulatorProbe
from tests.support import Database, LiveGateway, example_instruction, start_gateway, stop_gateway

MISSING = {"kind": "callback_missing", "times": 5}

TRANSPORT_AND_PAYLOAD: dict[str, dict[str, Any]] = {
    "LAT": {"outcome": "settle", "faults": [{"kind": "latency", "exchange": "any", "delay": 0.2}]},
    "HANG": {"outcome": "settle", "faults": [{"kind": "hang", "after": True, "seconds": 2}]},
    "RST": {"outcome": "reject", "reason_code": "AC01", "faults": [{"kind": "reset"}]},
    "RSTA": {"outcome": "settle", "faults": [{"kind": "reset", "after": True}]},
    "E429": {"outcome": "settle", "faults": [{"kind": "http_error", "status": 429, "retry_after": 0}]},
    "TRUNC": {"outcome": "settle", "faults": [{"kind": "truncated_body"}]},
    "CTYPE": {"outcome": "settle", "faults": [{"kind": "wrong_content_type"}]},
    "AMT": {"outcome": "reject", "reason_code": "AM04", "faults": [{"kind": "wrong_amount", "amount_delta": "5.00"}]},
    "UNK": {"outcome": "settle", "faults": [{"kind": "unknown_status", "code": "ZZZZ"}]},
    "POLL": {
        "outcome": "reject",
        "reason_code": "AG01",
        "faults": [
            MISSING,
            {"kind": "http_error", "status": 500, "exchange": "status", "retry_after": 0},
            {"kind": "wrong_currency", "exchange": "status", "currency": "USD"},
            {"kind": "truncated_body", "exchange": "status"},
            {"kind": "wrong_amount", "exchange": "status"},
            {"kind": "unknown_status", "exchange": "status"},
        ],
    },
}

ALL_STEPS = ["in_process", "settled", "rejected", "returned"]
CALLBACKS: dict[str, dict[str, Any]] = {
    "DUP": {"outcome": "settle", "faults": [{"kind": "callback_duplicate", "copies": 3, "times": 3}]},
    "OOO": {"outcome": "return", "reason_code": "MD07", "faults": [{"kind": "callback_out_of_order", "times": 3}]},
    "LATE": {
        "outcome": "reject",
        "reason_code": "AC04",
        "faults": [{"kind": "callback_late", "delay": 1.0, "steps": ["rejected"]}],
    },
    "MISS": {"outcome": "settle", "faults": [MISSING]},
    "REPLAY": {"outcome": "settle", "faults": [{"kind": "callback_replay", "days": 3, "times": 5}]},
    "EARLY": {"outcome": "settle", "faults": [{"kind": "callback_early"}]},
    "EARLYR": {"outcome": "return", "reason_code": "AC04", "faults": [{"kind": "callback_early"}]},
    "FORGED": {"outcome": "reject", "reason_code": "RR04", "faults": [{"kind": "callback_wrong_key", "times": 5}]},
}


def scenario(name: str, rules: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return {
        "name": name,
        "defaults": {"delays": {"ack": 0.05, "settle": 0.1, "return": 0.1}},
        "rules": [{"name": tag, "match": {"reference": f"^{tag}-"}, **rule} for tag, rule in rules.items()],
    }


async def run(database: Database, doc: dict[str, Any]) -> tuple[LiveGateway, SimulatorProbe, dict[str, str]]:
    gw = await start_gateway(
        database,
        sim_overrides={"iso20022_bank": {"scenario": doc, "seed": 1}},
        partners__iso20022_bank__timeout_seconds=1,
        dispatch__backoff_base_seconds=0.05,
        dispatch__backoff_max_seconds=0.2,
        dispatch__status_poll_interval_seconds=0.2,
        dispatch__status_poll_after_seconds=0.3,
    )
    bodies = [
        example_instruction(reference=f"{tag}-{uuid.uuid4().hex[:8]}") for tag in [r["name"] for r in doc["rules"]]
    ]
    responses = await asyncio.gather(*(gw.post_instruction(b) for b in bodies))
    ids = {}
    parsed = parse_scenario(doc)
    for body, resp in zip(bodies, responses, strict=True):
        assert resp.status == 202, await resp.text()
        fields = PaymentFields(body["reference"], Decimal(body["amount"]), body["currency"], body["creditor"]["name"])
        ids[(await resp.json())["id"]] = parsed.predict(fields, seed=1)
    return gw, SimulatorProbe.of(gw.simulators["iso20022_bank"]), ids


def final_event(view: dict[str, Any]) -> dict[str, Any]:
    """The event that set the current status (a stale one may be recorded after it)."""
    return [e for e in view["events"] if e["outcome"] == "applied"][-1]


async def reach_predictions(gw: LiveGateway, ids: dict[str, str], timeout: float = 20) -> dict[str, dict[str, Any]]:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        views = {i: await gw.get_instruction(i) for i in ids}
        if all(views[i]["status"] == expected for i, expected in ids.items()):
            return views
        if asyncio.get_running_loop().time() > deadline:
            wrong = {v["reference"]: (v["status"], ids[i]) for i, v in views.items() if v["status"] != ids[i]}
            raise AssertionError(f"not at their predicted status (reached, predicted): {wrong}")
        await asyncio.sleep(0.1)


async def test_transport_and_payload_faults_are_injected_and_survived(database: Database) -> None:
    gw, probe, ids = await run(database, scenario("transport-payload", TRANSPORT_AND_PAYLOAD))
    try:
        views = await reach_predictions(gw, ids)

        probe.assert_fault_injected(
            "latency", "hang", "reset", "http_error", "truncated_body", "wrong_content_type",
            "wrong_amount", "wrong_currency", "unknown_status",
        )  # fmt: skip
        probe.assert_no_double_submission()
        for instruction_id in ids:
            probe.assert_submitted_once(instruction_id)
        by_tag = {v["reference"].split("-")[0]: v for v in views.values()}
        # refused before the bank took the payment: only the retry (same key) booked it
        assert probe.submissions(by_tag["RST"]["id"]) == 2 and probe.submissions(by_tag["E429"]["id"]) == 2
        # answers lost or untrustworthy after the bank took it: a retry (if the callbacks did not come first)
        # was answered from the bank's idempotency record, never booked again (assert_submitted_once above)
        for tag in ("HANG", "RSTA", "TRUNC", "CTYPE", "AMT"):
            assert probe.submissions(by_tag[tag]["id"]) in (1, 2), tag
        polls = probe.journal(kind="status", instruction_id=by_tag["POLL"]["id"])
        assert [e.faults for e in polls][:2] == [
            ["http_error"],
            ["wrong_currency", "truncated_body", "wrong_amount", "unknown_status"],
        ]
        assert final_event(by_tag["POLL"])["source"] == "poll"
        assert final_event(by_tag["AMT"])["reason_code"] == "AM04"
    finally:
        await stop_gateway(gw)


async def test_callback_faults_are_injected_and_survived(database: Database) -> None:
    gw, probe, ids = await run(database, scenario("callbacks", CALLBACKS))
    try:
        views = await reach_predictions(gw, ids)
        await probe.idle()

        probe.assert_fault_injected(
            "callback_duplicate", "callback_out_of_order", "callback_late", "callback_missing",
            "callback_replay", "callback_early", "callback_wrong_key",
        )  # fmt: skip
        probe.assert_no_double_submission()
        by_tag = {v["reference"].split("-")[0]: v for v in views.values()}
        for tag in ("REPLAY", "FORGED"):  # the gateway refused them (401), and polling found the status
            refused = probe.journal(kind="callback", instruction_id=by_tag[tag]["id"], outcome="refused")
            assert refused and {e.http_status for e in refused} == {401}, tag
            assert final_event(by_tag[tag])["source"] == "poll"
        dup = [e for e in by_tag["DUP"]["events"] if e["outcome"] == "duplicate"]
        assert dup  # the copies arrived and were recorded as duplicates, not applied
        # the return overtook the settlement: the settlement is implied, then the return applies
        events = by_tag["OOO"]["events"]
        (implied,) = [n for n, e in enumerate(events) if e["reason"] == "implied by the partner's return report"]
        pair = [(e["status"], e["outcome"], e["reason_code"]) for e in events[implied : implied + 2]]
        assert pair == [("settled", "applied", None), ("returned", "applied", "MD07")]
        # early: the outcome arrived while the gateway still waited for the bank's answer
        early = [(e["status"], e["outcome"]) for e in by_tag["EARLY"]["events"]]
        assert early.index(("settled", "applied")) < early.index(("submitted", "stale"))
        probe.assert_callbacks_delivered([by_tag[t]["id"] for t in ("DUP", "OOO", "LATE", "EARLY", "EARLYR")])
        for instruction_id in ids:
            probe.assert_submitted_once(instruction_id)
    finally:
        await stop_gateway(gw)
