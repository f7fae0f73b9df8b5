"""``gateway contracts``: compatibility check, generated docs, business-unit pins (``gateway.contracts.tools``)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.cli.common import Subparsers, command, console, database, group, load, require_schema, table
from gateway.contracts.tools import (
    CheckReport,
    ContractsInputError,
    check,
    check_pinnable,
    load_contracts,
    write_docs,
    write_partner_docs,
)
from gateway.store.tables import business_units

__all__ = ["register"]


def _print_report(report: CheckReport) -> None:
    out = console()
    for step in report.steps:
        mark = "[green]ok[/green]" if step.ok else "[red]FAILS[/red]"
        title = (
            f"{step.message} {step.old} → {step.new} ({step.direction}): "
            f"claims {step.claimed}, is {step.verdict} — {mark}"
        )
        if not step.changes:
            out.print(f"{title}; no schema changes")
            continue
        changes = table(title, "pointer", "keyword", "change", "effect", "classification")
        for change in step.changes:
            classification = change.classification(step.direction)
            style = "red" if classification == "breaking" and not step.ok else ""
            changes.add_row(
                change.pointer, change.keyword, change.detail, change.effect.value, classification, style=style
            )
        out.print(changes)
    for message, version, problem in report.problems:
        out.print(f"[red]{message} {version}[/red]: {problem}")
    failed = [s for s in report.steps if not s.ok]
    if report.ok:
        out.print(f"contracts check passed: {len(report.steps)} version step(s) compared")
    else:
        out.print(
            f"[red]contracts check failed[/red]: {len(failed)} version(s) claim compatible but break, "
            f"{len(report.problems)} metadata problem(s)"
        )


async def check_command(args: argparse.Namespace) -> int:
    """``gateway contracts check``: exit 0 when every claim holds, 1 when one does not."""
    report = check(load_contracts(args.root))
    if args.json:
        print(json.dumps(report.as_dict()))
    else:
        _print_report(report)
    return 0 if report.ok else 1


async def docs_command(args: argparse.Namespace) -> int:
    """``gateway contracts docs``: one Markdown page per message."""
    registry = load_contracts(args.root)
    for path in write_docs(registry, args.output):
        print(path, file=sys.stderr)
    partners = registry.root / "partners"  # the partners' wire contracts, when the folder has them
    if partners.is_dir():
        for path in write_partner_docs(partners, Path(args.output) / "partners"):
            print(path, file=sys.stderr)
    return 0


async def _pin(conn: AsyncConnection, business_unit: str, version: str | None) -> None:
    result = await conn.execute(
        update(business_units).where(business_units.c.name == business_unit).values(default_contract_version=version)
    )
    if result.rowcount == 0:
        raise ContractsInputError(
            f"no business unit named {business_unit!r}; create it with `gateway keys create --business-unit NAME`"
        )


async def pin_command(args: argparse.Namespace) -> int:
    """``gateway contracts pin``: set (or clear) a business unit's default ``instruction`` contract version."""
    if (args.version is None) == (not args.clear):
        raise ContractsInputError("give a VERSION to pin, or --clear to remove the pin (not both)")
    check_pinnable(args.version)
    async with database(load(args)) as engine:
        await require_schema(engine)
        async with engine.begin() as conn:
            await _pin(conn, args.business_unit, args.version)
    state = f"pinned to instruction {args.version}" if args.version else "unpinned (gets the default version)"
    print(f"business unit {args.business_unit} {state}; API keys pick it up within 30 s", file=sys.stderr)
    return 0


def register(subparsers: Subparsers) -> None:
    contracts = group(subparsers, "contracts", help="versioned JSON contracts")
    p = command(
        contracts, "check", check_command, help="classify every change between versions; exit 1 if a claim is false"
    )
    p.add_argument("--root", help="folder of <message>/<version>.json (default: the shipped contracts)")
    p.add_argument("--json", action="store_true", help="print one JSON report object")
    p = command(
        contracts,
        "docs",
        docs_command,
        help="write one Markdown page per contract message, and one per partner's wire contracts (partners/)",
    )
    p.add_argument("--root", help="folder of <message>/<version>.json (default: the shipped contracts)")
    p.add_argument("--output", default="docs/contracts", help="folder to write (default docs/contracts)")
    p = command(contracts, "pin", pin_command, help="set a business unit's default instruction contract version")
    p.add_argument("business_unit", help="business unit name")
    p.add_argument("version", nargs="?", help="contract version, e.g. 1.1")
    p.add_argument("--clear", action="store_true", help="remove the pin: the default version applies")
