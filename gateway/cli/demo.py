"""``gateway demo``: gateway and simulators in-process on a throw-away database (``gateway.devtools.demo``)."""

from __future__ import annotations

import argparse
import json

from gateway.cli.common import Subparsers, command, load, positive
from gateway.devtools.demo import run_demo

__all__ = ["register"]


async def demo_command(args: argparse.Namespace) -> int:
    """``gateway demo``: exit 0 when every instruction reached its predicted status, 1 otherwise."""
    summary = await run_demo(load(args), count=args.count, seed=args.seed, quiet=args.json)
    if args.json:
        print(json.dumps(summary))
    return 0 if summary["ok"] else 1


def register(subparsers: Subparsers) -> None:
    p = command(subparsers, "demo", demo_command, help="run gateway + simulators in-process on a throw-away database")
    p.add_argument("--count", type=positive, default=50, help="instructions to send (default 50)")
    p.add_argument("--seed", type=int, default=7, help="random seed for the generated instructions")
    p.add_argument("--json", action="store_true", help="print one JSON summary object")
