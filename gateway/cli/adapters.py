"""``gateway adapters``: what is installed, and a new adapter package to start from."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from gateway.cli.common import Subparsers, command, console, group, load, table
from gateway.devtools.scaffold import scaffold
from gateway.plugins.manager import ENTRY_POINT_GROUP, Plugins

__all__ = ["register"]


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


async def list_command(args: argparse.Namespace) -> int:
    """``gateway adapters list``: every installed adapter; a package that fails to import is listed, not fatal."""
    settings = load(args)
    plugins = Plugins(strict=False)
    classes = plugins.adapter_classes()
    sims = plugins.simulator_factories()
    enabled = settings.section("partners")
    rows: list[dict[str, Any]] = [
        {
            "name": name,
            "enabled": name in enabled,
            "simulator": name in sims,
            "module": cls.__module__,
            "capabilities": cls.capabilities.as_dict(),
        }
        for name, cls in classes.items()
    ]
    broken = [
        {"name": b.entry_point, "distribution": b.distribution, "error": b.error, "enabled": b.entry_point in enabled}
        for b in plugins.broken
    ]
    if args.json:
        print(json.dumps(rows + broken))
        return 0
    out = table(
        f"Installed adapters (entry point group {ENTRY_POINT_GROUP})",
        "name",
        "enabled",
        "simulator",
        "currencies",
        "accounts",
        "instant",
        names=("name",),
    )
    for r in rows:
        caps = r["capabilities"]
        out.add_row(
            r["name"],
            _yes(r["enabled"]),
            _yes(r["simulator"]),
            ",".join(caps["currencies"]) or "any",
            ",".join(caps["account_kinds"]),
            _yes(caps["instant"]),
        )
    for b in broken:
        out.add_row(b["name"], _yes(b["enabled"]), "?", "[red]fails to import[/]", "", "")
    console().print(out)
    return 0


async def new_command(args: argparse.Namespace) -> int:
    """``gateway adapters new``: scaffold a package with adapter, simulator and conformance test."""
    target = scaffold(args.name, args.dir)
    print(f"created {target}: `pip install -e {target}`, then `pytest {target}`", file=sys.stderr)
    return 0


def register(subparsers: Subparsers) -> None:
    adapters = group(subparsers, "adapters", help="adapters")
    p = command(adapters, "list", list_command, help="installed adapters and their capabilities")
    p.add_argument("--json", action="store_true", help="print one JSON list")
    p = command(
        adapters, "new", new_command, help="scaffold a new adapter package (adapter, simulator, conformance test)"
    )
    p.add_argument("name", help="adapter name, a lower_snake identifier (e.g. my_bank)")
    p.add_argument("--dir", help="directory to create (default: ./NAME-adapter)")
