"""A test-only adapter that refuses every payment with "route elsewhere" (never executes it).

Registered only by the tests that need it (``start_gateway(..., extra_plugins=[reroute_bank])``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self

from gateway.errors import PermanentPartnerError, SignatureError
from gateway.partners.adapter import Adapter, AdapterContext, Capabilities, PaymentOrder, StatusUpdate, SubmitResult
from gateway.plugins.hookspecs import hookimpl

SUBMITTED: list[str] = []


class RerouteBank(Adapter):
    name = "reroute_bank"
    capabilities = Capabilities(currencies=frozenset({"EUR"}), account_kinds=frozenset({"iban"}))

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any], context: AdapterContext) -> Self:
        return cls()

    async def submit(self, order: PaymentOrder) -> SubmitResult:
        SUBMITTED.append(order.id)
        raise PermanentPartnerError("processing unavailable for this corridor", reason_code="REROUTE")

    async def poll(self, order: PaymentOrder) -> StatusUpdate | None:
        return None

    def parse_callback(self, headers: Mapping[str, str], body: bytes) -> list[StatusUpdate]:
        raise SignatureError("this test bank sends no callbacks")


@hookimpl
def gateway_adapter_classes() -> list[type[Adapter]]:
    return [RerouteBank]
