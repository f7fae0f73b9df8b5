"""Instant payments adapter (RTP style: signed JSON, synchronous accept/reject), a pluggy plugin.

Registered through the ``gateway.adapters`` entry point like any third-party
adapter. Its simulator lives in ``gateway_simulators.instant_rtp`` and is
imported only when someone asks for it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from gateway.hookspecs import hookimpl
from gateway_adapters.instant_rtp.adapter import InstantRtpAdapter
from gateway_adapters.instant_rtp.statements import statement_formats

if TYPE_CHECKING:
    from aiohttp import web

    from gateway.adapter import Adapter
    from gateway.domain.statements import StatementFormat

__all__ = [
    "InstantRtpAdapter",
    "create_app",
    "gateway_adapter_classes",
    "gateway_simulators",
    "gateway_statement_formats",
]


def create_app(settings: Mapping[str, Any]) -> web.Application:
    """Build the instant payments simulator app (imported on first use, so the adapter stays light)."""
    from gateway_simulators.instant_rtp import create_app as _create_app

    return _create_app(settings)


@hookimpl
def gateway_adapter_classes() -> Sequence[type[Adapter]]:
    return [InstantRtpAdapter]


@hookimpl
def gateway_simulators() -> Mapping[str, Callable[[Mapping[str, Any]], web.Application]]:
    return {"instant_rtp": create_app}


@hookimpl
def gateway_statement_formats() -> Sequence[StatementFormat]:
    return statement_formats()
