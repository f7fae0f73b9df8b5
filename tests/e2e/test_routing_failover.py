"""Routing end to end: rules on the events, failover when a partner refuses, never paying twice."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from gateway_simulators.iso20022_bank import BANK
from tests.plugins import reroute_bank
from tests.support import Database, example_instruction, start_gateway, stop_gateway


async def test_refused_payment_fails_over_to_the_next_partner_and_is_paid_once(
    database: Database, tmp_path: Path
) -> None:
    routing = tmp_path / "routing.yaml"
    routing.write_text("rules:\n  - name: eur-two-rails\n    partners: [reroute_bank, iso20022_bank]\n")
    gw = await start_gateway(
        database, extra_plugins=(reroute_bank,), partners__reroute_bank={}, routing__file=str(routing)
    )
    try:
        resp = await gw.post_instruction(example_instruction())
        instruction_id = (await resp.json())["id"]
        view = await gw.wait_for(instruction_id)
        assert view["status"] == "settled" and view["adapter"] == "iso20022_bank"
        steps = [(e["status"], e["adapter"], e["reason_code"]) for e in view["events"] if e["applied"]]
        assert steps[:5] == [
            ("received", None, None),
            ("accepted", None, None),
            ("routed", "reroute_bank", None),
            ("accepted", "reroute_bank", "REROUTE"),
            ("routed", "iso20022_bank", None),
        ]
        routed_again = [e for e in view["events"] if e["status"] == "routed"][-1]
        assert "rule eur-two-rails" in routed_again["reason"]
        assert "reroute_bank: refused this payment before" in routed_again["reason"]
        assert reroute_bank.SUBMITTED.count(instruction_id) == 1  # never asked twice
        bank = gw.simulators["iso20022_bank"].runner.app[BANK]
        assert [(p["instruction_id"], p["submissions"]) for p in bank.describe()] == [(instruction_id, 1)]
    finally:
        await stop_gateway(gw)


async def test_partner_down_opens_its_circuit_and_routing_skips_it(database: Database, tmp_path: Path) -> None:
    routing = tmp_path / "routing.yaml"
    routing.write_text(
        "rules:\n  - name: sepa\n    partners: [iso20022_bank]\n"
        "circuit_breaker: {failure_threshold: 2, open_seconds: 60}\n"
    )
    gw = await start_gateway(
        database,
        simulators=False,
        routing__file=str(routing),
        partners__iso20022_bank__base_url="http://127.0.0.1:9",  # nothing listens
        dispatch__backoff_base_seconds=0.02,
        dispatch__backoff_max_seconds=0.05,
        dispatch__max_attempts=20,
    )
    try:
        first = (await (await gw.post_instruction(example_instruction())).json())["id"]
        for _ in range(200):
            if gw.runtime.router.breaker.state("iso20022_bank") == "open":
                break
            await asyncio.sleep(0.05)
        assert gw.runtime.router.breaker.state("iso20022_bank") == "open"
        # a new payment for the same rail now waits instead of hammering the dead partner
        second = (await (await gw.post_instruction(example_instruction())).json())["id"]
        await asyncio.sleep(0.5)
        view = await gw.get_instruction(second)
        assert view["status"] == "accepted"
        assert not any(e["status"] == "routed" for e in view["events"])
        # the first never reached the dead partner (connection refused), so it went back to routing and waits too
        first_view = await gw.get_instruction(first)
        assert first_view["status"] == "accepted"
        assert first_view["events"][-1]["reason_code"] == "PARTNER_UNREACHABLE"
    finally:
        await stop_gateway(gw)


async def test_partner_killed_mid_run_fails_over_with_zero_double_payments(database: Database, tmp_path: Path) -> None:
    from gateway_simulators.ach_nacha import ODFI
    from gateway_simulators.instant_rtp import SIMULATOR

    routing = tmp_path / "routing.yaml"
    routing.write_text(
        "rules:\n  - name: usd\n    match: {currencies: [USD], account_kinds: [us]}\n"
        "    partners: [instant_rtp, ach_nacha]\n"
        "circuit_breaker: {failure_threshold: 1, open_seconds: 60}\n"
    )
    gw = await start_gateway(
        database,
        routing__file=str(routing),
        dispatch__status_poll_interval_seconds=0.2,
        dispatch__status_poll_after_seconds=0,
    )
    us = {"number": "000123456789", "routing": "021000021"}

    def usd() -> dict[str, Any]:
        body = example_instruction(currency="USD")
        body["debtor"] = {
            "name": "HE Appliances America Inc",
            "account": {"number": "987654321", "routing": "011000015"},
        }
        body["creditor"]["account"] = us
        return body

    try:
        instant = gw.simulators["instant_rtp"].runner.app[SIMULATOR]
        ach = gw.simulators["ach_nacha"].runner.app[ODFI]
        before = [(await (await gw.post_instruction(usd())).json())["id"] for _ in range(3)]
        for instruction_id in before:
            assert (await gw.wait_for(instruction_id))["adapter"] == "instant_rtp"
        await gw.simulators["instant_rtp"].stop()  # the instant partner dies: its port now refuses connections
        after = [(await (await gw.post_instruction(usd())).json())["id"] for _ in range(3)]
        for _ in range(100):  # wait until all three went back to routing and were filed with ACH
            views = [await gw.get_instruction(i) for i in after]
            if all(v["adapter"] == "ach_nacha" and v["status"] == "submitted" for v in views):
                break
            await asyncio.sleep(0.05)
        await gw.runtime.adapters["ach_nacha"].run_cutoff()  # type: ignore[attr-defined]
        finals = [await gw.wait_for(i) for i in after]
        assert {(v["status"], v["adapter"]) for v in finals} == {("settled", "ach_nacha")}
        left = [e for e in finals[0]["events"] if e["reason_code"] == "PARTNER_UNREACHABLE"]
        assert [(e["status"], e["adapter"]) for e in left] == [("accepted", "instant_rtp")]
        # zero double payments: the instant partner booked only the first three, ACH exactly the other three, once
        assert sorted(p["instruction_id"] for p in instant.describe()) == sorted(before)
        assert len(ach.entries) == 3 and {b.received for b in ach.entries.values()} == {1}
    finally:
        await stop_gateway(gw)
