"""``gateway rollout``: a staged rollout mode per business unit and partner (docs/go-live.md).

``status`` lists the stored modes (a business unit and partner with none is ``live``);
``set BU PARTNER MODE [--percent P]`` changes one and records who, when, from and to;
``compare --business-unit BU --legacy-feed FILE`` sets shadow outcomes against the legacy
system's statuses (agree, disagree, every disagreement listed; a CSV with ``--csv``).
Rolling back is one command (``gateway rollout set BU PARTNER off``): payments already
routed keep their route, new ones follow the new mode.
"""

from __future__ import annotations

import argparse
import csv
import getpass
import json
from pathlib import Path

from sqlalchemy import select

from gateway.cli.common import Subparsers, UsageError, command, console, database, group, load, require_schema, table
from gateway.dispatch.shadow import Comparison, compare
from gateway.domain.clock import system_clock
from gateway.partners.legacy_feed import LegacyFeed
from gateway.plugins.manager import Plugins
from gateway.store.rollout import DEFAULT, MODES, parse_mode, set_mode, table_modes
from gateway.store.shadow import read_outcomes
from gateway.store.tables import business_units

__all__ = ["register"]


async def status_command(args: argparse.Namespace) -> int:
    """``gateway rollout status``: every stored mode; anything not listed is live."""
    settings = load(args)
    async with database(settings) as engine:
        await require_schema(engine)
        async with engine.connect() as conn:
            stored = await table_modes(conn)
    rows = [
        {
            "business_unit": bu,
            "partner": partner,
            "mode": mode.mode,
            "percent": mode.percent,
            "updated_at": at.isoformat(),
            "updated_by": who,
        }
        for (bu, partner), (mode, at, who) in stored.items()
    ]
    if args.json:
        print(json.dumps({"default": DEFAULT.mode, "modes": rows}))
        return 0
    shown = table(
        "rollout modes (a business unit and partner not listed is live)",
        "business unit",
        "partner",
        "mode",
        "changed",
        names=("business unit", "partner"),
    )
    for (bu, partner), (mode, at, who) in stored.items():
        shown.add_row(bu, partner, str(mode), f"{at:%Y-%m-%d %H:%M} by {who}")
    console().print(shown)
    return 0


async def set_command(args: argparse.Namespace) -> int:
    """``gateway rollout set BU PARTNER MODE [--percent P]``: one change, audited."""
    settings = load(args)
    try:
        percent = None if args.percent is None else int(args.percent)
    except ValueError:
        raise UsageError(f"--percent must be a whole number, not {args.percent!r}") from None
    try:
        mode = parse_mode(args.mode, percent)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    installed = Plugins(strict=False).adapter_classes()
    if args.partner not in installed:
        raise UsageError(f"no adapter named {args.partner!r} (installed: {', '.join(installed) or 'none'})")
    async with database(settings) as engine:
        await require_schema(engine)
        async with engine.connect() as conn:
            known = (
                await conn.execute(select(business_units.c.id).where(business_units.c.name == args.business_unit))
            ).scalar_one_or_none()
        if known is None:
            raise UsageError(f"no business unit named {args.business_unit!r}")
        before, after = await set_mode(
            engine, args.business_unit, args.partner, mode, f"cli:{getpass.getuser()}", system_clock()
        )
    print(f"{args.business_unit}/{args.partner}: {before} -> {after} (new payments only; routed ones keep their route)")
    return 0


_CSV_COLUMNS = (
    "business_unit",
    "reference",
    "instruction_id",
    "partner",
    "shadow_outcome",
    "expected_status",
    "legacy_status",
    "verdict",
    "detail",
)


async def compare_command(args: argparse.Namespace) -> int:
    """``gateway rollout compare``: shadow outcomes against the legacy feed; exit 1 when any disagree."""
    settings = load(args)
    for name in args.legacy_feed:
        if not Path(name).is_file():
            raise UsageError(f"no legacy status feed {name}")
    feed = LegacyFeed.read(Path(name) for name in args.legacy_feed)  # ConfigError: exit 2, one line
    async with database(settings) as engine:
        await require_schema(engine)
        async with engine.connect() as conn:
            known = (
                await conn.execute(select(business_units.c.id).where(business_units.c.name == args.business_unit))
            ).scalar_one_or_none()
            if known is None:
                raise UsageError(f"no business unit named {args.business_unit!r}")
            outcomes = await read_outcomes(conn, args.business_unit, args.partner)
    result = compare(args.business_unit, args.partner, outcomes, feed)
    if args.csv:
        _write_csv(Path(args.csv), result)
    if args.json:
        print(
            json.dumps(
                {
                    "business_unit": result.business_unit,
                    "partner": result.partner,
                    "counts": result.counts,
                    "disagreements": [p.as_dict() for p in result.disagreements],
                    "payments": [p.as_dict() for p in result.payments],
                }
            )
        )
    else:
        _show_comparison(result)
    return 1 if result.disagreements else 0


def _write_csv(path: Path, result: Comparison) -> None:
    try:
        with path.open("w", newline="", encoding="utf-8") as f:
            out = csv.DictWriter(f, fieldnames=_CSV_COLUMNS)
            out.writeheader()
            out.writerows(p.as_dict() for p in result.payments)
    except OSError as exc:
        raise UsageError(f"cannot write --csv {path}: {exc.strerror or exc}") from None


def _show_comparison(result: Comparison) -> None:
    out = console()
    scope = result.business_unit + (f" / {result.partner}" if result.partner else "")
    counts = table(f"shadow vs legacy for {scope}", "verdict", "payments", names=("verdict",), numbers=("payments",))
    for verdict, n in result.counts.items():
        counts.add_row(verdict, f"{n:,}")
    out.print(counts)
    if not result.disagreements:
        out.print("no disagreement" if result.payments else "no shadow outcome recorded for this business unit")
        return
    listing = table(
        "disagreements",
        "reference",
        "partner",
        "shadow",
        "expected",
        "legacy",
        "detail",
        names=("reference", "partner"),
    )
    for p in result.disagreements:
        listing.add_row(
            p.reference, p.partner, p.shadow_outcome, p.expected_status or "", p.legacy_status or "", p.detail or ""
        )
    out.print(listing)


def register(subparsers: Subparsers) -> None:
    commands = group(subparsers, "rollout", help="staged rollout: off | shadow | canary P%% | live per partner")
    p = command(commands, "status", status_command, help="the stored modes (anything not listed is live)")
    p.add_argument("--json", action="store_true", help="the modes as JSON")
    p = command(commands, "set", set_command, help="set a business unit and partner's mode (audited)")
    p.add_argument("business_unit", metavar="BU")
    p.add_argument("partner", metavar="PARTNER")
    p.add_argument("mode", metavar="MODE", help=" | ".join(MODES))
    p.add_argument("--percent", metavar="P", help="canary only: 1..99")
    p = command(
        commands, "compare", compare_command, help="shadow outcomes against the legacy system's statuses (report)"
    )
    p.add_argument("--business-unit", required=True, metavar="BU", help="whose shadowed payments to compare")
    p.add_argument("--partner", metavar="PARTNER", help="only this shadow partner")
    p.add_argument(
        "--legacy-feed",
        required=True,
        action="append",
        metavar="FILE",
        help="the legacy status feed (CSV: reference, status, …; docs/go-live.md); repeat for several files",
    )
    p.add_argument("--csv", metavar="FILE", help="write every compared payment and its verdict as CSV")
    p.add_argument("--json", action="store_true", help="the report as JSON")
