"""``gateway credit-lines …``: the credit the enterprise gives each distributor (docs/credit-and-rebates.md).

``set`` creates or changes a limit (what is used stays); ``show`` prints every line of a
distributor with what is used and available. A bad argument exits 2 with one line.
"""

from __future__ import annotations

import argparse
import json

from gateway.cli.common import Subparsers, UsageError, command, console, database, group, load, require_schema, table
from gateway.domain.clock import system_clock
from gateway.domain.errors import DomainError
from gateway.domain.money import Money
from gateway.domain.receivables import DISTRIBUTOR_RE
from gateway.store.creditlines import lines_of, set_line

__all__ = ["register"]


def _distributor(value: str) -> str:
    if not DISTRIBUTOR_RE.fullmatch(value):
        raise argparse.ArgumentTypeError("a distributor is 1-64 characters [A-Za-z0-9._-]")
    return value


def _print(distributor: str, views: list[dict], as_json: bool) -> None:
    if as_json:
        print(json.dumps({"distributor": distributor, "lines": views}))
        return
    shown = table(
        f"credit lines of {distributor}",
        "currency",
        "limit",
        "open receivables",
        "reserved",
        "available",
        numbers=("limit", "open receivables", "reserved", "available"),
    )
    for v in views:
        shown.add_row(
            v["currency"],
            v["limit"]["value"],
            v["open_receivables"]["value"],
            v["reserved"]["value"],
            v["available"]["value"],
        )
    console().print(shown)


async def _show(args: argparse.Namespace) -> int:
    settings = load(args)
    async with database(settings) as engine:
        await require_schema(engine)
        async with engine.connect() as conn:
            lines = await lines_of(conn, args.distributor)
    if not lines:
        raise UsageError(
            f"distributor {args.distributor} has no credit line; create one with `gateway credit-lines set`"
        )
    _print(args.distributor, [line.view() for line in lines], args.json)
    return 0


async def _set(args: argparse.Namespace) -> int:
    try:
        limit = Money(args.limit, args.currency)
    except DomainError as exc:
        raise UsageError(f"--limit/--currency: {exc.message}") from None
    settings = load(args)
    async with database(settings) as engine:
        await require_schema(engine)
        async with engine.begin() as conn:
            line = await set_line(conn, args.distributor, limit.currency, limit.minor, system_clock())
    _print(args.distributor, [line.view()], args.json)
    return 0


def register(subparsers: Subparsers) -> None:
    """Add the ``credit-lines`` command group."""
    lines = group(subparsers, "credit-lines", help="distributor credit lines (docs/credit-and-rebates.md)")
    p = command(lines, "show", _show, help="a distributor's lines: limit, used, available")
    p.add_argument("distributor", type=_distributor, help="the distributor")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p = command(lines, "set", _set, help="create or change a distributor's limit in one currency")
    p.add_argument("distributor", type=_distributor, help="the distributor")
    p.add_argument("--currency", required=True, help="ISO 4217 code, e.g. EUR")
    p.add_argument("--limit", required=True, help="decimal amount, e.g. 50000.00")
    p.add_argument("--json", action="store_true", help="print one JSON object")
