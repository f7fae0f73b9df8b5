"""Routing: rules, capabilities, health (circuit breaker), exclusions, and the routing file's checks."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any, Self

import pytest

from gateway.dispatch.routing import CircuitBreaker, Router, RoutingRule, load_routing
from gateway.domain.accounts import IbanAccount, Party, UsAccount, WalletAccount
from gateway.domain.money import Money
from gateway.errors import ConfigError
from gateway.partners.adapter import Adapter, AdapterContext, Capabilities, PaymentOrder, StatusUpdate, SubmitResult


def _adapter(name: str, caps: Capabilities) -> Adapter:
    class Fake(Adapter):
        capabilities = caps

        @classmethod
        def from_settings(cls, settings: Mapping[str, Any], context: AdapterContext) -> Self:
            return cls()

        async def submit(self, order: PaymentOrder) -> SubmitResult:
            raise NotImplementedError

        async def poll(self, order: PaymentOrder) -> StatusUpdate | None:
            return None

        def parse_callback(self, headers: Mapping[str, str], body: bytes) -> list[StatusUpdate]:
            return []

    Fake.name = name
    return Fake()


ADAPTERS = {
    "bank": _adapter("bank", Capabilities(currencies=frozenset({"EUR"}), account_kinds=frozenset({"iban"}))),
    "ach": _adapter("ach", Capabilities(currencies=frozenset({"USD"}), account_kinds=frozenset({"us"}))),
    "rtp": _adapter("rtp", Capabilities(currencies=frozenset({"USD"}), account_kinds=frozenset({"us"}), instant=True)),
    "card": _adapter("card", Capabilities(account_kinds=frozenset({"wallet"}), max_amount=None)),
}


def order(
    currency: str = "EUR", account: Any = None, urgency: str = "standard", amount: str = "100.00"
) -> PaymentOrder:
    account = account or IbanAccount("DE89370400440532013000")
    party = Party("Debtor", account)
    return PaymentOrder(
        id="ins_1",
        business_unit="erp",
        reference="R1",
        type="credit_transfer",
        money=Money(amount, currency),
        debtor=party,
        creditor=Party("Creditor", account),
        urgency=urgency,
        requested_execution_date=date(2026, 11, 27),
    )


US = UsAccount("123456789", "021000021")
RULES = [
    RoutingRule("instant-usd", ("rtp",), currencies=frozenset({"USD"}), urgency="instant"),
    RoutingRule("us", ("ach", "rtp"), currencies=frozenset({"USD"}), account_kinds=frozenset({"us"})),
    RoutingRule("big-eur", ("bank",), currencies=frozenset({"EUR"}), amount_min=Decimal("1000")),
]


def test_first_matching_rule_gives_the_partner_list() -> None:
    router = Router(RULES)
    standard = router.decide(order("USD", US), ADAPTERS, today=date(2026, 11, 26))
    instant = router.decide(order("USD", US, urgency="instant"), ADAPTERS, today=date(2026, 11, 26))
    assert (standard.adapter, standard.rule) == ("ach", "us")
    assert (instant.adapter, instant.rule) == ("rtp", "instant-usd")
    assert "by rule us" in standard.reason


def test_capabilities_filter_the_preferred_list_and_say_why() -> None:
    router = Router([RoutingRule("wrong", ("bank", "ach"), currencies=frozenset({"USD"}))])
    decision = router.decide(order("USD", US), ADAPTERS)
    assert decision.adapter == "ach"
    assert decision.skipped == {"bank": "currency USD not supported"}


def test_no_rule_means_any_capable_adapter_by_name() -> None:
    decision = Router(RULES).decide(order("EUR", WalletAccount("wal_123")), ADAPTERS)
    assert (decision.adapter, decision.rule) == ("card", None)


def test_no_capable_adapter_is_a_rejection_with_reasons() -> None:
    decision = Router(RULES).decide(order("JPY", IbanAccount("DE89370400440532013000"), amount="5"), ADAPTERS)
    assert decision.adapter is None and not decision.wait
    assert decision.skipped["bank"] == "currency JPY not supported"


def test_partner_that_refused_before_is_excluded() -> None:
    decision = Router(RULES).decide(order("USD", US), ADAPTERS, exclude={"ach"})
    assert decision.adapter == "rtp"
    assert "refused this payment before" in decision.skipped["ach"]


def test_forced_channel_must_be_able_to_carry_the_payment() -> None:
    router = Router(RULES)
    assert router.decide(order("USD", US), ADAPTERS, channel="rtp").adapter == "rtp"
    refused = router.decide(order("USD", US), ADAPTERS, channel="bank")
    assert refused.adapter is None and refused.skipped == {"bank": "currency USD not supported"}


def test_circuit_opens_after_consecutive_failures_then_half_opens_for_one_probe() -> None:
    now = [0.0]
    breaker = CircuitBreaker(failure_threshold=3, open_seconds=10, clock=lambda: now[0])
    for _ in range(2):
        breaker.record_failure("ach")
    assert breaker.state("ach") == "closed"
    breaker.record_failure("ach")
    assert breaker.state("ach") == "open" and not breaker.allows("ach")
    router = Router(RULES, breaker)
    decision = router.decide(order("USD", US), ADAPTERS)
    assert decision.adapter == "rtp" and decision.skipped["ach"] == "circuit open"
    now[0] = 11
    assert breaker.state("ach") == "half-open"
    assert breaker.allows("ach") and not breaker.allows("ach")  # one probe at a time
    breaker.record_failure("ach")  # the probe failed: open again
    assert breaker.state("ach") == "open"
    now[0] = 22
    assert breaker.allows("ach")
    breaker.record_success("ach")
    assert breaker.state("ach") == "closed"


def test_all_eligible_partners_unhealthy_means_wait_not_reject() -> None:
    breaker = CircuitBreaker(failure_threshold=1, open_seconds=60)
    breaker.record_failure("ach")
    breaker.record_failure("rtp")
    decision = Router(RULES, breaker).decide(order("USD", US), ADAPTERS)
    assert decision.adapter is None and decision.wait
    assert "waiting" in decision.reason


def test_shipped_routing_file_loads() -> None:
    from gateway.config import load_settings
    from gateway.plugins.manager import Plugins

    settings = load_settings(env={})
    router = load_routing(settings.routing_file, installed=Plugins().adapter_classes())
    assert router.rules and all(rule.partners for rule in router.rules)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("rules:\n  - name: a\n    partners: [nobank]\n", "rules.0.partners.0: unknown adapter 'nobank'"),
        ("rules:\n  - name: a\n    partners: [bank]\n    match: {currency: [EUR]}\n", "rules.0.match"),
        ("rules:\n  - partners: [bank]\n", "'name' is a required property"),
        ("rules: [\n", "not valid YAML"),
        ("rules:\n  - {name: a, partners: [bank]}\n  - {name: a, partners: [bank]}\n", "unique"),
    ],
)
def test_bad_routing_file_fails_at_start_with_the_place_named(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "routing.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("(", r"\(")):
        load_routing(path, installed={"bank": object})  # type: ignore[dict-item]
