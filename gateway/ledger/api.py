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

from gateway.api.auth import authenticate
from gateway.api.instructions import _parse_bound
from gateway.api.keys import RUNTIME
from gateway.api.paging import page_cursor, page_limit
from gateway.errors import ForbiddenError, NotFoundError
from gateway.ledger import books
from gateway.ledger.cli import amount_text

__all__ = ["openapi_paths", "openapi_schemas", "routes"]

routes = web.RouteTableDef()

_ACCOUNT_CURSOR = re.compile(r"^[^\x00-\x1f]{1,200}$")
_ENTRY_CURSOR = re.compile(r"^[1-9][0-9]{0,17}$")


async def _reader(request: web.Request) -> str | None:
    """Authenticate; the business unit the caller is limited to (None: finance reads everything)."""
    try:
        await authenticate(request, "finance")
        return None
    except ForbiddenError:
        principal = await authenticate(request, "instructions")
        return principal.business_unit


def _instant(name: str, value: str | None, end: bool = False) -> datetime | None:
    """An ISO 8601 instant (UTC without an offset) or a date (its start, or with ``end`` its end); 400 otherwise."""
    return None if value is None else _parse_bound(name, value, end)


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
    rt = request.app[RUNTIME]
    limited = await _reader(request)
    limit = page_limit(request.query)
    cursor = page_cursor(request.query, _ACCOUNT_CURSOR)
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
    rt = request.app[RUNTIME]
    limited = await _reader(request)
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
    rt = request.app[RUNTIME]
    limited = await _reader(request)
    q = request.query
    limit = page_limit(q)
    cursor = page_cursor(q, _ENTRY_CURSOR)
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


# -- OpenAPI -------------------------------------------------------------------------------------


def openapi_schemas() -> dict[str, Any]:
    balance = {
        "type": "object",
        "properties": {
            "currency": {"type": "string"},
            "debits": {"type": "string", "description": "decimal amount"},
            "credits": {"type": "string"},
            "balance": {"type": "string", "description": "debits minus credits"},
            "balance_minor": {"type": "integer", "description": "the balance in minor units"},
        },
    }
    return {
        "LedgerBalance": balance,
        "LedgerAccount": {
            "type": "object",
            "description": "A ledger account (docs/ledger.md) with its balance per currency.",
            "properties": {
                "name": {"type": "string", "examples": ["bu:erp-europe:receivable"]},
                "type": {"enum": ["asset", "liability", "income", "expense", "equity"]},
                "business_unit": {"type": ["string", "null"]},
                "as_of": {"type": ["string", "null"], "format": "date-time"},
                "balances": {"type": "array", "items": {"$ref": "#/components/schemas/LedgerBalance"}},
            },
        },
        "LedgerEntry": {
            "type": "object",
            "description": "A balanced journal entry; a debit is positive, a credit negative.",
            "properties": {
                "id": {"type": "integer"},
                "kind": {"type": "string", "description": "payment, or an event kind (fee, …)"},
                "memo": {"type": "string", "examples": ["submitted → settled"]},
                "instruction_id": {"type": ["string", "null"]},
                "business_unit": {"type": ["string", "null"]},
                "booked_at": {"type": "string", "format": "date-time"},
                "original_at": {"type": ["string", "null"], "format": "date-time", "description": "late entries"},
                "reverses": {"type": ["integer", "null"], "description": "the entry this one corrects"},
                "postings": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "account": {"type": "string"},
                            "currency": {"type": "string"},
                            "amount": {"type": "string"},
                            "amount_minor": {"type": "integer"},
                        },
                    },
                },
            },
        },
    }


def openapi_paths(bearer: list[dict[str, list[str]]], problems: Any, json_body: Any, page: Any) -> dict[str, Any]:
    scope = "Scope `finance` reads every account; a business unit's key only its own (others are 404)."
    page_params = [
        {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 200}},
        {"name": "cursor", "in": "query", "schema": {"type": "string"}, "description": "next_cursor of the last page"},
    ]
    return {
        "/v1/ledger/accounts": {
            "get": {
                "summary": "Ledger accounts with their current balances, by name",
                "description": scope,
                "operationId": "listLedgerAccounts",
                "security": bearer,
                "parameters": page_params,
                "responses": {"200": json_body(page("LedgerAccount"), "A page of accounts"), **problems(400, 401, 403)},
            }
        },
        "/v1/ledger/accounts/{name}": {
            "get": {
                "summary": "One account's balance per currency, now or as of an instant",
                "description": scope,
                "operationId": "getLedgerAccount",
                "security": bearer,
                "parameters": [
                    {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}},
                    {
                        "name": "as_of",
                        "in": "query",
                        "schema": {"type": "string"},
                        "description": "ISO 8601 instant, or a date (its end, UTC)",
                    },
                ],
                "responses": {
                    "200": json_body({"$ref": "#/components/schemas/LedgerAccount"}, "The account"),
                    **problems(400, 401, 403, 404),
                },
            }
        },
        "/v1/ledger/entries": {
            "get": {
                "summary": "Journal entries in journal order",
                "description": scope + " `from`/`to` bound the booking time (dates: whole days, UTC).",
                "operationId": "listLedgerEntries",
                "security": bearer,
                "parameters": [
                    {"name": "instruction_id", "in": "query", "schema": {"type": "string"}},
                    {"name": "account", "in": "query", "schema": {"type": "string"}},
                    {"name": "from", "in": "query", "schema": {"type": "string"}},
                    {"name": "to", "in": "query", "schema": {"type": "string"}},
                    *page_params,
                ],
                "responses": {"200": json_body(page("LedgerEntry"), "A page of entries"), **problems(400, 401, 403)},
            }
        },
    }
