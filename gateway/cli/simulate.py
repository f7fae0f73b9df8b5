"""``gateway simulate``: serve one partner simulator, e.g. for a gateway running elsewhere."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from gateway.api.server import bind, start_app
from gateway.cli.common import Subparsers, UsageError, command, load, wait_for_signal
from gateway.plugins.manager import Plugins

__all__ = ["register"]


async def simulate_command(args: argparse.Namespace) -> int:
    """``gateway simulate NAME``: run until SIGINT or SIGTERM."""
    settings = load(args)
    factories = Plugins().simulator_factories()
    if args.name not in factories:
        raise UsageError(f"no simulator named {args.name!r}; installed: {', '.join(factories) or 'none'}")
    cfg: dict[str, Any] = dict(settings.section("simulators").get(args.name, {}))
    host = args.host or cfg.pop("host", "127.0.0.1")
    port = args.port if args.port is not None else int(cfg.pop("port", 0))
    cfg.pop("host", None)
    cfg.pop("port", None)
    if args.scenario:
        cfg["scenario"] = args.scenario
    if args.seed is not None:
        cfg["seed"] = args.seed
    app = await start_app(factories[args.name](cfg), bind(host, port))
    print(f"simulator {args.name} listening on {app.url}", file=sys.stderr, flush=True)
    try:
        await wait_for_signal()
    finally:
        await app.stop()
    return 0


def register(subparsers: Subparsers) -> None:
    p = command(subparsers, "simulate", simulate_command, help="serve one partner simulator")
    p.add_argument("name", help="simulator name (see `gateway adapters list`), or business_unit (a webhook receiver)")
    p.add_argument("--host")
    p.add_argument("--port", type=int)
    p.add_argument("--scenario", help="scenario YAML file, or the name of a shipped one (happy, flaky-network, ...)")
    p.add_argument("--seed", type=int, help="seed for every random choice (default: the scenario's)")
