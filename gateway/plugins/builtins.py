"""The gateway's own plugin: the built-in risk rules and the JetStream event sink, registered like any other."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gateway.plugins.markers import hookimpl
from gateway.plugins.sinks import EventSink, NatsJetStreamSink
from gateway.risk.rules import BUILTIN_RULES, Rule

__all__ = ["gateway_event_sinks", "gateway_risk_rules"]


@hookimpl
def gateway_risk_rules() -> list[type[Rule]]:
    """The built-in rules (``gateway.risk.rules.BUILTIN_RULES``)."""
    return list(BUILTIN_RULES)


@hookimpl
def gateway_event_sinks(config: Mapping[str, Any]) -> list[EventSink] | None:
    """The NATS JetStream sink, when ``event_sinks.nats_url`` is set."""
    sink = NatsJetStreamSink.from_config(config)
    return [sink] if sink is not None else None
