"""``gateway recon …``: statements in, matching, breaks (docs/reconciliation.md).

User errors exit 2 with one line (``GatewayError``, as every command): a file
that is unreadable or whose control figures do not add up is refused whole.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from gateway.cli.common import Subparsers, command, database, group, load, require_schema
from gateway.domain.clock import system_clock
from gateway.errors import ConfigError
from gateway.plugins.manager import Plugins
from gateway.recon.imports import AUTO, import_file

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


def register(subparsers: Subparsers) -> None:
    """Add the ``recon`` command group."""
    recon = group(subparsers, "recon", help="reconciliation: statements, matches, breaks (docs/reconciliation.md)")
    p = command(recon, "import", _import, help="import a statement file: all of it or nothing, each statement once")
    p.add_argument("file", help="the statement file")
    p.add_argument(
        "--format", default=AUTO, help=f"{AUTO} (default: recognised from the file), camt.053, mt940, nacha, …"
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
