"""``gateway qa``: a partner simulator plays a scenario against an in-process gateway (``gateway.devtools.qa``)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from gateway.cli.common import Subparsers, command, group, load, positive
from gateway.devtools.qa import run_qa

__all__ = ["register"]


async def run_command(args: argparse.Namespace) -> int:
    """``gateway qa run SCENARIO``: exit 0 when every instruction passed, 1 otherwise."""
    summary = await run_qa(
        load(args),
        args.scenario,
        count=args.count,
        seed=args.seed,
        partner=args.partner,
        junit=Path(args.junit) if args.junit else None,
        quiet=args.json,
    )
    if args.json:
        print(json.dumps(summary))
    return 0 if summary["ok"] else 1


def register(subparsers: Subparsers) -> None:
    qa = group(subparsers, "qa", help="QA runs against partner simulators")
    p = command(qa, "run", run_command, help="run a scenario against an in-process gateway; exit 1 unless all pass")
    p.add_argument("scenario", help="scenario YAML file, or the name of a shipped one (happy, flaky-network, ...)")
    p.add_argument("--count", type=positive, default=50, help="instructions to send (default 50)")
    p.add_argument("--seed", type=int, help="seed for every random choice (default: the scenario's)")
    p.add_argument("--partner", help="simulator to run (default: the scenario's partner)")
    p.add_argument("--junit", help="write a JUnit XML report (one testcase per instruction) to this file")
    p.add_argument("--json", action="store_true", help="print one JSON summary object")
