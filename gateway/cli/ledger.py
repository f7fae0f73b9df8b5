"""``gateway ledger …`` and ``gateway audit …``: the books from the command line (docs/ledger.md).

User errors exit 2 with one line (``GatewayError``, as every command);
``audit verify`` exits 1 when it finds tampering, ``ledger export`` when a re-run differs.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.cli.common import Subparsers, command, console, database, group, load, require_schema, table
from gateway.config import Settings, read_yaml_file
from gateway.domain.clock import system_clock
from gateway.domain.money import amount_text
from gateway.errors import ConfigError
from gateway.finance.books import backfill, close_period, reverse, trial_balance
from gateway.finance.export import ALL, GLMapping, default_mapping, export_batch
from gateway.ledger.errors import LedgerError
from gateway.ledger.rules import load_ledger, load_rules
from gateway.plugins.manager import Plugins
from gateway.store.audit import verify
from gateway.store.journal import bind, rules_for

__all__ = ["parse_instant", "register"]


def parse_instant(text: str) -> datetime:
    """``--as-of``: an ISO 8601 instant (UTC when no offset), or a date meaning the end of that day (UTC)."""
    try:
        if len(text) == 10:
            return datetime.combine(date.fromisoformat(text) + timedelta(days=1), time(), UTC) - timedelta(
                microseconds=1
            )
        at = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"--as-of {text!r} is not a date or an ISO 8601 instant (e.g. 2026-11-30)") from None
    return at if at.tzinfo else at.replace(tzinfo=UTC)


@asynccontextmanager
async def _books(settings: Settings) -> AsyncIterator[AsyncEngine]:
    """The database, checked to be migrated, with the configured rules bound to it."""
    rules = load_ledger(settings, Plugins().ledger_rules())
    async with database(settings) as engine:
        await require_schema(engine)
        bind(engine, rules)
        yield engine


# -- ledger rules check --------------------------------------------------------------------------


async def _rules_check(args: argparse.Namespace) -> int:
    settings = load(args)
    rules = load_rules(args.file or settings.ledger_file, Plugins().ledger_rules())
    transitions = rules.transition_table()
    if args.json:
        print(
            json.dumps(
                {
                    "ok": True,
                    "file": rules.source,
                    "accounts": {p.template: p.type for p in rules.chart.values()},
                    "transitions": [
                        {"from": a.value, "to": b.value, "postings": [[p.account, p.amount] for p in lines]}
                        for a, b, lines in transitions
                    ],
                    "events": sorted(rules.events),
                }
            )
        )
        return 0
    out = console()
    out.print(f"{rules.source}: ok — {len(rules.chart)} account patterns, {len(rules.events)} event kinds")
    shown = table(
        "what each transition posts (a payment of 100)", "from", "to", "debit", "credit", names=("from", "to")
    )
    for a, b, lines in transitions:
        debits = ", ".join(f"{p.account} {p.amount}" for p in lines if p.amount > 0)
        credits = ", ".join(f"{p.account} {-p.amount}" for p in lines if p.amount < 0)
        shown.add_row(a.value, b.value, debits, credits)
    out.print(shown)
    return 0


# -- trial balance, backfill, close, reverse -------------------------------------------------------


async def _trial_balance(args: argparse.Namespace) -> int:
    as_of = parse_instant(args.as_of) if args.as_of else None
    async with _books(load(args)) as engine, engine.connect() as conn:
        groups = await trial_balance(conn, as_of)
    totals = {cur: sum(b.balance for b in rows) for cur, rows in groups.items()}
    if args.json:
        doc: dict[str, Any] = {
            "as_of": as_of.isoformat() if as_of else None,
            "balanced": not any(totals.values()),
            "currencies": {
                cur: {
                    "accounts": [
                        {
                            "account": b.account,
                            "type": b.type,
                            "debits": b.debits,
                            "credits": b.credits,
                            "balance": b.balance,
                        }
                        for b in rows
                    ],
                    "total": totals[cur],
                }
                for cur, rows in groups.items()
            },
        }
        print(json.dumps(doc))
        return 0
    out = console()
    if not groups:
        out.print("the journal is empty")
    for cur, rows in groups.items():
        title = f"trial balance {cur}" + (f" as of {as_of.isoformat()}" if as_of else "")
        shown = table(title, "account", "type", "debit", "credit", names=("account",), numbers=("debit", "credit"))
        for b in rows:
            debit = amount_text(b.balance, cur) if b.balance > 0 else ""
            credit = amount_text(-b.balance, cur) if b.balance < 0 else ""
            shown.add_row(b.account, b.type, debit, credit)
        debit_total = sum(b.balance for b in rows if b.balance > 0)
        shown.add_row("total", "", amount_text(debit_total, cur), amount_text(debit_total - totals[cur], cur))
        out.print(shown)
    return 0


async def _backfill(args: argparse.Namespace) -> int:
    async with _books(load(args)) as engine:
        seen, posted = await backfill(engine, system_clock())
    print(f"{seen} instructions checked, {posted} entries posted", file=sys.stderr)
    return 0


async def _close(args: argparse.Namespace) -> int:
    async with _books(load(args)) as engine, engine.begin() as conn:
        closed = await close_period(conn, args.period, system_clock(), f"cli:{getpass.getuser()}")
    print(f"period {args.period} {'closed' if closed else 'was already closed'}", file=sys.stderr)
    return 0


async def _reverse(args: argparse.Namespace) -> int:
    async with _books(load(args)) as engine, engine.begin() as conn:
        entry_id = await reverse(conn, args.entry, system_clock(), args.memo or "")
    print(entry_id)
    return 0


# -- export ----------------------------------------------------------------------------------------


async def _export(args: argparse.Namespace) -> int:
    settings = load(args)
    mapping_file = Path(args.mapping) if args.mapping else default_mapping(settings.source)
    out_dir = Path(args.output_dir or ".")
    if not out_dir.is_dir():
        raise LedgerError(f"--output-dir {out_dir} is not a folder")
    async with _books(settings) as engine:
        async with engine.connect() as conn:
            rules = rules_for(conn)
        if rules is None:
            raise LedgerError("the ledger is off (ledger.enabled: false); nothing to export")
        mapping = GLMapping(read_yaml_file(mapping_file, "GL mapping"), str(mapping_file), rules)
        result = await export_batch(
            engine,
            args.period,
            scope=args.business_unit or ALL,
            fmt=args.format,
            mapping=mapping,
            out_dir=out_dir,
            now=system_clock(),
            progress=sys.stderr.isatty() or args.progress,
        )
    what = f"batch {result.batch} ({result.scope} {result.period}): {result.entries} entries → {result.path}"
    if result.rerun and result.identical:
        print(f"{what}; re-run, identical to the first run (sha256 {result.sha256})", file=sys.stderr)
        return 0
    if result.rerun:
        print(
            f"{what}; re-run DIFFERS from the recorded file (sha256 {result.sha256}): check `gateway audit verify`",
            file=sys.stderr,
        )
        return 1
    print(f"{what} (sha256 {result.sha256})", file=sys.stderr)
    return 0


# -- audit verify --------------------------------------------------------------------------------


async def _verify(args: argparse.Namespace) -> int:
    async with _books(load(args)) as engine, engine.connect() as conn:
        report = await verify(conn)
    if args.json:
        print(json.dumps(report.as_dict()))
    elif report.ok:
        checked = ", ".join(f"{n} {chain} rows" for chain, n in report.checked.items())
        print(f"audit chains intact: {checked}", file=sys.stderr)
    else:
        print(f"TAMPERED: {report.findings[0].line()}", file=sys.stderr)
        for finding in report.findings[1:20]:
            print(f"  also: {finding.line()}", file=sys.stderr)
    return 0 if report.ok else 1


def _entry_id(value: str) -> int:
    if not value.isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(f"{value!r} is not an entry id (a positive whole number)")
    return int(value)


def register(subparsers: Subparsers) -> None:
    """Add the ``ledger`` and ``audit`` command groups."""
    ledger = group(subparsers, "ledger", help="the double-entry ledger (docs/ledger.md)")
    rules = group(ledger, "rules", help="posting rules")
    p = command(rules, "check", _rules_check, help="check the chart and posting rules; show what each transition posts")
    p.add_argument("--file", help="rules file (default: ledger.file of the configuration)")
    p.add_argument("--json", action="store_true", help="print one JSON object")

    p = command(ledger, "trial-balance", _trial_balance, help="every account's balance per currency; each sums to zero")
    p.add_argument("--as-of", help="the books as they stood at this instant or at the end of this date (UTC)")
    p.add_argument("--json", action="store_true", help="print one JSON object")

    command(ledger, "backfill", _backfill, help="post the entries of instructions that moved before the ledger existed")

    p = command(ledger, "close", _close, help="close an accounting period (YYYY-MM) and every one before it")
    p.add_argument("period", help="e.g. 2026-11")

    p = command(ledger, "reverse", _reverse, help="post the entry that reverses ENTRY (a correction); prints its id")
    p.add_argument("entry", type=_entry_id, help="the id of the entry to reverse")
    p.add_argument("--memo", help="why (kept on the reversing entry)")

    p = command(ledger, "export", _export, help="write the GL export batch of a closed period (numbered, exactly once)")
    p.add_argument("--period", required=True, help="a closed period, e.g. 2026-11")
    p.add_argument("--business-unit", help="only this business unit's entries (its own batch numbering)")
    p.add_argument("--format", choices=("csv", "json"), default="csv")
    p.add_argument(
        "--mapping", help="GL mapping YAML (default: gl-mapping.yaml beside the config, else the shipped one)"
    )
    p.add_argument("--output-dir", help="folder for the batch file (default: the current folder)")
    p.add_argument("--progress", action="store_true", help="show the progress bar even when stderr is not a terminal")

    audit = group(subparsers, "audit", help="tamper evidence")
    p = command(audit, "verify", _verify, help="recompute the hash chains; exit 1 naming the first row tampered with")
    p.add_argument("--json", action="store_true", help="print one JSON object")
