"""``gateway recon …``: statements in, matching, breaks (docs/reconciliation.md).

User errors exit 2 with one line (``GatewayError``, as every command): a file
that is unreadable or whose control figures do not add up is refused whole.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from pathlib import Path

from gateway.cli.common import Subparsers, command, console, database, group, load, require_schema, table
from gateway.domain.clock import system_clock
from gateway.errors import ConfigError
from gateway.plugins.manager import Plugins
from gateway.recon.imports import AUTO, import_file
from gateway.recon.matching import BREAK_KINDS, confirm_match, list_breaks, run_matching

__all__ = ["register"]


def _read(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from None


async def _import(args: argparse.Namespace) -> int:
    settings = load(args)
    body = _read(args.file)
    formats = Plugins().statement_formats()
    async with database(settings) as engine:
        await require_schema(engine)
        report = await import_file(engine, formats, body, now=system_clock(), given=args.format)
    if args.json:
        print(json.dumps(report.as_dict()))
    else:
        doc = report.as_dict()
        skipped = len(report.statements) - doc["stored"]
        print(
            f"{args.file}: {report.format}, {doc['stored']} statements stored ({doc['lines']} lines),"
            f" {skipped} already imported",
            file=sys.stderr,
        )
    for gap in report.gaps:
        print(f"gap: {gap}", file=sys.stderr)
    return 0


async def _run(args: argparse.Namespace) -> int:
    settings = load(args)
    async with database(settings) as engine:
        await require_schema(engine)
        found = await run_matching(engine, settings.reconciliation, now=system_clock(), source=args.partner)
    doc = found.as_dict()
    if args.json:
        print(json.dumps(doc))
    else:
        print(
            f"{doc['lines']} statement lines: {doc['confirmed']} matched, {doc['suggested']} suggested,"
            f" {doc['unmatched']} unmatched",
            file=sys.stderr,
        )
    return 0


async def _breaks(args: argparse.Namespace) -> int:
    settings = load(args)
    async with database(settings) as engine:
        await require_schema(engine)
        found = await list_breaks(engine, settings.reconciliation, now=system_clock())
    found = [b for b in found if args.kind is None or b.kind == args.kind]
    if args.json:
        print(json.dumps({"items": [b.as_dict() for b in found]}))
        return 0
    shown = table(
        f"{len(found)} breaks",
        "id",
        "kind",
        "source",
        "amount",
        "date",
        "age",
        "detail",
        names=("id",),
        numbers=("amount", "age"),
    )
    for b in found:
        view = b.as_dict()
        shown.add_row(
            b.id,
            b.kind,
            b.source,
            f"{view['amount']} {b.currency}",
            view["date"] or "",
            "" if b.age_days is None else str(b.age_days),
            b.detail,
        )
    console().print(shown)
    return 0


async def _confirm(args: argparse.Namespace) -> int:
    settings = load(args)
    async with database(settings) as engine:
        await require_schema(engine)
        instruction_id = await confirm_match(engine, args.line, by=f"cli:{getpass.getuser()}", now=system_clock())
    print(f"{args.line} confirmed as {instruction_id}", file=sys.stderr)
    return 0


def register(subparsers: Subparsers) -> None:
    """Add the ``recon`` command group."""
    recon = group(subparsers, "recon", help="reconciliation: statements, matches, breaks (docs/reconciliation.md)")
    p = command(recon, "import", _import, help="import a statement file: all of it or nothing, each statement once")
    p.add_argument("file", help="the statement file")
    p.add_argument(
        "--format", default=AUTO, help=f"{AUTO} (default: recognised from the file), camt.053, mt940, nacha, …"
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")

    p = command(recon, "run", _run, help="match unmatched statement lines to payments by the rules")
    p.add_argument("--partner", help="only this partner's (adapter's) statements")
    p.add_argument("--json", action="store_true", help="print one JSON object")

    p = command(recon, "breaks", _breaks, help="what reconciliation could not explain, oldest kinds first")
    p.add_argument("--kind", choices=BREAK_KINDS, help="only breaks of this kind")
    p.add_argument("--json", action="store_true", help="print one JSON object")

    p = command(recon, "confirm", _confirm, help="confirm the suggested match of a statement line (ln_…)")
    p.add_argument("line", help="the statement line's id, as breaks shows it")
