"""The ``gateway ledger …`` and ``gateway audit …`` commands (``register`` adds them to the CLI).

User errors exit 2 with one line (``GatewayError``, as every command);
``audit verify`` exits 1 when it finds tampering.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.config import Settings, load_settings
from gateway.errors import ConfigError

__all__ = ["amount_text", "parse_instant", "register"]


def amount_text(minor: int, currency: str) -> str:
    """Minor units as a decimal amount in the currency's exponent (``12345, EUR`` → ``123.45``)."""
    from gateway.money import minor_units

    return str(Decimal(minor).scaleb(-minor_units(currency)))


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


def _settings(args: argparse.Namespace) -> Settings:
    return load_settings(getattr(args, "config", None))


@contextlib.asynccontextmanager
async def _books(args: argparse.Namespace) -> AsyncIterator[AsyncEngine]:
    """The database, checked to be migrated, with the configured rules bound to it."""
    from gateway.cli import _require_schema
    from gateway.ledger.journal import bind
    from gateway.ledger.rules import load_ledger
    from gateway.plugins import Plugins
    from gateway.store.db import create_engine

    settings = _settings(args)
    rules = load_ledger(settings, Plugins().ledger_rules())
    await _require_schema(settings)
    engine = create_engine(settings.database_url)
    bind(engine, rules)
    try:
        yield engine
    finally:
        await engine.dispose()


# -- ledger rules check --------------------------------------------------------------------------


async def _rules_check(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from gateway.ledger.rules import load_rules
    from gateway.plugins import Plugins

    settings = _settings(args)
    rules = load_rules(args.file or settings.ledger_file, Plugins().ledger_rules())
    table = rules.transition_table()
    if args.json:
        print(
            json.dumps(
                {
                    "ok": True,
                    "file": rules.source,
                    "accounts": {p.template: p.type for p in rules.chart.values()},
                    "transitions": [
                        {"from": a.value, "to": b.value, "postings": [[p.account, p.amount] for p in lines]}
                        for a, b, lines in table
                    ],
                    "events": sorted(rules.events),
                }
            )
        )
        return 0
    console = Console()
    console.print(f"{rules.source}: ok — {len(rules.chart)} account patterns, {len(rules.events)} event kinds")
    out = Table(title="what each transition posts (a payment of 100)")
    for column in ("from", "to", "debit", "credit"):
        out.add_column(column)
    for a, b, lines in table:
        debits = ", ".join(f"{p.account} {p.amount}" for p in lines if p.amount > 0)
        credits = ", ".join(f"{p.account} {-p.amount}" for p in lines if p.amount < 0)
        out.add_row(a.value, b.value, debits, credits)
    console.print(out)
    return 0


# -- trial balance, backfill, close, reverse -------------------------------------------------------


async def _trial_balance(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from gateway.ledger.books import trial_balance

    as_of = parse_instant(args.as_of) if args.as_of else None
    async with _books(args) as engine, engine.connect() as conn:
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
    console = Console()
    if not groups:
        console.print("the journal is empty")
    for cur, rows in groups.items():
        table = Table(title=f"trial balance {cur}" + (f" as of {as_of.isoformat()}" if as_of else ""))
        for column, justify in (("account", "left"), ("type", "left"), ("debit", "right"), ("credit", "right")):
            table.add_column(column, justify=justify)  # type: ignore[arg-type]
        for b in rows:
            debit = amount_text(b.balance, cur) if b.balance > 0 else ""
            credit = amount_text(-b.balance, cur) if b.balance < 0 else ""
            table.add_row(b.account, b.type, debit, credit)
        debit_total = sum(b.balance for b in rows if b.balance > 0)
        table.add_row("total", "", amount_text(debit_total, cur), amount_text(debit_total - totals[cur], cur))
        console.print(table)
    return 0


async def _backfill(args: argparse.Namespace) -> int:
    from gateway.clock import system_clock
    from gateway.ledger.books import backfill

    async with _books(args) as engine:
        seen, posted = await backfill(engine, system_clock())
    print(f"{seen} instructions checked, {posted} entries posted", file=sys.stderr)
    return 0


async def _close(args: argparse.Namespace) -> int:
    import getpass

    from gateway.clock import system_clock
    from gateway.ledger.books import close_period

    async with _books(args) as engine, engine.begin() as conn:
        closed = await close_period(conn, args.period, system_clock(), f"cli:{getpass.getuser()}")
    print(f"period {args.period} {'closed' if closed else 'was already closed'}", file=sys.stderr)
    return 0


async def _reverse(args: argparse.Namespace) -> int:
    from gateway.clock import system_clock
    from gateway.ledger.books import reverse

    async with _books(args) as engine, engine.begin() as conn:
        entry_id = await reverse(conn, args.entry, system_clock(), args.memo or "")
    print(entry_id)
    return 0


# -- audit verify --------------------------------------------------------------------------------


async def _verify(args: argparse.Namespace) -> int:
    from gateway.ledger.audit import verify

    async with _books(args) as engine, engine.connect() as conn:
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


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the ``ledger`` and ``audit`` command groups."""
    ledger = subparsers.add_parser("ledger", help="the double-entry ledger (docs/ledger.md)")
    cmds = ledger.add_subparsers(dest="ledger_command", required=True)
    rules = cmds.add_parser("rules", help="posting rules").add_subparsers(dest="rules_command", required=True)
    p = rules.add_parser("check", help="check the chart and posting rules; show what each transition posts")
    p.add_argument("--file", help="rules file (default: ledger.file of the configuration)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_rules_check)

    p = cmds.add_parser("trial-balance", help="every account's balance per currency; each currency sums to zero")
    p.add_argument("--as-of", help="the books as they stood at this instant or at the end of this date (UTC)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_trial_balance)

    p = cmds.add_parser("backfill", help="post the entries of instructions that moved before the ledger existed")
    p.set_defaults(func=_backfill)

    p = cmds.add_parser("close", help="close an accounting period (YYYY-MM) and every one before it")
    p.add_argument("period", help="e.g. 2026-11")
    p.set_defaults(func=_close)

    p = cmds.add_parser("reverse", help="post the entry that reverses ENTRY (a correction); prints its id")
    p.add_argument("entry", type=_entry_id, help="the id of the entry to reverse")
    p.add_argument("--memo", help="why (kept on the reversing entry)")
    p.set_defaults(func=_reverse)

    from gateway.ledger.export import register_export

    register_export(cmds)

    audit = subparsers.add_parser("audit", help="tamper evidence").add_subparsers(dest="audit_command", required=True)
    p = audit.add_parser("verify", help="recompute the hash chains; exit 1 naming the first row tampered with")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_verify)
