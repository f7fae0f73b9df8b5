"""``gateway reports …``: periodic reports (docs/reports.md) and the operational anomaly check (docs/operations.md).

``run`` builds one report for a period and writes every format to the reports folder (what
``GET /v1/reports`` serves); ``--format`` also prints that format. A bad name or period exits 2
with one line.
"""

from __future__ import annotations

import argparse
import json
import sys

from gateway.cli.common import Subparsers, command, console, database, group, load, require_schema, table
from gateway.domain.clock import system_clock
from gateway.reports.anomaly import check_anomalies
from gateway.reports.folder import ReportFolder, build_report
from gateway.reports.model import REGISTRY, Context, parse_period
from gateway.reports.render import FORMATS, render
from gateway.reports.schedule import load_schedules
from gateway.store.rebates import load_programs

__all__ = ["register"]


async def _run(args: argparse.Namespace) -> int:
    settings = load(args)
    parse_period(args.period)  # a bad period is one line before any connection
    async with database(settings) as engine:
        await require_schema(engine)
        report = await build_report(
            engine,
            args.name,
            args.period,
            system_clock(),
            Context(settings.reconciliation, load_programs(settings.rebates_file)),
        )
    folder = ReportFolder(settings.reports_folder)
    folder.write(report)
    if args.format:
        sys.stdout.write(render(report, args.format))
    print(f"{report.id} written to {folder.root / report.id}", file=sys.stderr)
    return 0


async def _list(args: argparse.Namespace) -> int:
    settings = load(args)
    schedules = load_schedules(settings.reports_file)
    folder = ReportFolder(settings.reports_folder)
    written = [s for s in (folder.summary(i) for i in folder.ids()) if s is not None]
    if args.json:
        print(
            json.dumps(
                {
                    "reports": [{"name": d.name, "title": d.title} for d in REGISTRY.values()],
                    "schedules": [s.__dict__ for s in schedules],
                    "written": written,
                }
            )
        )
        return 0
    shown = table("reports", "name", "title", "schedules", names=("name",))
    for name, definition in sorted(REGISTRY.items()):
        crons = ", ".join(f"{s.name} ({s.cron}, {s.period})" for s in schedules if s.report == name)
        shown.add_row(name, definition.title, crons or "-")
    console().print(shown)
    done = table(f"{len(written)} written to {folder.root}", "id", "period", "generated at", names=("id",))
    for summary in written:
        done.add_row(summary["id"], summary["period"], summary["generated_at"])
    console().print(done)
    return 0


async def _anomalies(args: argparse.Namespace) -> int:
    settings = load(args)
    async with database(settings) as engine:
        await require_schema(engine)
        run = await check_anomalies(engine, settings.anomaly, system_clock())
    doc = run.as_dict()
    if args.json:
        print(json.dumps(doc))
        return 0
    print(
        f"{len(run.opened)} incidents opened (one alert each), {len(run.still_open)} still open,"
        f" {len(run.resolved)} resolved",
        file=sys.stderr,
    )
    for incident in run.opened:
        print(f"new: {incident.reason}", file=sys.stderr)
    return 0


def register(subparsers: Subparsers) -> None:
    """Add the ``reports`` command group."""
    reports = group(subparsers, "reports", help="periodic reports and anomaly checks (docs/reports.md)")
    p = command(reports, "run", _run, help="build a report for a period and write it to the reports folder")
    p.add_argument("name", help=f"the report: {', '.join(sorted(REGISTRY))}")
    p.add_argument("--period", required=True, help="a day (2026-12-05), a month (2026-12) or a quarter (2026-Q4)")
    p.add_argument("--format", choices=FORMATS, help="also print the report in this format")

    p = command(reports, "list", _list, help="the reports, their schedules and the ones written")
    p.add_argument("--json", action="store_true", help="print one JSON object")

    p = command(reports, "anomalies", _anomalies, help="run one operational anomaly check now (raises alerts)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
