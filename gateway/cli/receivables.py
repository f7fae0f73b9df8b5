"""``gateway receivables …``: invoices to distributors and what has been paid of them (docs/credit-and-rebates.md).

Read-only: business units register receivables through ``POST /v1/receivables``.
A bad argument exits 2 with one line.
"""

from __future__ import annotations

import argparse
import json
import re

from sqlalchemy import select

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
from gateway.domain.receivables import DISTRIBUTOR_RE, ReceivableStatus
from gateway.store.creditlines import OPEN_STATUSES
from gateway.store.receivables import receivable_view
from gateway.store.tables import receivables

__all__ = ["register"]

_ID = re.compile(r"^rcv_[0-9A-Z]{26}$")


def _distributor(value: str) -> str:
    if not DISTRIBUTOR_RE.fullmatch(value):
        raise argparse.ArgumentTypeError("a distributor is 1-64 characters [A-Za-z0-9._-]")
    return value


async def _list(args: argparse.Namespace) -> int:
    settings = load(args)
    today = system_clock().date()
    stmt = select(receivables)
    if args.distributor:
        stmt = stmt.where(receivables.c.distributor == args.distributor)
    if args.status:
        stmt = stmt.where(receivables.c.status == args.status)
    if args.overdue:
        stmt = stmt.where(receivables.c.status.in_(OPEN_STATUSES), receivables.c.due_date < today)
    async with database(settings) as engine:
        await require_schema(engine)
        async with engine.connect() as conn:
            rows = (await conn.execute(stmt.order_by(receivables.c.id.desc()).limit(args.limit))).mappings().all()
    views = [receivable_view(r, today) for r in rows]
    if args.json:
        print(json.dumps({"items": views}))
        return 0
    shown = table(
        f"{len(views)} receivables",
        "id",
        "invoice",
        "distributor",
        "amount",
        "outstanding",
        "status",
        "due",
        names=("id", "invoice", "distributor"),
        numbers=("amount", "outstanding"),
    )
    for v in views:
        shown.add_row(
            v["id"],
            v["invoice_number"],
            v["distributor"],
            f"{v['amount']['value']} {v['amount']['currency']}",
            v["outstanding"]["value"],
            "overdue" if v["overdue"] else v["status"],
            v["due_date"],
        )
    console().print(shown)
    return 0


async def _show(args: argparse.Namespace) -> int:
    if not _ID.fullmatch(args.id):
        raise UsageError(f"{args.id[:60]!r} is not a receivable id (rcv_ + 26 characters)")
    settings = load(args)
    async with database(settings) as engine:
        await require_schema(engine)
        async with engine.connect() as conn:
            row = (await conn.execute(select(receivables).where(receivables.c.id == args.id))).mappings().first()
    if row is None:
        raise UsageError(f"no receivable {args.id}")
    print(json.dumps(receivable_view(row, system_clock().date()), indent=None if args.json else 2))
    return 0


def register(subparsers: Subparsers) -> None:
    """Add the ``receivables`` command group."""
    receivable = group(subparsers, "receivables", help="invoices to distributors (docs/credit-and-rebates.md)")
    p = command(receivable, "list", _list, help="receivables, newest first")
    p.add_argument("--distributor", type=_distributor, help="only this distributor's")
    p.add_argument("--status", choices=[s.value for s in ReceivableStatus], help="only in this status")
    p.add_argument("--overdue", action="store_true", help="only open ones past their due date")
    p.add_argument("--limit", type=positive, default=50, help="at most this many (default 50)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p = command(receivable, "show", _show, help="one receivable as JSON")
    p.add_argument("id", help="the receivable's id (rcv_…)")
    p.add_argument("--json", action="store_true", help="one line instead of indented")
