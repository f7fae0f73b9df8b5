"""``gateway qa run`` for every partner: a population that fits it, routed to it, or one line refusing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import create_async_engine

from gateway.cli import main
from gateway.config import load_settings
from gateway.devtools.qa import PARTNER_SHAPES, check_routing, explain, qa_instructions
from gateway.domain.accounts import UsAccount
from gateway.errors import ConfigError
from gateway.runtime import Runtime

POPULATION = [
    {"creditor_name": "Nordic Parts AB", "amount": {"min": "1.00", "max": "900.00"}},
    {"creditor_name": "Lowlands Retail BV", "amount": "25.00", "type": "refund"},
]


@pytest.fixture
async def runtime() -> AsyncIterator[Runtime]:
    """The shipped configuration's adapters and routing (starts nothing, stores nothing)."""
    rt = Runtime(load_settings(env={}), engine=create_async_engine("sqlite+aiosqlite:///:memory:"))
    try:
        yield rt
    finally:
        await rt.engine.dispose()


@pytest.mark.parametrize("partner", sorted(PARTNER_SHAPES))
async def test_population_is_routed_to_the_partner_under_test(partner: str, runtime: Runtime) -> None:
    bodies = qa_instructions(POPULATION, 12, seed=5, partner=partner)

    check_routing(runtime, bodies, partner, "t")  # raises unless every body goes to `partner`

    assert len({b["reference"] for b in bodies}) == 12


def test_ach_population_is_usd_between_us_accounts_with_valid_routing_numbers() -> None:
    bodies = qa_instructions(POPULATION, 8, seed=2, partner="ach_nacha")

    assert {b["currency"] for b in bodies} == {"USD"}
    assert {b["urgency"] for b in bodies} == {"standard"}
    for b in bodies:
        for side in ("debtor", "creditor"):
            account = b[side]["account"]
            UsAccount.parse(account["number"], account["routing"], f"/{side}/account")  # refuses a bad check digit


def test_instant_and_wallet_populations_have_their_shape() -> None:
    instant = qa_instructions(POPULATION, 4, seed=2, partner="instant_rtp")
    wallet = qa_instructions(POPULATION, 4, seed=2, partner="card_acquirer")

    assert {(b["currency"], b["urgency"]) for b in instant} == {("USD", "instant")}
    assert all(set(b["creditor"]["account"]) == {"wallet"} for b in wallet)
    assert [b["type"] for b in wallet] == ["payout", "refund", "payout", "refund"]


async def test_routing_that_disagrees_is_refused_in_one_line(runtime: Runtime) -> None:
    bodies = qa_instructions(POPULATION, 2, seed=2, partner="iso20022_bank")

    with pytest.raises(ConfigError) as caught:
        check_routing(runtime, bodies, "card_acquirer", "mine")

    assert "\n" not in str(caught.value)
    assert str(caught.value).startswith("scenario mine is for card_acquirer, but the routing disagrees for QA2-00000")
    assert "routed to iso20022_bank" in str(caught.value)


def test_cli_refuses_a_scenario_written_for_another_partner(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["qa", "run", "happy", "--partner", "card_acquirer", "--count", "1"])

    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.startswith("gateway: scenario happy is for partner iso20022_bank, not card_acquirer")
    assert "card-happy" in err and "\n" not in err


def test_cli_refuses_a_population_the_routing_sends_elsewhere(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    scenario = tmp_path / "usd.yaml"
    scenario.write_text("name: usd\npartner: iso20022_bank\npopulation:\n  - {creditor_name: X Ltd, currency: USD}\n")

    code = main(["qa", "run", str(scenario), "--count", "1"])

    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.startswith("gateway: scenario usd is for iso20022_bank, but the routing disagrees")
    assert "iso20022_bank: currency USD not supported" in err


def test_explain_names_the_last_applied_event_and_the_last_exchange_a_fault_struck() -> None:
    events = [
        {"instruction_id": "ins_1", "status": "submitted", "source": "dispatcher", "applied": True},
        {"instruction_id": "ins_1", "status": "rejected", "source": "callback", "reason_code": "AC04",
         "reason": "closed account", "applied": True},
        {"instruction_id": "ins_1", "status": "settled", "source": "poll", "applied": False},
    ]  # fmt: skip
    journal = [
        {"seq": 3, "direction": "in", "kind": "submit", "method": "POST", "path": "/pain001", "http_status": 200,
         "outcome": "created", "instruction_id": "ins_1", "faults": []},
        {"seq": 9, "direction": "out", "kind": "callback", "outcome": "delivered", "partner_status": "RJCT",
         "end_to_end_id": "QA1-00000", "faults": ["callback_late"]},
        {"seq": 10, "direction": "in", "kind": "status", "instruction_id": "ins_2", "faults": []},
        {"seq": 11, "direction": "in", "kind": "status", "method": "GET", "path": "/s", "http_status": 200,
         "instruction_id": "ins_1", "outcome": "answered", "faults": []},
    ]  # fmt: skip

    why = explain(events, journal, "QA1-00000")

    assert why == (
        "last event: rejected by callback AC04: closed account; "
        "simulator: #9 out callback delivered RJCT faults=callback_late"
    )
    assert explain([], [], "QA1-9") == "no event recorded; simulator: never heard of it"
    assert explain(events, journal[:1], "QA1-00000").endswith("simulator: #3 in submit POST /pain001 HTTP 200 created")
