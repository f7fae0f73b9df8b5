"""``gateway recon …``: statements in, reconciliation runs, breaks and their workflow (docs/reconciliation.md).

User errors exit 2 with one line (``GatewayError``, as every command): a file
that is unreadable or whose control figures do not add up is refused whole, a
wrong key of ``config/reconciliation.yaml`` is named.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from datetime import date
from pathlib import Path
from typing import Any

from gateway.cli.common import Subparsers, command, console, database, group, load, require_schema, table
from gateway.config import Settings
from gateway.domain.clock import system_clock
from gateway.domain.money import amount_text
from gateway.errors import ConfigError
from gateway.ledger.rules import Rules, load_ledger
from gateway.plugins.manager import Plugins
from gateway.recon.breaks import (
    BREAK_KINDS,
    BREAK_STATES,
    OPEN_STATES,
    add_comment,
    assign_break,
    break_view,
    list_breaks,
    resolve_break,
    summary,
    write_off_break,
)
from gateway.recon.controls import read_totals_file, store_totals
from gateway.recon.csvformat import load_mapping
from gateway.recon.fetch import StatementFetcher
from gateway.recon.imports import AUTO, import_file
from gateway.recon.rules import ReconRules, load_recon_rules
from gateway.recon.service import confirm_match, match_by_hand, reject_match, run_recon
from gateway.runtime import build_adapters
from gateway.store.journal import bind
from gateway.store.rebates import bind_programs, load_programs

__all__ = ["register"]


def _readable(path: str) -> Path:
    """``path`` if it is a file this process can read (statement files are streamed from it, never read whole)."""
    try:
        with Path(path).open("rb"):
            pass
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from None
    return Path(path)


def _who() -> str:
    return f"cli:{getpass.getuser()}"


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD)") from None


def _setup(args: argparse.Namespace) -> tuple[Settings, ReconRules]:
    settings = load(args)
    return settings, load_recon_rules(settings)


async def _import(args: argparse.Namespace) -> int:
    settings = load(args)
    body = _readable(args.file)
    formats = Plugins().statement_formats()
    async with database(settings) as engine:
        await require_schema(engine)
        mapping = load_mapping(_readable(args.mapping)) if args.mapping else None
        report = await import_file(engine, formats, body, now=system_clock(), given=args.format, mapping=mapping)
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


async def _fetch(args: argparse.Namespace) -> int:
    """``gateway recon fetch``: the scheduled statement fetch, now (exit 1 when a file was refused or a
    partner could not be asked)."""
    settings = load(args)
    plugins = Plugins()
    adapters = build_adapters(plugins.adapter_classes(), settings, system_clock)
    async with database(settings) as engine:
        await require_schema(engine)
        # receipts are booked and rebates accrue as the server would book them
        bind(engine, load_ledger(settings, plugins.ledger_rules()))
        bind_programs(engine, load_programs(settings.rebates_file))
        fetcher = StatementFetcher(
            engine, system_clock, adapters, plugins.statement_formats(), days=settings.reconciliation.fetch_days
        )
        if args.partner is not None and args.partner not in fetcher.sources():
            await fetcher.fetch(args.partner)  # ConfigError: one line naming the partners that fetch
        for adapter in adapters.values():
            await adapter.start()
        try:
            report = await fetcher.fetch(args.partner)
        finally:
            for adapter in adapters.values():
                await adapter.close()
    doc = report.as_dict()
    if args.json:
        print(json.dumps(doc))
    else:
        shown = table(
            f"statement fetch: {doc['stored']} statements stored ({doc['lines']} lines)",
            "partner",
            "file",
            "outcome",
            "statements",
            "lines",
            names=("partner", "file"),
            numbers=("statements", "lines"),
        )
        for f in report.files:
            outcome = f"{f.outcome}: {f.error}" if f.error else f.outcome
            shown.add_row(f.partner, f.name, outcome, str(f.statements), str(f.lines))
        console().print(shown)
    for gap in doc["gaps"]:
        print(f"gap: {gap}", file=sys.stderr)
    return 1 if doc["failed"] else 0


async def _run(args: argparse.Namespace) -> int:
    settings, rules = _setup(args)
    async with database(settings) as engine:
        await require_schema(engine)
        bind(engine, _ledger(settings))
        found = await run_recon(
            engine, rules, now=system_clock(), source=args.partner, on=args.date, dry_run=args.dry_run
        )
        totals = await summary(engine, system_clock().date())
    doc = {**found.as_dict(), "summary": totals}
    if args.json:
        print(json.dumps(doc))
        return 0
    if args.dry_run:
        _print_preview(doc)
        return 0
    print(
        f"{doc['lines']} statement lines: {doc['confirmed']} matched, {doc['suggested']} suggested,"
        f" {doc['unmatched']} unmatched; breaks: {doc['breaks_opened']} opened, {doc['breaks_closed']} closed",
        file=sys.stderr,
    )
    _print_summary(totals)
    return 0


async def _control_totals(args: argparse.Namespace) -> int:
    settings = load(args)
    totals = read_totals_file(_readable(args.file), business_unit=args.business_unit)
    async with database(settings) as engine:
        await require_schema(engine)
        await store_totals(engine, totals, by=_who(), now=system_clock())
    doc = [
        {
            "business_unit": t.business_unit,
            "date": t.day.isoformat(),
            "currency": t.currency,
            "count": t.count,
            "amount": amount_text(t.sum_minor, t.currency),
        }
        for t in totals
    ]
    if args.json:
        print(json.dumps({"stored": len(doc), "totals": doc}))
        return 0
    shown = table(
        f"{args.file}: {len(doc)} control totals stored (the next run compares them)",
        "business unit",
        "date",
        "currency",
        "count",
        "amount",
        names=("business unit",),
        numbers=("count", "amount"),
    )
    for d in doc:
        shown.add_row(d["business_unit"], d["date"], d["currency"], str(d["count"]), d["amount"])
    console().print(shown)
    return 0


def _print_preview(doc: dict[str, Any]) -> None:
    print(
        f"dry run, nothing written: {doc['lines']} statement lines: {doc['confirmed']} would match,"
        f" {doc['suggested']} would be suggested, {doc['unmatched']} unmatched;"
        f" breaks: {doc['breaks_opened']} would open, {doc['breaks_closed']} would close",
        file=sys.stderr,
    )
    shown = table("would match", "match", "status", "rule", "lines", "payments", "difference")
    for m in doc["matches"]:
        shown.add_row(
            m["match"], m["status"], m["rule"], " ".join(m["lines"]), " ".join(m["payments"]), m["difference"]
        )
    console().print(shown)
    opened = table("breaks that would open", "kind", "subject", "amount", "detail")
    for b in doc["breaks_to_open"]:
        opened.add_row(b["kind"], b["subject"], f"{b['amount']} {b['currency']}", b["detail"])
    console().print(opened)


async def _reject(args: argparse.Namespace) -> int:
    settings = load(args)
    async with database(settings) as engine:
        await require_schema(engine)
        done = await reject_match(engine, args.match, args.reason, by=_who(), now=system_clock())
    print(
        f"{done['match']} rejected: {', '.join(done['lines'])} and {', '.join(done['payments'])} are free again",
        file=sys.stderr,
    )
    return 0


def _ledger(settings: Settings) -> Rules | None:
    return load_ledger(settings, Plugins().ledger_rules())


def _print_summary(doc: dict[str, object]) -> None:
    shown = table(
        f"reconciliation: {doc['matched_percent']} % of {doc['statement_lines']} statement lines matched,"
        f" {doc['open_breaks']} open breaks",
        "kind",
        "open",
        names=("kind",),
        numbers=("open",),
    )
    for kind, n in doc["by_kind"].items():  # type: ignore[attr-defined]
        shown.add_row(kind, str(n))
    console().print(shown)
    ages = table("open breaks by age (days)", "age", "open", names=("age",), numbers=("open",))
    for bucket, n in doc["by_age_days"].items():  # type: ignore[attr-defined]
        ages.add_row(bucket, str(n))
    console().print(ages)


async def _summary(args: argparse.Namespace) -> int:
    settings = load(args)
    async with database(settings) as engine:
        await require_schema(engine)
        doc = await summary(engine, system_clock().date())
    if args.json:
        print(json.dumps(doc))
    else:
        _print_summary(doc)
    return 0


async def _breaks(args: argparse.Namespace) -> int:
    settings = load(args)
    states = OPEN_STATES if args.state == "open" else BREAK_STATES if args.state == "all" else (args.state,)
    async with database(settings) as engine:
        await require_schema(engine)
        rows = await list_breaks(engine, states=states, kind=args.kind, source=args.partner, limit=100_000)
    today = system_clock().date()
    found = [break_view(r, today) for r in rows]
    if args.json:
        print(json.dumps({"items": found}))
        return 0
    shown = table(
        f"{len(found)} breaks",
        "id",
        "kind",
        "state",
        "source",
        "amount",
        "age",
        "owner",
        "detail",
        names=("id",),
        numbers=("amount", "age"),
    )
    for b in found:
        shown.add_row(
            b["id"],
            b["kind"],
            b["state"],
            b["source"],
            f"{b['amount']} {b['currency']}",
            str(b["age_days"]),
            b["owner"] or "",
            b["detail"],
        )
    console().print(shown)
    return 0


async def _confirm(args: argparse.Namespace) -> int:
    settings = load(args)
    async with database(settings) as engine:
        await require_schema(engine)
        bind(engine, _ledger(settings))
        paid = await confirm_match(engine, args.match, by=_who(), now=system_clock())
    print(f"{args.match} confirmed: {', '.join(paid)}", file=sys.stderr)
    return 0


async def _act(args: argparse.Namespace) -> int:
    settings, rules = _setup(args)
    now = system_clock()
    async with database(settings) as engine:
        await require_schema(engine)
        bind(engine, _ledger(settings))
        if args.recon_command == "resolve":
            await resolve_break(engine, args.id, args.reason, by=_who(), now=now)
            said = "resolved"
        elif args.recon_command == "write-off":
            said = await write_off_break(engine, args.id, args.reason, rules, by=_who(), now=now)
        elif args.recon_command == "assign":
            await assign_break(engine, args.id, args.owner, by=_who(), now=now)
            said = f"owned by {args.owner}"
        elif args.recon_command == "comment":
            await add_comment(engine, args.id, args.text, by=_who(), now=now)
            said = "commented"
        else:
            match_id = await match_by_hand(engine, args.id, args.instruction_ids, by=_who(), now=now)
            said = f"matched by hand (m_{match_id})"
    print(f"{args.id}: {said}", file=sys.stderr)
    return 0


def register(subparsers: Subparsers) -> None:
    """Add the ``recon`` command group."""
    recon = group(subparsers, "recon", help="reconciliation: statements, matches, breaks (docs/reconciliation.md)")
    p = command(recon, "import", _import, help="import a statement file: all of it or nothing, each statement once")
    p.add_argument("file", help="the statement file")
    p.add_argument(
        "--format", default=AUTO, help=f"{AUTO} (default: recognised from the file), camt.053, mt940, nacha, csv, …"
    )
    p.add_argument("--mapping", help="a CSV statement's column mapping (YAML; implies --format csv)")
    p.add_argument("--json", action="store_true", help="print one JSON object")

    p = command(recon, "fetch", _fetch, help="fetch statements and notifications from the partners now, import them")
    p.add_argument("--partner", help="only this partner (an adapter that fetches statements)")
    p.add_argument("--json", action="store_true", help="print one JSON object")

    p = command(recon, "run", _run, help="match statement lines to payments by the rules, post them, sync the breaks")
    p.add_argument("--partner", help="only this partner's (adapter's) statements")
    p.add_argument("--date", type=_day, help="only statement lines of this day (YYYY-MM-DD)")
    p.add_argument(
        "--dry-run", action="store_true", help="report what would match and which breaks would open; write nothing"
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")

    p = command(
        recon,
        "control-totals",
        _control_totals,
        help="store what business units say they sent (CSV or JSON file; all of it or nothing)",
    )
    p.add_argument(
        "file", help="CSV (business_unit,date,currency,count,amount) or JSON (POST /v1/control-totals bodies)"
    )
    p.add_argument(
        "--business-unit", help="the business unit of every row (then the CSV needs no business_unit column)"
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")

    p = command(recon, "summary", _summary, help="matched share of statement lines, open breaks by kind and age")
    p.add_argument("--json", action="store_true", help="print one JSON object")

    p = command(recon, "breaks", _breaks, help="the stored breaks, oldest first")
    p.add_argument("--kind", choices=BREAK_KINDS, help="only breaks of this kind")
    p.add_argument("--state", default="open", choices=(*BREAK_STATES, "all"), help="default: open")
    p.add_argument("--partner", help="only this partner's breaks")
    p.add_argument("--json", action="store_true", help="print one JSON object")

    p = command(recon, "confirm", _confirm, help="confirm a suggested match (m_… or a statement line ln_…)")
    p.add_argument("match", help="the match's id or one of its lines, as breaks shows them")
    p = command(recon, "reject", _reject, help="reject a suggested match: its line and payments are free again")
    p.add_argument("match", help="the match's id or one of its lines, as breaks shows them")
    p.add_argument("--reason", required=True)

    p = command(recon, "resolve", _act, help="close a break with a reason")
    p.add_argument("id", help="the break (brk_…)")
    p.add_argument("--reason", required=True)
    p = command(recon, "write-off", _act, help="write a break's suspense off (four eyes above the threshold)")
    p.add_argument("id", help="the break (brk_…)")
    p.add_argument("--reason", required=True)
    p = command(recon, "assign", _act, help="give a break an owner")
    p.add_argument("id", help="the break (brk_…)")
    p.add_argument("owner")
    p = command(recon, "comment", _act, help="add a comment to a break")
    p.add_argument("id", help="the break (brk_…)")
    p.add_argument("text")
    p = command(recon, "match", _act, help="match a break's statement line to settled payments by hand")
    p.add_argument("id", help="the break (brk_…)")
    p.add_argument("instruction_ids", nargs="+", help="the payments the line pays")
