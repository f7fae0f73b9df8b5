"""A test-only adapter whose callback parser fails unexpectedly: the callback metric must still count it.

The card acquirer adapter under another name, with ``parse_callback`` raising
``RuntimeError`` (a bug, not a refusal). Registered only by the test that needs it.
"""

from __future__ import annotations

from collections.abc import Mapping

from gateway.partners.adapter import Adapter, StatusUpdate
from gateway.plugins.hookspecs import hookimpl
from gateway_adapters.card_acquirer.adapter import CardAcquirerAdapter


class CrashingCallbacks(CardAcquirerAdapter):
    name = "crashing_callbacks"

    def parse_callback(self, headers: Mapping[str, str], body: bytes) -> list[StatusUpdate]:
        raise RuntimeError("a bug in the adapter")


@hookimpl
def gateway_adapter_classes() -> list[type[Adapter]]:
    return [CrashingCallbacks]
