"""The ledger's read API: accounts, balances (now and as of an instant), entries.

Finance keys (scope ``finance``) read every account and entry; a business
unit's key (scope ``instructions``) reads only the accounts of its own business
unit and the entries about its own payments. Another unit's account is "not
found", never "forbidden". Amounts are decimal strings in the currency's minor
units, with the integer count of minor units beside them.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from aiohttp import web

from gateway.api.appkeys import SERVICES
from gateway.api.auth import authenticate
from gateway.api.paging import PAGE_PARAMETERS, allow_only, date_bound, page_cursor, page_limit
from gateway.domain.money import amount_text
from gateway.errors import NotFoundError
from gateway.finance import books

__all__ = ["ACCOUNT_CURSOR", "ENTRY_CURSOR", "routes"]

routes = web.RouteTableDef()

ACCOUNT_CURSOR = re.compile(r"^[^\x00-\x1f]{1,200}$")
ENTRY_CURSOR = re.compile(r"^[1-9][0-9]{0,17}$")


async def _reader(request: web.Request) -> str | None:
    """Authenticate; the business unit the caller is limited to (None: finance reads everything)."""
    principal = await authenticate(request, "finance", "instructions")
    return None if {"finance", "admin"} & principal.scopes else principal.business_unit


def _instant(name: str, value: str | None, end: bool = False) -> datetime | None:
    """An ISO 8601 instant (UTC without an offset) or a date (its start, or with ``end`` its end); 400 otherwise."""
    return None if value is None else date_bound(name, value, end)


def _balance_view(b: books.Balance) -> dict[str, Any]:
    return {
        "currency": b.currency,
        "debits": amount_text(b.debits, b.currency),
        "credits": amount_text(b.credits, b.currency),
        "balance": amount_text(b.balance, b.currency),
        "balance_minor": b.balance,
    }


def _entry_view(e: books.EntryView) -> dict[str, Any]:
    view = e.as_dict()
    view["postings"] = [
        {
            "account": p.account,
            "currency": p.currency,
            "amount": amount_text(p.amount, p.currency),
            "amount_minor": p.amount,
        }
        for p in e.postings
    ]
    return view


@routes.get("/v1/ledger/accounts")
async def list_accounts(request: web.Request) -> web.Response:
    """Accounts with their current balance per currency, by name; a business unit sees its own."""
    rt = request.app[SERVICES]
    limited = await _reader(request)
    allow_only(request.query, *PAGE_PARAMETERS)
    limit = page_limit(request.query)
    cursor = page_cursor(request.query, ACCOUNT_CURSOR)
    async with rt.engine.connect() as conn:
        balances = await books.list_accounts(conn, limited, after=cursor, limit=limit + 1)
    names: list[str] = []
    by_name: dict[str, dict[str, Any]] = {}
    for b in balances:
        if b.account not in by_name:
            names.append(b.account)
            by_name[b.account] = {"name": b.account, "type": b.type, "business_unit": b.business_unit, "balances": []}
        by_name[b.account]["balances"].append(_balance_view(b))
    page = names[:limit]
    return web.json_response(
        {"items": [by_name[n] for n in page], "next_cursor": page[-1] if len(names) > limit else None}
    )


@routes.get("/v1/ledger/accounts/{name}")
async def get_account(request: web.Request) -> web.Response:
    """One account's balance per currency, now or ``as_of`` an instant (the books as they stood then)."""
    rt = request.app[SERVICES]
    limited = await _reader(request)
    allow_only(request.query, "as_of")
    name = request.match_info["name"]
    as_of = _instant("as_of", request.query.get("as_of"), end=True)
    async with rt.engine.connect() as conn:
        balances = await books.account_balances(conn, name, as_of)
    if not balances or (limited is not None and balances[0].business_unit != limited):
        raise NotFoundError(f"no ledger account {name!r}")
    first = balances[0]
    return web.json_response(
        {
            "name": first.account,
            "type": first.type,
            "business_unit": first.business_unit,
            "as_of": as_of.isoformat() if as_of else None,
            "balances": [_balance_view(b) for b in balances],
        }
    )


@routes.get("/v1/ledger/entries")
async def list_entries(request: web.Request) -> web.Response:
    """Journal entries in journal order, filtered by instruction, account and booking date; cursor-paginated."""
    rt = request.app[SERVICES]
    limited = await _reader(request)
    q = request.query
    allow_only(q, "instruction_id", "account", "from", "to", *PAGE_PARAMETERS)
    limit = page_limit(q)
    cursor = page_cursor(q, ENTRY_CURSOR)
    async with rt.engine.connect() as conn:
        found = await books.entries(
            conn,
            instruction_id=q.get("instruction_id"),
            account=q.get("account"),
            business_unit=limited,
            booked_from=_instant("from", q.get("from")),
            booked_to=_instant("to", q.get("to"), end=True),
            after_id=int(cursor) if cursor else 0,
            limit=limit + 1,
        )
    items = [_entry_view(e) for e in found[:limit]]
    return web.json_response({"items": items, "next_cursor": str(items[-1]["id"]) if len(found) > limit else None})
