"""The kit's ``faults`` check: what it fails, what it only notes, and that it leaves the simulator as it was."""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from typing import Any

import pytest
from aiohttp import web

from gateway.devtools.conformance import CHECKS, open_rig, run_check
from gateway.domain.status import Status
from gateway.errors import OutcomeUnknownError, TransientPartnerError
from gateway.partners.adapter import Adapter, PaymentOrder, SubmitResult
from gateway.plugins.hookspecs import hookimpl
from gateway.plugins.manager import Plugins
from gateway_adapters.instant_rtp import InstantRtpAdapter, create_app


class TrustingRtp(InstantRtpAdapter):
    """Takes an unreadable answer for a pending payment instead of an unknown outcome."""

    name = "trusting_rtp"

    async def submit(self, order: PaymentOrder) -> SubmitResult:
        try:
            return await super().submit(order)
        except OutcomeUnknownError:
            return SubmitResult(status=Status.SUBMITTED, partner_reference="")


class ForgetfulRtp(InstantRtpAdapter):
    """Drops the partner's Retry-After when throttled (allowed, but noted)."""

    name = "forgetful_rtp"

    async def submit(self, order: PaymentOrder) -> SubmitResult:
        try:
            return await super().submit(order)
        except OutcomeUnknownError:
            raise
        except TransientPartnerError as exc:
            raise TransientPartnerError(str(exc)) from None


@hookimpl
def gateway_adapter_classes() -> list[type[Adapter]]:
    return [TrustingRtp, ForgetfulRtp]


@hookimpl
def gateway_simulators() -> Mapping[str, Callable[[Mapping[str, Any]], web.Application]]:
    return {"trusting_rtp": create_app, "forgetful_rtp": create_app}


@pytest.fixture
def plugins() -> Plugins:
    return Plugins(extra=[sys.modules[__name__]])


def test_faults_is_a_kit_check() -> None:
    assert "faults" in CHECKS


async def test_a_result_built_from_a_broken_answer_fails(plugins: Plugins) -> None:
    with pytest.raises(AssertionError, match=r"under fault hang .* returned a SubmitResult \(submitted"):
        await run_check("trusting_rtp", "faults", plugins=plugins)


async def test_a_throttle_without_retry_after_is_noted(plugins: Plugins) -> None:
    notes = await run_check("forgetful_rtp", "faults", plugins=plugins)

    assert notes == ["http_429: TransientPartnerError without retry_after (the partner sent Retry-After)"]


async def test_the_simulator_gets_its_own_scenario_back() -> None:
    async with open_rig("instant_rtp") as rig:
        engine = next(rig.simulator[key] for key in rig.simulator if hasattr(rig.simulator[key], "use_scenario"))
        before = engine.scenario

        await CHECKS["faults"](rig)

        assert engine.scenario is before
        assert {e.faults[0] for e in engine.journal.select({"kind": "submit"}) if e.faults} >= {
            "hang",
            "reset",
            "truncated_body",
            "wrong_content_type",
            "wrong_amount",
            "wrong_currency",
            "http_error",
            "unknown_status",
            "latency",
        }
