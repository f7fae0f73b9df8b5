"""The gateway's own plugin: contributes the built-in risk rules, registered like any other plugin."""

from __future__ import annotations

from gateway.plugins.markers import hookimpl
from gateway.risk.rules import BUILTIN_RULES, Rule

__all__ = ["gateway_risk_rules"]


@hookimpl
def gateway_risk_rules() -> list[type[Rule]]:
    """The built-in rules (``gateway.risk.rules.BUILTIN_RULES``)."""
    return list(BUILTIN_RULES)
