"""Scenario files: schema errors name the line and the field; shipped scenarios load; predictions are pure."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from gateway.cli import main
from gateway_adapters.card_acquirer.codes import ERROR_CODES
from gateway_adapters.instant_rtp.reasons import REASON_CODES as INSTANT_REASON_CODES
from gateway_adapters.iso20022_bank.reasons import REASON_CODES
from gateway_simulators.card_acquirer.partner import FAILURE_CODES
from gateway_simulators.core import PaymentFields, ScenarioError, load_scenario, parse_scenario, scenario_names
from gateway_simulators.iso20022_bank import BANK, create_app

SECRETS = {"request_secret": "bank-request-secret", "callback_secret": "bank-callback-secret"}

# (scenario text, line, JSON pointer, words the message must contain)
BAD_SCENARIOS = [
    ("name: x\nrules:\n  - outcome: settle\n    colour: red\n", 4, "/rules/0/colour", "unknown field 'colour'"),
    ("name: x\nrules:\n  - outcome: reject\n", 3, "/rules/0/reason_code", "'reason_code' is a required property"),
    ("name: x\nrules:\n  - outcome: maybe\n", 3, "/rules/0/outcome", "'maybe' is not one of"),
    (
        "name: x\nrules:\n  - match: {creditor_name: '('}\n    outcome: settle\n",
        3,
        "/rules/0/match/creditor_name",
        "regular",
    ),
    (
        "name: x\nrules:\n  - outcome: settle\n    match:\n      amount: {min: 1.5}\n",
        5,
        "/rules/0/match/amount/min",
        "floats",
    ),
    (
        "name: x\nrules:\n  - outcome: settle\n    match: {amount: {min: '9', max: '1'}}\n",
        4,
        "/rules/0/match/amount",
        "above",
    ),
    ("name: x\nfaults:\n  - kind: latency\n", 3, "/faults/0/delay", "'delay' is a required property"),
    ("name: x\nfaults:\n  - kind: gremlins\n", 3, "/faults/0/kind", "'gremlins' is not one of"),
    ("name: x\nfaults:\n  - kind: http_error\n    status: 418\n", 4, "/faults/0/status", "418 is not one of"),
    (
        "name: x\ndefaults:\n  delays:\n    ack: {distribution: uniform, low: 1}\n",
        4,
        "/defaults/delays/ack/high",
        "'high' is a required property",
    ),
    ("name: x\nstatement:\n  breaks:\n    - kind: typo_entry\n", 4, "/statement/breaks/0/kind", "not one of"),
    ("name: Not A Slug\n", 1, "/name", "does not match"),
    ("description: no name\n", 1, "/name", "'name' is a required property"),
    ("name: x\nrules: [\n", 3, "", "not valid YAML"),
]


@pytest.mark.parametrize(
    ("text", "line", "pointer", "words"), BAD_SCENARIOS, ids=[b[2] or "yaml" for b in BAD_SCENARIOS]
)
def test_bad_scenario_names_line_and_field(text: str, line: int, pointer: str, words: str, scenario_file: Any) -> None:
    path = scenario_file(text)

    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)

    error = caught.value
    assert error.line == line
    if pointer:
        assert error.pointer == pointer
        assert error.errors[0].pointer == pointer
    assert words in error.message
    assert error.message.startswith(f"{path}:{line}: ")


def test_bad_scenario_on_the_command_line_exits_2_naming_the_line(
    scenario_file: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    path = scenario_file("name: x\nrules:\n  - outcome: reject\n")

    code = main(["simulate", "iso20022_bank", "--scenario", str(path), "--port", "0"])

    err = capsys.readouterr().err
    assert code == 2
    assert f"{path}:3: /rules/0/reason_code" in err


def test_unknown_shipped_scenario_is_a_clear_error() -> None:
    with pytest.raises(ScenarioError, match=r"no scenario named .nope.; shipped: ach-changes, .*, happy"):
        load_scenario("nope")


def test_every_shipped_scenario_loads_and_names_its_partner() -> None:
    names = scenario_names()

    assert {"happy", "flaky-network", "callback-chaos", "rejections", "slow-partner"} <= set(names)
    for name in names:
        scenario = load_scenario(name)
        assert scenario.name == name
        assert scenario.partner in BUILT_IN_PARTNERS
        assert scenario.partner == "iso20022_bank" or name.startswith(f"{SHORT_NAMES[scenario.partner]}-")
        assert scenario.population


def test_rejections_scenario_covers_every_reason_code_the_adapter_maps() -> None:
    scenario = load_scenario("rejections")

    rejected = {r.reason_code for r in scenario.rules if r.outcome == "reject"}
    ats = {r.at for r in scenario.rules if r.outcome == "reject"}

    assert rejected == set(REASON_CODES)
    assert ats == {"submit", "callback"}
    assert any(r.outcome == "return" for r in scenario.rules)


def test_card_rejections_scenario_covers_every_failure_code_the_adapter_rejects_with() -> None:
    scenario = load_scenario("card-rejections")

    failure_codes = {FAILURE_CODES.get(r.reason_code or "", "could_not_process") for r in scenario.rules}

    rejecting = {code for code, rule in ERROR_CODES.items() if rule.outcome == "reject"}
    assert rejecting <= failure_codes
    assert "processing_unavailable" in failure_codes
    assert {r.at for r in scenario.rules if r.outcome == "reject"} == {"submit", "callback"}
    assert any(r.outcome == "return" for r in scenario.rules)


def test_instant_rejections_scenario_covers_every_reason_code_the_adapter_knows() -> None:
    scenario = load_scenario("instant-rejections")

    assert {r.reason_code for r in scenario.rules if r.outcome == "reject"} == set(INSTANT_REASON_CODES)


#: the short name a built-in partner's shipped scenarios start with (the bank's have none: they came first)
SHORT_NAMES = {"card_acquirer": "card", "instant_rtp": "instant", "ach_nacha": "ach"}
BUILT_IN_PARTNERS = {"iso20022_bank", *SHORT_NAMES}

PREDICT = parse_scenario(
    """
name: predict
seed: 9
rules:
  - {match: {amount: {min: "1000", max: "2000"}, currency: EUR}, outcome: reject, reason_code: AM04}
  - {match: {creditor_name: "(?i)^acme"}, outcome: return, reason_code: AC04}
  - {match: {reference: "^HOLD-"}, outcome: accept}
  - {match: {currency: SEK}, outcome: reject, reason_code: AG01, at: submit}
"""
)


@pytest.mark.parametrize(
    ("reference", "amount", "currency", "creditor", "expected"),
    [
        ("A-1", "1500.00", "EUR", "Nordic", "rejected"),
        ("A-2", "2000.01", "EUR", "Nordic", "settled"),
        ("A-3", "10.00", "EUR", "ACME Corp", "returned"),
        ("HOLD-1", "10.00", "EUR", "Nordic", "submitted"),
        ("A-4", "10.00", "SEK", "Nordic", "rejected"),
        ("A-5", "1500.00", "SEK", "ACME", "returned"),
    ],
)
def test_predict_is_the_first_matching_rule(
    reference: str, amount: str, currency: str, creditor: str, expected: str
) -> None:
    payment = PaymentFields(reference, Decimal(amount), currency, creditor)

    assert PREDICT.predict(payment, seed=1) == expected


def test_probability_rules_are_seeded_per_payment() -> None:
    scenario = parse_scenario("name: p\nrules:\n  - {match: {probability: 0.5}, outcome: reject, reason_code: MS03}\n")
    payments = [PaymentFields(f"REF-{i}", Decimal("1"), "EUR") for i in range(200)]

    first = [scenario.predict(p, seed=4) for p in payments]
    again = [scenario.predict(p, seed=4) for p in reversed(payments)][::-1]
    other = [scenario.predict(p, seed=5) for p in payments]

    assert first == again
    assert first != other
    assert 60 < first.count("rejected") < 140


async def test_scenario_is_swapped_at_run_time_and_a_bad_one_changes_nothing(aiohttp_client: Any) -> None:
    client = await aiohttp_client(create_app({**SECRETS, "scenario": "happy"}))

    bad = await client.put("/_sim/scenario", data="name: x\nfaults:\n  - kind: latency\n")
    still = await (await client.get("/_sim/scenario")).json()
    good = await client.put("/_sim/scenario", data=(Path(load_scenario("rejections").source)).read_text())
    now = await (await client.get("/_sim/scenario")).json()

    assert bad.status == 400
    error = (await bad.json())["error"]
    assert (error["line"], error["pointer"]) == (3, "/faults/0/delay")
    assert still["name"] == "happy"
    assert good.status == 200
    assert now["name"] == "rejections" and now["seed"] == 3
    assert client.app[BANK].scenario is not None and client.app[BANK].scenario.name == "rejections"
