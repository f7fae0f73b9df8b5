"""``gateway export``: the data-lake export (Parquet, watermarks, manifests) and event sinks (docs/data-export.md)."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeRemainingColumn

from gateway.cli.common import Subparsers, UsageError, command, console, database, group, load, require_schema, table
from gateway.domain.clock import system_clock
from gateway.finance.offload import SYSTEM_ERROR, ExportProcessError, run_in_child
from gateway.finance.stream import EventRelay
from gateway.plugins.manager import Plugins

__all__ = ["register"]


async def _run(args: argparse.Namespace) -> int:
    settings = load(args)
    out = Path(args.to or settings.export.dir)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--to {out} is a file, not a folder")
    async with database(settings) as engine:
        await require_schema(engine)
        show = sys.stderr.isatty() or args.progress
        with Progress(
            TextColumn("{task.description:20}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=console(),
            disable=not show,
        ) as bar:
            tasks: dict[str, TaskID] = {}

            def progress(name: str, done: int, total: int) -> None:
                if name not in tasks:
                    tasks[name] = bar.add_task(name, total=total)
                bar.update(tasks[name], completed=done, total=total)

            try:  # in a child process: this one never loads Arrow (gateway.finance.offload)
                result = await run_in_child(engine, settings, "run", progress, names=args.dataset, out=str(out))
            except ExportProcessError as exc:
                if exc.status == SYSTEM_ERROR:  # a full disk, a folder it may not write: re-run to resume
                    raise UsageError(
                        f"writing the export to {out} failed: {exc.message}; fix it and run again"
                    ) from None
                raise UsageError(exc.message) from None
    if args.json:
        print(json.dumps(result))
        return 0
    for name, d in result["datasets"].items():
        again = f"; rewrote {len(d['removed'])} file(s) an interrupted run left" if d["removed"] else ""
        print(
            f"{name}: {d['rows']} rows in {len(d['files'])} file(s), key {d['from_key']} → {d['to_key']}{again}",
            file=sys.stderr,
        )
    print(f"manifest: {result['manifest'] or 'none (nothing new)'}", file=sys.stderr)
    return 0


async def _status(args: argparse.Namespace) -> int:
    settings = load(args)
    async with database(settings) as engine:
        await require_schema(engine)
        try:
            found = await run_in_child(engine, settings, "status")
        except ExportProcessError as exc:
            raise UsageError(exc.message) from None
    marks: dict[str, Any] = found["watermarks"]
    if args.json:
        print(json.dumps(marks))
        return 0
    view = table("export watermarks", "name", "key", "rows", "schema", "updated", numbers=("key", "rows"))
    for name in [*found["datasets"], *sorted(n for n in marks if n.startswith("sink:"))]:
        mark = marks.get(name)
        if mark is None:
            view.add_row(name, "0", "0", "-", "never")
            continue
        version = str(mark["schema_version"]) if mark["schema_version"] is not None else "-"
        updated = datetime.fromisoformat(mark["updated_at"]).isoformat(timespec="seconds")
        view.add_row(name, str(mark["key"]), str(mark["rows"]), version, updated)
    console().print(view)
    return 0


async def _publish(args: argparse.Namespace) -> int:
    settings = load(args)
    sinks = Plugins().event_sinks(settings.section("event_sinks"))
    if not sinks:
        raise UsageError("no event sink is configured: set event_sinks.nats_url (or install a plugin that offers one)")
    async with database(settings) as engine:
        await require_schema(engine)
        relay = EventRelay(engine, sinks, system_clock, batch=settings.event_sinks.batch)
        try:
            sent = await relay.publish_due()
        except OSError as exc:
            raise UsageError(f"an event sink is unreachable: {exc}") from None
        finally:
            await relay.close()
    print(f"published {sent} event(s) to {', '.join(s.name for s in sinks)}", file=sys.stderr)
    return 0


def register(subparsers: Subparsers) -> None:
    """Add the ``export`` command group."""
    export = group(subparsers, "export", help="the data-lake export and event sinks (docs/data-export.md)")
    p = command(export, "run", _run, help="export new rows to Parquet (each row exactly once), then write a manifest")
    p.add_argument(
        "--dataset",
        action="append",
        metavar="NAME",
        help="only this dataset (repeatable; `export status` lists them)",
    )
    p.add_argument("--to", metavar="DIR", help="the export folder (default: export.dir)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--progress", action="store_true", help="show the progress bar even when stderr is not a terminal")

    p = command(export, "status", _status, help="every dataset's and event sink's watermark")
    p.add_argument("--json", action="store_true", help="print one JSON object")

    command(export, "publish", _publish, help="publish new status-change events to the configured event sinks, once")
