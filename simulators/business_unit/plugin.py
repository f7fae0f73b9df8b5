"""The business-unit simulator as a plugin (entry point ``business_unit`` in ``gateway.adapters``).

It ships a simulator and no adapter: ``gateway simulate business_unit`` finds it the way it
finds the partners' simulators.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from aiohttp import web

from gateway.hookspecs import hookimpl
from gateway_simulators.business_unit.app import create_app

__all__ = ["gateway_simulators"]


@hookimpl
def gateway_simulators() -> Mapping[str, Callable[[Mapping[str, Any]], web.Application]]:
    return {"business_unit": create_app}
