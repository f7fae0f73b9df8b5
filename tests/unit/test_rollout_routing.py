"""Staged rollout in routing: off and shadow skip the partner; a canary takes a deterministic share."""

from __future__ import annotations

import dataclasses

import pytest

from gateway.dispatch.routing import Router, RoutingRule
from gateway.domain.accounts import UsAccount
from gateway.store.rollout import RolloutMode, canary_takes, parse_mode
from tests.unit.test_routing import ADAPTERS, order

US = UsAccount("000123456789", "021000021")
RULES = [RoutingRule("usd", ("rtp", "ach"))]


def usd(reference: str = "R1") -> object:
    return dataclasses.replace(order("USD", US), reference=reference)


def test_no_mode_and_live_route_as_before() -> None:
    router = Router(RULES)
    assert router.decide(usd(), ADAPTERS).adapter == "rtp"
    assert router.decide(usd(), ADAPTERS, rollout={"rtp": RolloutMode("live")}).adapter == "rtp"


@pytest.mark.parametrize("mode", ["off", "shadow"])
def test_off_and_shadow_pass_the_partner_over_with_the_reason(mode: str) -> None:
    decision = Router(RULES).decide(usd(), ADAPTERS, rollout={"rtp": RolloutMode(mode)})
    assert decision.adapter == "ach"
    assert decision.skipped == {"rtp": f"rollout {mode} for erp"}
    assert f"passed over rtp: rollout {mode} for erp" in decision.reason


def test_every_candidate_off_is_no_route_with_a_clear_reason() -> None:
    decision = Router(RULES).decide(usd(), ADAPTERS, rollout={"rtp": RolloutMode("off"), "ach": RolloutMode("off")})
    assert decision.adapter is None and not decision.wait
    assert decision.reason == (
        "no adapter can carry this payment: rule usd matched, and none of the candidates can "
        "(rtp: rollout off for erp; ach: rollout off for erp)"
    )


def test_an_explicit_channel_that_is_off_is_not_used() -> None:
    decision = Router(RULES).decide(usd(), ADAPTERS, channel="rtp", rollout={"rtp": RolloutMode("off")})
    assert decision.adapter is None and "rtp: rollout off for erp" in decision.reason


def test_canary_split_is_deterministic_and_close_to_its_percent() -> None:
    router = Router(RULES)
    canary = {"rtp": RolloutMode("canary", 20)}
    sides = {}
    for i in range(5000):
        ref = f"INV-{i:06d}"
        chosen = router.decide(usd(ref), ADAPTERS, rollout=canary).adapter
        again = router.decide(usd(ref), ADAPTERS, rollout=canary).adapter
        assert chosen == again  # same reference, same side
        assert chosen == ("rtp" if canary_takes(ref, 20) else "ach")
        sides[ref] = chosen
    share = sum(1 for a in sides.values() if a == "rtp") / len(sides)
    assert 0.18 < share < 0.22
    outside = next(r for r, a in sides.items() if a == "ach")
    skipped = router.decide(usd(outside), ADAPTERS, rollout=canary).skipped
    assert skipped == {"rtp": "rollout canary 20% for erp: this reference is outside the canary"}
    # a larger canary keeps everyone already inside it inside (the buckets are fixed per reference)
    assert all(canary_takes(r, 50) for r, a in sides.items() if a == "rtp")


@pytest.mark.parametrize(
    ("mode", "percent", "error"),
    [
        ("on", None, "mode must be one of off, shadow, canary, live, not 'on'"),
        ("canary", None, "canary needs --percent between 1 and 99"),
        ("canary", 0, "canary needs --percent between 1 and 99"),
        ("off", 10, "--percent applies only to canary, not to off"),
    ],
)
def test_parse_mode_says_what_to_fix(mode: str, percent: int | None, error: str) -> None:
    with pytest.raises(ValueError, match="^" + error.replace("-", "\\-") + "$"):
        parse_mode(mode, percent)
    assert str(parse_mode("canary", 5)) == "canary 5%"
