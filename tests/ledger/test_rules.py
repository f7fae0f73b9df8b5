"""Posting rules are data: checked at start-up, refused when they could post an unbalanced entry."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml

from gateway.config import load_settings
from gateway.domain.status import TRANSITIONS, Status
from gateway.ledger.errors import LedgerRulesError
from gateway.ledger.rules import DEFAULT_RULES_FILE, load_ledger, parse_rules
from gateway.plugins.hookspecs import hookimpl
from gateway.plugins.manager import Plugins

SHIPPED: dict[str, Any] = yaml.safe_load(DEFAULT_RULES_FILE.read_text())


def _with(change: Any) -> dict[str, Any]:
    doc = copy.deepcopy(SHIPPED)
    change(doc)
    return doc


BAD_RULES = [
    (
        lambda d: d["lifecycle"].__setitem__("settled", [{"debit": "bu:{business_unit}:receivable"}]),
        "lifecycle.settled: debits and credits differ by 1 * amount, so it could post an unbalanced entry",
    ),
    (
        lambda d: d["events"]["fee"]["legs"][0].__setitem__("amount", "2 * amount"),
        "events.fee.legs: debits and credits differ by 1 * amount",
    ),
    (
        lambda d: d["lifecycle"].__setitem__("accepted", [{"debit": "nowhere"}, {"credit": "suspense"}]),
        "lifecycle.accepted[0]: account 'nowhere' is not in the chart",
    ),
    (
        lambda d: d["lifecycle"].__setitem__(
            "held", [{"debit": "partner:{adapter}:bank"}, {"credit": "partner:{adapter}:in_transit"}]
        ),
        "lifecycle.held[0]: 'partner:{adapter}:bank' names the adapter, which a payment in this status has not got",
    ),
    (lambda d: d["lifecycle"].pop("returned"), "lifecycle.returned is missing"),
    (lambda d: d["accounts"].__setitem__("bu:{branch}:x", "asset"), "unknown field {branch}"),
    (lambda d: d["accounts"].__setitem__("odd", "cash"), "accounts.odd: type must be one of"),
    (
        lambda d: d["events"]["fee"]["legs"][0].__setitem__("amount", "amount * 2"),
        "cannot read amount 'amount * 2'",
    ),
]


@pytest.mark.parametrize(("change", "message"), BAD_RULES)
def test_a_bad_rule_is_refused_with_one_line_naming_it(change: Any, message: str) -> None:
    with pytest.raises(LedgerRulesError) as err:
        parse_rules(_with(change), "ledger.yaml")
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_the_shipped_rules_post_balanced_entries_for_every_legal_transition() -> None:
    rules = parse_rules(SHIPPED, "ledger.yaml")
    table = {(a, b): lines for a, b, lines in rules.transition_table()}
    for previous, nexts in TRANSITIONS.items():
        for status in nexts:
            lines = table.get((previous, status), [])
            assert sum(p.amount for p in lines) == 0, (previous, status)
    assert (Status.SUBMITTED, Status.SETTLED) in table
    assert (Status.ACCEPTED, Status.HELD) not in table  # no money moves


class RebatePlugin:
    @hookimpl
    def gateway_ledger_rules(self) -> dict[str, Any]:
        return {
            "accounts": {"rebates:{business_unit}": "income"},
            "events": {
                "rebate": {
                    "amounts": ["amount"],
                    "legs": [{"debit": "partner:{adapter}:bank"}, {"credit": "rebates:{business_unit}"}],
                }
            },
        }


class LopsidedPlugin:
    @hookimpl
    def gateway_ledger_rules(self) -> dict[str, Any]:
        return {"events": {"bonus": {"amounts": ["amount"], "legs": [{"credit": "suspense"}]}}}


def test_a_plugin_adds_rules_for_its_event_kinds() -> None:
    rules = load_ledger(load_settings(env={}), Plugins(load_entry_points=False, extra=[RebatePlugin()]).ledger_rules())
    assert rules is not None
    entry = rules.event("rebate", currency="EUR", amounts={"amount": 700}, business_unit="erp", adapter="card")
    assert [(p.account, p.amount) for p in entry.check().postings] == [
        ("partner:card:bank", 700),
        ("rebates:erp", -700),
    ]
    assert rules.account_info("rebates:erp") == ("income", "erp")


def test_a_plugin_rule_that_could_not_balance_stops_the_start() -> None:
    plugins = Plugins(load_entry_points=False, extra=[LopsidedPlugin()])
    with pytest.raises(LedgerRulesError, match=r"plugin rules #1: events\.bonus\.legs: debits and credits differ"):
        load_ledger(load_settings(env={}), plugins.ledger_rules())


def test_the_ledger_can_be_turned_off() -> None:
    assert load_ledger(load_settings(env={}).with_overrides(ledger__enabled=False)) is None
