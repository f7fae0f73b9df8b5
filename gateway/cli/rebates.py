"""``gateway rebates …``: distributors' rebates per period, and their settlement (docs/credit-and-rebates.md).

``show`` lists a period's accruals with the final amount the settlement would post;
``settle`` posts the true-ups and nets each rebate against open receivables or pays
it out through normal intake, once (a second run changes nothing). A bad argument or
program file exits 2 with one line.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from gateway.cli.common import Subparsers, command, console, database, group, load, require_schema, table
from gateway.config import Settings
from gateway.contracts.registry import contracts
from gateway.domain.clock import system_clock
from gateway.domain.rebates import parse_period
from gateway.finance.rebates import lines, settle_period
from gateway.ledger.rules import load_ledger
from gateway.plugins.manager import Plugins
from gateway.store.codec import InstructionCodec
from gateway.store.encryption import FieldCipher, parse_key_ring
from gateway.store.intake import IntakeWriter
from gateway.store.journal import bind
from gateway.store.rebates import bind_programs, load_programs

__all__ = ["register"]


def _period(value: str) -> str:
    try:
        parse_period(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return value


def _print(views: list[dict[str, Any]], title: str, as_json: bool) -> None:
    if as_json:
        print(json.dumps({"items": views}))
        return
    shown = table(
        title,
        "program",
        "distributor",
        "cur",
        "volume",
        "rate",
        "accrued",
        "final",
        "true-up",
        "settlement",
        "state",
        names=("program", "distributor"),
        numbers=("volume", "accrued", "final", "true-up"),
    )
    for v in views:
        state = v.get("action") or ("settled" if v["settled"] else "open")
        shown.add_row(
            v["program"],
            v["distributor"],
            v["currency"],
            v["volume"],
            v["rate"] or "",
            v["accrued"],
            v["final"] or "",
            v["true_up"] or "",
            v["settlement"] or "(no program)",
            state,
        )
    console().print(shown)


async def _show(args: argparse.Namespace) -> int:
    settings = load(args)
    programs = load_programs(settings.rebates_file)
    async with database(settings) as engine:
        await require_schema(engine)
        views = await lines(engine, programs, args.period)
    _print(views, f"rebates {args.period}: {len(views)} rows", args.json)
    return 0


async def _settle(args: argparse.Namespace) -> int:
    settings: Settings = load(args)
    programs = load_programs(settings.rebates_file)
    async with database(settings) as engine:
        await require_schema(engine)
        bind(engine, load_ledger(settings, Plugins().ledger_rules()))
        bind_programs(engine, programs)
        # payout instructions store encrypted accounts: the keys are needed only when a program pays out
        payouts = any(p.settlement == "payout" for p in programs.values())
        codec = InstructionCodec(FieldCipher(parse_key_ring(settings.encryption_keys))) if payouts else None
        writer = IntakeWriter(engine)
        await writer.start()
        try:
            views = await settle_period(
                engine,
                programs,
                args.period,
                system_clock,
                contracts=contracts(),
                codec=codec,
                writer=writer,
                dry_run=args.dry_run,
            )
        finally:
            await writer.stop()
    done = sum(1 for v in views if v["action"] == "settled")
    word = "would settle" if args.dry_run else "settled"
    count = sum(1 for v in views if v["action"] == "would_settle") if args.dry_run else done
    _print(views, f"rebates {args.period}: {count} {word}", args.json)
    if not args.json:
        print(f"{count} rows {word}, {len(views) - count} unchanged", file=sys.stderr)
    return 0


def register(subparsers: Subparsers) -> None:
    """Add the ``rebates`` command group."""
    rebates = group(
        subparsers, "rebates", help="distributor rebates: accruals and settlement (docs/credit-and-rebates.md)"
    )
    p = command(rebates, "show", _show, help="a period's accruals and the final amounts the settlement would post")
    p.add_argument("--period", type=_period, required=True, help="YYYY-Qn (a quarter) or YYYY-MM (a month)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p = command(rebates, "settle", _settle, help="post the true-ups and credit or pay each rebate of a period, once")
    p.add_argument("--period", type=_period, required=True, help="YYYY-Qn (a quarter) or YYYY-MM (a month)")
    p.add_argument("--dry-run", action="store_true", help="show what would be posted; change nothing")
    p.add_argument("--json", action="store_true", help="print one JSON object")
