"""``gateway demo``: gateway and simulators in-process on a throw-away database (``gateway.devtools.demo``)."""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping
from typing import Any

from gateway.cli.common import Subparsers, command, console, load, positive, table
from gateway.devtools.demo import run_demo

__all__ = ["print_summary", "register"]


def print_summary(summary: Mapping[str, Any]) -> None:
    """The demo's result as tables: statuses expected and reached, then the same per adapter."""
    out = console()
    statuses = sorted(set(summary["expected"]) | set(summary["by_status"]))
    out.print(f"gateway demo: {summary['sent']} instructions in {summary['seconds']} s")
    totals = table("final statuses", "status", "expected", "reached", numbers=("expected", "reached"))
    for status in statuses:
        totals.add_row(status, str(summary["expected"].get(status, 0)), str(summary["by_status"].get(status, 0)))
    out.print(totals)
    by_adapter = table("reached, by adapter", "adapter", *statuses, names=("adapter",), numbers=statuses)
    for adapter, counts in summary["by_adapter"].items():
        label = "none (no route)" if adapter == "none" else adapter
        by_adapter.add_row(label, *(str(counts.get(status, 0)) for status in statuses))
    out.print(by_adapter)
    receipts = summary.get("receipts") or {}
    if receipts.get("sent"):
        reached = ", ".join(f"{state} {n}" for state, n in receipts["by_status"].items())
        out.print(
            f"money in: {receipts['sent']} transfers on the bank simulator, {receipts['statements']} statements"
            f" fetched; receipts: {reached or 'none'}"
        )
    ledger = summary.get("ledger")
    if ledger:
        transit = ", ".join(f"{a} {c} {v}" for a, cur in ledger["in_transit"].items() for c, v in cur.items())
        out.print(
            f"ledger: {ledger['entries']} entries, {'balanced' if ledger['balanced'] else '[red]UNBALANCED[/]'}, "
            f"audit chains {'intact' if ledger['audit_intact'] else '[red]BROKEN[/]'}; in transit: {transit or 'none'}"
        )
    if summary["ok"]:
        out.print("[green]every instruction reached its predicted status[/]")
    else:
        out.print(f"[red]{summary['mismatched']} mismatched, {summary['lost']} lost[/]")


async def demo_command(args: argparse.Namespace) -> int:
    """``gateway demo``: exit 0 when every instruction reached its predicted status, 1 otherwise."""
    summary = await run_demo(load(args), count=args.count, seed=args.seed, quiet=args.json)
    if args.json:
        print(json.dumps(summary))
    else:
        print_summary(summary)
    return 0 if summary["ok"] else 1


def register(subparsers: Subparsers) -> None:
    p = command(subparsers, "demo", demo_command, help="run gateway + simulators in-process on a throw-away database")
    p.add_argument("--count", type=positive, default=50, help="instructions to send (default 50)")
    p.add_argument("--seed", type=int, default=7, help="random seed for the generated instructions")
    p.add_argument("--json", action="store_true", help="print one JSON summary object")
