"""What an operator reads in the logs: one access line per request, one line per transition,
hold decision and partner failure; never a key, an account number or a body."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
import yaml

from gateway.logs import JsonFormatter
from tests.support import Database, LiveGateway, example_instruction, start_gateway, stop_gateway


def _lines(caplog: pytest.LogCaptureFixture, logger: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == logger]


def _everything(caplog: pytest.LogCaptureFixture) -> str:
    """Every captured record as an operator would see it, in both formats."""
    text = logging.Formatter("%(message)s")
    return "\n".join(f(r) for r in caplog.records for f in (text.format, JsonFormatter().format))


async def test_one_access_line_per_request_without_secrets(
    intake_gateway: LiveGateway, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    gw = intake_gateway
    body = example_instruction()
    resp = await gw.post_instruction(body)
    assert resp.status == 202
    instruction_id = (await resp.json())["id"]
    async with gw.session.get(
        f"{gw.url}/v1/instructions", params={"reference": body["reference"]}, headers=gw.headers()
    ):
        pass
    async with gw.session.get(f"{gw.url}/v1/instructions", headers=gw.headers("pgw_wrong")):
        pass
    async with gw.session.get(f"{gw.url}/nowhere"):
        pass
    async with gw.session.post(f"{gw.url}/v1/instructions/{instruction_id}/cancel", headers=gw.headers()):
        pass

    access = _lines(caplog, "gateway.api.access")
    seen = [(r.method, r.path, r.status, r.business_unit) for r in access]  # type: ignore[attr-defined]
    assert seen == [
        ("POST", "/v1/instructions", 202, "erp-europe"),
        ("GET", "/v1/instructions", 200, "erp-europe"),
        ("GET", "/v1/instructions", 401, None),
        ("GET", "/nowhere", 404, None),
        ("POST", f"/v1/instructions/{instruction_id}/cancel", 200, "erp-europe"),
    ]
    assert all(isinstance(r.ms, float) and r.ms >= 0 for r in access)  # type: ignore[attr-defined]
    assert access[0].getMessage().startswith("POST /v1/instructions 202 ")
    assert access[0].getMessage().endswith("ms bu=erp-europe")

    (moved,) = _lines(caplog, "gateway.transitions")
    assert moved.getMessage() == f"instruction {instruction_id} received -> cancelled"
    assert (moved.previous_status, moved.status) == ("received", "cancelled")  # type: ignore[attr-defined]

    logged = _everything(caplog)
    for secret in (gw.key, "pgw_wrong", body["reference"], body["debtor"]["account"]["iban"], body["creditor"]["name"]):
        assert secret not in logged


async def test_hold_decisions_and_their_transitions_are_logged_once(
    database: Database, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    risk = tmp_path / "risk.yaml"
    risk.write_text(
        yaml.safe_dump(
            {
                "defaults": {
                    "timezone": "UTC",
                    "hold_expiry": "1h",
                    "rules": {"new_beneficiary": {"large_amount": "5000"}},
                }
            }
        )
    )
    caplog.set_level(logging.INFO)
    gw = await start_gateway(database, risk__file=str(risk))
    try:
        finance = await gw.new_key("group-finance", ("finance",))
        resp = await gw.post_instruction(example_instruction(amount="9000.00"))
        instruction_id = (await resp.json())["id"]
        await gw.wait_for(instruction_id, lambda v: v["status"] == "held")
        async with gw.session.post(
            f"{gw.url}/v1/holds/{instruction_id}/reject", json={"comment": "unknown payee"}, headers=gw.headers(finance)
        ) as decided:
            assert decided.status == 200
    finally:
        await stop_gateway(gw)
    (decision,) = _lines(caplog, "gateway.risk.holds")
    assert decision.getMessage().startswith(f"hold on {instruction_id} rejected by key key_")
    assert decision.decision == "rejected"  # type: ignore[attr-defined]
    moves = [r.getMessage() for r in _lines(caplog, "gateway.transitions") if instruction_id in r.getMessage()]
    assert moves == [
        f"instruction {instruction_id} received -> accepted",
        f"instruction {instruction_id} accepted -> held (RISK_HOLD)",
        f"instruction {instruction_id} held -> rejected (HOLD_REJECTED)",
    ]


async def test_each_partner_failure_is_one_line(database: Database, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    gw = await start_gateway(
        database,
        simulators=False,
        partners__iso20022_bank__base_url="http://127.0.0.1:9",  # nothing listens
        dispatch__backoff_base_seconds=0.02,
        dispatch__backoff_max_seconds=0.05,
    )
    try:
        resp = await gw.post_instruction(example_instruction())
        instruction_id = (await resp.json())["id"]
        for _ in range(100):
            if _lines(caplog, "gateway.dispatch.dispatcher"):
                break
            await asyncio.sleep(0.05)
    finally:
        await stop_gateway(gw)
    failures = [r for r in _lines(caplog, "gateway.dispatch.dispatcher") if r.getMessage().startswith("partner ")]
    assert failures, [r.getMessage() for r in caplog.records]
    first = failures[0]
    assert first.getMessage().startswith(f"partner iso20022_bank failed on submit of {instruction_id} (unreachable): ")
    assert (first.adapter, first.operation, first.outcome) == ("iso20022_bank", "submit", "unreachable")  # type: ignore[attr-defined]
    submits = sum(
        1 for r in caplog.records if r.name == "gateway.dispatch.dispatcher" and "failed on submit" in r.getMessage()
    )
    attempts = gw.runtime.metrics.registry.get_sample_value(
        "gateway_dispatch_attempts_total", {"adapter": "iso20022_bank", "result": "unreachable"}
    )
    assert submits == attempts  # one line per failed attempt, no more
