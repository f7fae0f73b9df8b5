"""instant_rtp adapter (work in progress)."""

from gateway.hookspecs import hookimpl


@hookimpl
def gateway_adapter_classes() -> list[type]:
    return []
