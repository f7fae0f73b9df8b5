"""Shadow mode's guards: a sandbox is never the live partner, the hand-off must be enabled; rehearsal outcomes."""

from __future__ import annotations

import pytest

from gateway.adapter import AdapterContext
from gateway.cli.golive import _rollout as golive_rollout_check
from gateway.dispatch.shadow import ShadowRunner, agrees
from gateway.domain.clock import system_clock
from gateway.domain.status import Status
from gateway.errors import ConfigError
from gateway.plugins.manager import Plugins
from gateway.runtime import Runtime
from gateway.store.rollout import RolloutMode, set_mode
from tests.support import Database, make_settings
from tests.unit.test_routing import order

LIVE_RTP = "http://127.0.0.1:8704"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {
                "rollout__shadow_sandboxes": {
                    "instant_rtp": {"base_url": LIVE_RTP, "request_secret": "s" * 12, "response_secret": "r" * 12}
                }
            },
            "rollout.shadow_sandboxes.instant_rtp.base_url: the same as partners.instant_rtp.base_url",
        ),
        (
            {
                "rollout__shadow_sandboxes": {
                    "ach_nacha": {"base_url": "http://127.0.0.1:9999", "api_key": "k" * 12, "callback_secret": "c" * 12}
                }
            },
            "rollout.shadow_sandboxes.ach_nacha.spool_dir: the same as partners.ach_nacha.spool_dir",
        ),
        (
            {"rollout__shadow_sandboxes": {"instant_rtp": {"base_url": "http://127.0.0.1:9999"}}},
            "rollout.shadow_sandboxes.instant_rtp: 'request_secret' is a required property",
        ),
        (
            {"rollout__shadow_sandboxes": {"legacy_file": {"base_url": "http://127.0.0.1:9999"}}},
            "rollout.shadow_sandboxes.legacy_file: legacy_file is not an enabled adapter",
        ),
        ({"rollout__handoff_adapter": "legacy_file"}, "rollout.handoff_adapter: legacy_file is not enabled"),
        ({"rollout__handoff_adapter": "nope"}, "rollout.handoff_adapter: unknown adapter 'nope'"),
    ],
)
async def test_bad_rollout_settings_stop_the_gateway_with_the_key_named(
    database: Database, overrides: dict[str, object], message: str
) -> None:
    settings = make_settings(database, partners__instant_rtp__base_url=LIVE_RTP, **overrides)
    engine = database.engine()
    try:
        with pytest.raises(ConfigError) as caught:
            Runtime(settings, engine=engine)
        assert message in caught.value.message
    finally:
        await engine.dispose()


async def test_an_order_the_partner_format_cannot_hold_is_recorded_invalid_and_expected_to_fail() -> None:
    card = (
        Plugins()
        .adapter_classes()["card_acquirer"]
        .from_settings(
            {"base_url": "http://127.0.0.1:9", "api_key": "sk_test_unit_key", "webhook_secret": "whsec_unit_secret"},
            AdapterContext("http://127.0.0.1:9/cb"),
        )
    )
    runner = ShadowRunner({"card_acquirer": card}, {}, clock=system_clock)
    iban = order()  # an IBAN account: the acquirer pays wallets only
    outcome = await runner.rehearse(iban, "card_acquirer")
    assert (outcome.outcome, outcome.expected_status, outcome.reason_code) == ("invalid", "failed", "REROUTE")
    assert "DE89370400440532013000" not in (outcome.detail or "")
    missing = await runner.rehearse(iban, "iso20022_bank")
    assert (missing.outcome, missing.expected_status) == ("not_rendered", None)


@pytest.mark.parametrize(
    ("legacy", "expected", "agree"),
    [
        (Status.SETTLED, "settled", True),
        (Status.SETTLED, "submitted", True),
        (Status.SETTLED, "rejected", False),
        (Status.REJECTED, "failed", True),
        (Status.REJECTED, "settled", False),
        (Status.RETURNED, "settled", True),
        (Status.FAILED, None, False),
    ],
)
def test_what_counts_as_agreeing(legacy: Status, expected: str | None, agree: bool) -> None:
    assert agrees(legacy, expected) is agree


async def test_the_golive_checklist_does_not_ask_a_rollout_mode_for_the_handoff(database: Database) -> None:
    settings = make_settings(
        database,
        partners={"legacy_file": {"dir": "/nonexistent"}, "instant_rtp": {"base_url": LIVE_RTP}},
        rollout__handoff_adapter="legacy_file",
    )
    engine = database.engine()
    try:
        await set_mode(engine, "erp", "instant_rtp", RolloutMode("shadow"), "alice", system_clock())
        async with engine.connect() as conn:
            check = await golive_rollout_check(conn, settings, "erp")
    finally:
        await engine.dispose()
    assert (check.state, check.detail) == ("pass", "instant_rtp: shadow")
