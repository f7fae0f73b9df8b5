"""Choose the adapter for an instruction.

For now: a forced ``channel`` wins if that adapter can carry the payment;
otherwise the first enabled adapter (by name) whose declared capabilities accept
it. Every decision says which adapters were skipped and why, and is recorded on
the instruction's events.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from gateway.adapter import Adapter, PaymentOrder

__all__ = ["RouteDecision", "choose_adapter"]


@dataclass(frozen=True)
class RouteDecision:
    adapter: str | None
    skipped: Mapping[str, str] = field(default_factory=dict)

    @property
    def reason(self) -> str:
        skipped = "; ".join(f"{n}: {why}" for n, why in self.skipped.items())
        if self.adapter:
            return f"routed to {self.adapter}" + (f" (skipped {skipped})" if skipped else "")
        return f"no adapter can carry this payment ({skipped or 'none enabled'})"


def choose_adapter(order: PaymentOrder, adapters: Mapping[str, Adapter], channel: str | None = None) -> RouteDecision:
    if channel:
        adapter = adapters.get(channel)
        if adapter is None:
            return RouteDecision(None, {channel: "channel is not an enabled adapter"})
        refusal = adapter.capabilities.refusal(order)
        return RouteDecision(None, {channel: refusal}) if refusal else RouteDecision(channel)
    skipped: dict[str, str] = {}
    for name in sorted(adapters):
        refusal = adapters[name].capabilities.refusal(order)
        if refusal is None:
            return RouteDecision(name, skipped)
        skipped[name] = refusal
    return RouteDecision(None, skipped)
