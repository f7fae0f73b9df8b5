"""``gateway rollout``: a staged rollout mode per business unit and partner (docs/go-live.md).

``status`` lists the stored modes (a business unit and partner with none is ``live``);
``set BU PARTNER MODE [--percent P]`` changes one and records who, when, from and to.
Rolling back is one command (``gateway rollout set BU PARTNER off``): payments already
routed keep their route, new ones follow the new mode.
"""

from __future__ import annotations

import argparse
import getpass
import json

from sqlalchemy import select

from gateway.cli.common import Subparsers, UsageError, command, console, database, group, load, require_schema, table
from gateway.domain.clock import system_clock
from gateway.plugins.manager import Plugins
from gateway.store.rollout import DEFAULT, MODES, parse_mode, set_mode, table_modes
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


def register(subparsers: Subparsers) -> None:
    commands = group(subparsers, "rollout", help="staged rollout: off | shadow | canary P% | live per partner")
    p = command(commands, "status", status_command, help="the stored modes (anything not listed is live)")
    p.add_argument("--json", action="store_true", help="the modes as JSON")
    p = command(commands, "set", set_command, help="set a business unit and partner's mode (audited)")
    p.add_argument("business_unit", metavar="BU")
    p.add_argument("partner", metavar="PARTNER")
    p.add_argument("mode", metavar="MODE", help=" | ".join(MODES))
    p.add_argument("--percent", metavar="P", help="canary only: 1..99")
