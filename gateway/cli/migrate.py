"""``gateway migrate import``: the old system's payment history, imported for go-live (docs/go-live.md).

Exit codes: 0 every row imported (or already there), 1 some rows were rejected (listed, and
written to ``--report`` as CSV), 2 the command line or a file as a whole is wrong (one line).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from gateway.cli.common import (
    Subparsers,
    UsageError,
    command,
    console,
    database,
    group,
    load,
    positive,
    require_schema,
    table,
)
from gateway.domain.clock import system_clock
from gateway.errors import ContractError
from gateway.finance.migration import (
    FINAL_STATUSES,
    FORMATS,
    ColumnMapping,
    FileResult,
    FileSource,
    RecordReader,
    Validator,
    check_file,
    import_file,
    load_mapping,
)
from gateway.intake.pain001 import read_pain001
from gateway.risk.engine import fingerprint_key
from gateway.risk.model import Fingerprinter
from gateway.store import repo
from gateway.store.encryption import parse_key_ring

__all__ = ["register"]

#: rejected rows shown on the terminal after a real run (all of them after a dry run; all in --report)
_SHOWN = 20


class _Rate(ProgressColumn):
    """Rows per second."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text("" if speed is None else f"{speed:,.0f} rows/s", style="progress.data.speed")


def _write_report(path: Path, results: list[FileResult]) -> None:
    try:
        with path.open("w", newline="", encoding="utf-8") as f:
            out = csv.writer(f)
            out.writerow(["file", "line", "reference", "reason"])
            for r in results:
                for rej in r.rejections:
                    out.writerow([str(r.source.path), rej.line, rej.reference, rej.reason])
    except OSError as exc:
        raise UsageError(f"cannot write --report {path}: {exc.strerror or exc}") from None


def _pain001_history(
    source: FileSource, status: str, max_bytes: int, now: datetime
) -> list[tuple[int, dict[str, Any]]]:
    """A pain.001's payments as history records: the instruction document, ``status``, and its dates.

    ``created_at`` is the file's ``GrpHdr/CreDtTm``; ``status_at`` its requested execution date
    when that is after the file's day and not in the future, else ``created_at``. The record's
    line is the payment's position in the file (1, 2, …). A file the XSD refuses, or whose
    control figures do not add up, is refused whole (exit 2).
    """
    try:
        parsed = read_pain001(source.path.read_bytes(), max_bytes=max_bytes)
    except ContractError as exc:
        raise UsageError(f"{source.path}: {exc.message}") from None
    except OSError as exc:
        raise UsageError(f"cannot read {source.path}: {exc.strerror or exc}") from None
    if parsed.mismatch is not None:
        raise UsageError(f"{source.path}: {parsed.mismatch.pointer}: {parsed.mismatch.reason}")
    created = parsed.created_at
    records: list[tuple[int, dict[str, Any]]] = []
    for position, payment in enumerate(parsed.payments, 1):
        doc: dict[str, Any] = {**payment.document, "status": status, "created_at": created}
        executed = doc.get("requested_execution_date")
        if executed and created[:10] < executed <= now.date().isoformat():
            doc["status_at"] = f"{executed}T00:00:00+00:00"
        records.append((position, doc))
    return records


def _pain001_reader(history: dict[Path, list[tuple[int, dict[str, Any]]]]) -> RecordReader:
    def read(source: FileSource, mapping: ColumnMapping, skip: int) -> Iterator[tuple[int, dict[str, Any] | str]]:
        for position, doc in history[source.path][skip:]:
            yield position, dict(doc)  # the validator takes the record apart

    return read


async def _import(args: argparse.Namespace) -> int:
    settings = load(args)
    bu = args.business_unit.strip()
    if not bu or len(bu) > 100:
        raise UsageError("--business-unit must be a name of 1 to 100 characters")
    for name in args.files:
        if not Path(name).is_file():
            raise UsageError(f"no file {name}")
    mapping = load_mapping(args.mapping)
    if args.mapping and args.format != "csv":
        raise UsageError("--mapping is for --format csv (JSON records are in the instruction contract's shape)")
    if args.status is not None and args.format != "pain001":
        raise UsageError("--status is for --format pain001 (CSV and JSON rows carry their own status)")
    status = (args.status or "settled").lower()
    if status not in FINAL_STATUSES:
        raise UsageError(f"--status must be a final status ({', '.join(sorted(FINAL_STATUSES))}), not {status!r}")
    sources = [FileSource.open(Path(name), args.format) for name in args.files]
    for source in sources:
        check_file(source, mapping)
    reader: RecordReader | None = None
    if args.format == "pain001":
        history = {s.path: _pain001_history(s, status, settings.files.max_bytes, system_clock()) for s in sources}
        sources = [dataclasses.replace(s, records=len(history[s.path])) for s in sources]
        reader = _pain001_reader(history)
    keys = parse_key_ring(settings.encryption_keys)
    fingerprints = Fingerprinter(fingerprint_key(settings.section("security").get("fingerprint_key"), keys))
    validator = Validator(mapping, system_clock())
    results: list[FileResult] = []
    async with database(settings) as engine:
        await require_schema(engine)
        if not args.dry_run:
            async with engine.begin() as conn:
                await repo.ensure_business_unit(conn, bu, system_clock())
        progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            _Rate(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            disable=args.json,
        )
        with progress:
            for source in sources:
                task = progress.add_task(source.path.name, total=source.records)

                def advance(done: int, total: int | None = None, task: TaskID = task) -> None:
                    progress.update(task, completed=done, total=total)

                results.append(
                    await import_file(
                        engine,
                        bu,
                        source,
                        validator,
                        fingerprints,
                        chunk_size=args.chunk_size,
                        dry_run=args.dry_run,
                        progress=advance,
                        reader=reader,
                    )
                )
    if args.report:
        _write_report(Path(args.report), results)
    rejected = sum(len(r.rejections) for r in results)
    if args.json:
        print(json.dumps(_document(args, results)))
    else:
        _show(args, results)
    return 1 if rejected else 0


def _document(args: argparse.Namespace, results: list[FileResult]) -> dict[str, Any]:
    return {
        "business_unit": args.business_unit,
        "dry_run": args.dry_run,
        "files": [
            {
                "file": str(r.source.path),
                "sha256": r.source.sha256,
                "state": r.state,
                "rows": r.checkpoint.rows_done,
                "imported": r.checkpoint.imported,
                "duplicates": r.checkpoint.duplicates,
                "rejected": r.checkpoint.rejected,
            }
            for r in results
        ],
        "rejected": [
            {"file": str(r.source.path), "line": rej.line, "reference": rej.reference, "reason": rej.reason}
            for r in results
            for rej in r.rejections
        ],
    }


def _show(args: argparse.Namespace, results: list[FileResult]) -> None:
    out = console()
    verb = "would import" if args.dry_run else "imported"
    counts = table(
        f"history for {args.business_unit}" + (" (dry run: nothing written)" if args.dry_run else ""),
        "file",
        "state",
        "rows",
        verb,
        "duplicates",
        "rejected",
        names=("file",),
        numbers=("rows", verb, "duplicates", "rejected"),
    )
    for r in results:
        c = r.checkpoint
        counts.add_row(
            r.source.path.name, r.state, f"{c.rows_done:,}", f"{c.imported:,}", f"{c.duplicates:,}", f"{c.rejected:,}"
        )
    out.print(counts)
    rejections = [(r.source.path.name, rej) for r in results for rej in r.rejections]
    if not rejections:
        return
    shown = rejections if args.dry_run else rejections[:_SHOWN]
    listing = table("rejected rows", "file", "line", "reference", "reason", names=("file", "line"))
    for name, rej in shown:
        listing.add_row(name, str(rej.line), rej.reference, rej.reason)
    out.print(listing)
    if len(shown) < len(rejections):
        out.print(f"… and {len(rejections) - len(shown):,} more" + ("" if args.report else ": see --report FILE.csv"))


def _chunk_size(value: str) -> int:
    """``--chunk-size``: 1 to 10,000 rows (a chunk's references are looked up in one query, under PostgreSQL's
    limit of bind parameters)."""
    number = positive(value)
    if number > 10_000:
        raise argparse.ArgumentTypeError("must be at most 10000")
    return number


def register(subparsers: Subparsers) -> None:
    commands = group(
        subparsers, "migrate", help="import the payment history of the system the gateway replaces (docs/go-live.md)"
    )
    p = command(
        commands,
        "import",
        _import,
        help="import historical payments with their final statuses: never dispatched, resumable (docs/go-live.md)",
    )
    p.add_argument(
        "files", nargs="+", metavar="FILE", help="CSV, JSON (array or JSON Lines) or pain.001 files, in order"
    )
    p.add_argument("--business-unit", required=True, metavar="NAME", help="the business unit the history belongs to")
    p.add_argument("--format", required=True, choices=FORMATS, help="csv, json or pain001 (.03 or .09)")
    p.add_argument(
        "--status",
        metavar="STATUS",
        help="pain001 only: the final status of every payment in the files (a pain.001 carries none; default settled)",
    )
    p.add_argument("--mapping", metavar="FILE", help="CSV column-mapping YAML (docs/go-live.md)")
    p.add_argument("--dry-run", action="store_true", help="check every row and report; write nothing")
    p.add_argument("--report", metavar="FILE", help="write every rejected row (file, line, reference, reason) as CSV")
    p.add_argument(
        "--chunk-size",
        type=_chunk_size,
        default=None,
        metavar="N",
        help="rows per transaction and checkpoint, 1 to 10000 (10000 on SQLite, 5000 on PostgreSQL)",
    )
    p.add_argument("--json", action="store_true", help="print the result as JSON (no progress bar)")
