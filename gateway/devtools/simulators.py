"""Start the partner simulators that installed plugins ship, each on its pre-bound socket."""

from __future__ import annotations

import socket
from collections.abc import Mapping
from typing import Any

from gateway.api.server import RunningApp, start_app
from gateway.errors import ConfigError
from gateway.plugins.manager import Plugins

__all__ = ["start_simulators"]


async def start_simulators(
    plugins: Plugins, simulators: Mapping[str, Mapping[str, Any]], socks: Mapping[str, socket.socket]
) -> dict[str, RunningApp]:
    """Start every configured simulator on its pre-bound socket."""
    factories = plugins.simulator_factories()
    running: dict[str, RunningApp] = {}
    for name, cfg in simulators.items():
        factory = factories.get(name)
        if factory is None:
            raise ConfigError(f"simulators.{name}: no simulator of that name is installed ({', '.join(factories)})")
        settings = {k: v for k, v in cfg.items() if k not in ("host", "port")}
        running[name] = await start_app(factory(settings), socks[name])
    return running
