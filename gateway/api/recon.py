"""Reconciliation over HTTP (scope ``finance``): runs, breaks and their workflow, matches, control totals.

``POST /v1/recon/run`` matches what the rules of ``config/reconciliation.yaml``
explain and syncs the breaks (``source`` / ``date`` narrow it);
``GET /v1/recon/breaks`` pages the stored breaks (open by default) by id;
``/v1/recon/breaks/{id}/…`` assigns, comments, resolves, matches by hand or
writes off (four eyes above the threshold); ``POST /v1/recon/matches/{ref}/confirm``
confirms a suggested match, ``…/reject`` rejects one (``dry_run=true`` on a run
reports what it would do and writes nothing); ``GET /v1/recon/summary`` is the matched share and
the breaks by kind and age; ``POST /v1/control-totals`` takes what a business
unit says it sent. See docs/reconciliation.md.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Any

from aiohttp import web
from sqlalchemy.exc import IntegrityError

from gateway.api.appkeys import SERVICES
from gateway.api.auth import authenticate
from gateway.api.bodies import read_json
from gateway.api.paging import PAGE_PARAMETERS, allow_only, page_cursor, page_limit, path_id
from gateway.contracts.registry import check_body
from gateway.contracts.strict_schema import StrictValidator
from gateway.errors import BadRequestError, ConflictError, ContractError, FieldError
from gateway.recon.breaks import (
    BREAK_KINDS,
    BREAK_STATES,
    OPEN_STATES,
    add_comment,
    assign_break,
    break_view,
    get_break,
    list_breaks,
    resolve_break,
    summary,
    write_off_break,
)
from gateway.recon.controls import checked_totals, store_totals
from gateway.recon.rules import ReconRules, load_recon_rules
from gateway.recon.service import confirm_match, match_by_hand, reject_match, run_recon

__all__ = [
    "BREAK_CURSOR",
    "BREAK_ID",
    "CONTROL_TOTALS_SCHEMA",
    "HAND_MATCH_SCHEMA",
    "MATCH_REF",
    "OWNER_SCHEMA",
    "REASON_SCHEMA",
    "SOURCE_PATTERN",
    "TEXT_SCHEMA",
    "routes",
]

routes = web.RouteTableDef()

SOURCE_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
BREAK_ID = re.compile(r"^brk_[1-9][0-9]{0,17}$")
BREAK_CURSOR = re.compile(r"^[1-9][0-9]{0,17}$")
MATCH_REF = re.compile(r"^(m_[1-9][0-9]{0,17}|ln_[1-9][0-9]{0,17}_[1-9][0-9]{0,8})$")
_DAY = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")

REASON_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["reason"],
    "properties": {"reason": {"type": "string", "minLength": 1, "maxLength": 200, "description": "why (kept)"}},
}
OWNER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["owner"],
    "properties": {"owner": {"type": "string", "minLength": 1, "maxLength": 64, "description": "who works on it"}},
}
TEXT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["text"],
    "properties": {"text": {"type": "string", "minLength": 1, "maxLength": 1000}},
}
HAND_MATCH_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["instruction_ids"],
    "properties": {
        "instruction_ids": {
            "type": "array",
            "minItems": 1,
            "maxItems": 1000,
            "uniqueItems": True,
            "items": {"type": "string", "minLength": 1, "maxLength": 40},
            "description": "the settled payments the break's statement line pays (the difference is a fee)",
        }
    },
}
CONTROL_TOTALS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["date", "totals"],
    "properties": {
        "business_unit": {
            "type": "string",
            "minLength": 1,
            "maxLength": 64,
            "description": "default: the calling key's business unit; another one needs scope finance",
        },
        "date": {"type": "string", "format": "date", "description": "the business day (UTC) the totals are for"},
        "totals": {
            "type": "array",
            "minItems": 1,
            "maxItems": 200,
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["currency", "count", "amount"],
                "properties": {
                    "currency": {"type": "string", "pattern": "^[A-Z]{3}$"},
                    "count": {"type": "integer", "minimum": 0, "maximum": 100000000},
                    "amount": {"type": "string", "pattern": r"^[0-9]{1,15}(\.[0-9]{1,4})?$"},
                },
            },
        },
    },
}
_REASON = StrictValidator(REASON_SCHEMA)
_OWNER = StrictValidator(OWNER_SCHEMA)
_TEXT = StrictValidator(TEXT_SCHEMA)
_HAND = StrictValidator(HAND_MATCH_SCHEMA)
_TOTALS = StrictValidator(CONTROL_TOTALS_SCHEMA)


def _rules(request: web.Request) -> ReconRules:
    return request.app[SERVICES].recon_rules or load_recon_rules()


def _break_id(request: web.Request) -> str:
    return path_id(request.match_info["id"], BREAK_ID, "no such break (ids look like brk_<number>)")


def _day(value: str, name: str) -> date:
    try:
        if not _DAY.fullmatch(value):
            raise ValueError(value)
        return date.fromisoformat(value)
    except ValueError:
        raise BadRequestError(f"{name} must be a date (YYYY-MM-DD)") from None


@routes.post("/v1/recon/run")
async def run(request: web.Request) -> web.Response:
    """Match what the rules explain, post it to the ledger, and sync the breaks."""
    rt = request.app[SERVICES]
    await authenticate(request, "finance")
    allow_only(request.query, "source", "date", "dry_run")
    source = request.query.get("source")
    if source is not None and not SOURCE_PATTERN.fullmatch(source):
        raise BadRequestError("source must be an adapter's name (e.g. iso20022_bank)")
    on = _day(request.query["date"], "date") if "date" in request.query else None
    dry = request.query.get("dry_run", "false")
    if dry not in ("true", "false"):
        raise BadRequestError("dry_run must be true or false", errors=[FieldError("dry_run", "true or false")])
    report = await run_recon(rt.engine, _rules(request), now=rt.clock(), source=source, on=on, dry_run=dry == "true")
    return web.json_response(report.as_dict())


@routes.get("/v1/recon/breaks")
async def breaks(request: web.Request) -> web.Response:
    """Breaks by id (oldest first); ``state`` (default ``open``: open or pending write-off), ``kind``, ``source``."""
    rt = request.app[SERVICES]
    await authenticate(request, "finance")
    allow_only(request.query, "kind", "state", "source", *PAGE_PARAMETERS)
    kind = request.query.get("kind")
    if kind is not None and kind not in BREAK_KINDS:
        raise BadRequestError(f"kind must be one of {', '.join(BREAK_KINDS)}")
    state = request.query.get("state", "open")
    if state not in (*BREAK_STATES, "all"):
        raise BadRequestError(f"state must be one of {', '.join(BREAK_STATES)} or all")
    states = OPEN_STATES if state == "open" else BREAK_STATES if state == "all" else (state,)
    source = request.query.get("source")
    if source is not None and not re.fullmatch(r"^[a-z0-9_:.-]{1,64}$", source):
        raise BadRequestError("source must be an adapter's name or bu:<business unit>")
    limit = page_limit(request.query)
    cursor = page_cursor(request.query, BREAK_CURSOR)
    found = await list_breaks(
        rt.engine, states=states, kind=kind, source=source, after=int(cursor or 0), limit=limit + 1
    )
    today = rt.clock().date()
    page = found[:limit]
    return web.json_response(
        {
            "items": [break_view(r, today) for r in page],
            "next_cursor": str(page[-1]["id"]) if len(found) > limit else None,
        }
    )


@routes.get("/v1/recon/breaks/{id}")
async def one_break(request: web.Request) -> web.Response:
    """A break with its comments."""
    rt = request.app[SERVICES]
    await authenticate(request, "finance")
    allow_only(request.query)
    row, comments = await get_break(rt.engine, _break_id(request))
    return web.json_response(break_view(row, rt.clock().date(), comments))


async def _break_request(request: web.Request, validator: StrictValidator) -> tuple[str, str, dict[str, Any]]:
    """Authenticate (scope ``finance``), refuse query parameters, check the break id and the body.

    Returns the caller's key id, the break id and the checked body.
    """
    principal = await authenticate(request, "finance")
    allow_only(request.query)
    break_id = _break_id(request)
    body = await read_json(request)
    check_body(validator, body)
    return principal.key_id, break_id, body


async def _after(request: web.Request, break_id: str) -> web.Response:
    rt = request.app[SERVICES]
    row, comments = await get_break(rt.engine, break_id)
    return web.json_response(break_view(row, rt.clock().date(), comments))


@routes.post("/v1/recon/breaks/{id}/assign")
async def assign(request: web.Request) -> web.Response:
    """Give a break an owner."""
    rt = request.app[SERVICES]
    by, break_id, body = await _break_request(request, _OWNER)
    await assign_break(rt.engine, break_id, body["owner"], by=by, now=rt.clock())
    return await _after(request, break_id)


@routes.post("/v1/recon/breaks/{id}/comments")
async def comment(request: web.Request) -> web.Response:
    """Add a comment to a break."""
    rt = request.app[SERVICES]
    by, break_id, body = await _break_request(request, _TEXT)
    await add_comment(rt.engine, break_id, body["text"], by=by, now=rt.clock())
    return await _after(request, break_id)


@routes.post("/v1/recon/breaks/{id}/resolve")
async def resolve(request: web.Request) -> web.Response:
    """Close a break with a reason (a line in suspense must be matched or written off instead)."""
    rt = request.app[SERVICES]
    by, break_id, body = await _break_request(request, _REASON)
    await resolve_break(rt.engine, break_id, body["reason"], by=by, now=rt.clock())
    return await _after(request, break_id)


@routes.post("/v1/recon/breaks/{id}/write-off")
async def write_off(request: web.Request) -> web.Response:
    """Write a line's suspense off; above the threshold the first call asks and a second person approves."""
    rt = request.app[SERVICES]
    by, break_id, body = await _break_request(request, _REASON)
    await write_off_break(rt.engine, break_id, body["reason"], _rules(request), by=by, now=rt.clock())
    return await _after(request, break_id)


@routes.post("/v1/recon/breaks/{id}/match")
async def hand_match(request: web.Request) -> web.Response:
    """Match a break's statement line to settled payments by hand."""
    rt = request.app[SERVICES]
    by, break_id, body = await _break_request(request, _HAND)
    await match_by_hand(rt.engine, break_id, body["instruction_ids"], by=by, now=rt.clock())
    return await _after(request, break_id)


@routes.post("/v1/recon/matches/{ref}/confirm")
async def confirm(request: web.Request) -> web.Response:
    """Confirm a suggested match (``m_<id>``, or a statement line of it ``ln_<statement>_<line>``)."""
    rt = request.app[SERVICES]
    principal = await authenticate(request, "finance")
    allow_only(request.query)
    ref = path_id(request.match_info["ref"], MATCH_REF, "no such match (m_<id> or ln_<statement>_<line>)")
    paid = await confirm_match(rt.engine, ref, by=principal.key_id, now=rt.clock())
    return web.json_response({"match": ref, "instruction_ids": paid, "status": "confirmed"})


@routes.post("/v1/recon/matches/{ref}/reject")
async def reject(request: web.Request) -> web.Response:
    """Reject a suggested match: its lines and payments are free again, the same pairing never suggested again."""
    rt = request.app[SERVICES]
    principal = await authenticate(request, "finance")
    allow_only(request.query)
    ref = path_id(request.match_info["ref"], MATCH_REF, "no such match (m_<id> or ln_<statement>_<line>)")
    body = await read_json(request)
    check_body(_REASON, body)
    return web.json_response(await reject_match(rt.engine, ref, body["reason"], by=principal.key_id, now=rt.clock()))


@routes.get("/v1/recon/summary")
async def recon_summary(request: web.Request) -> web.Response:
    """Matched share of statement lines; open breaks by kind and by age."""
    rt = request.app[SERVICES]
    await authenticate(request, "finance")
    allow_only(request.query)
    return web.json_response(await summary(rt.engine, rt.clock().date()))


@routes.post("/v1/control-totals")
async def post_control_totals(request: web.Request) -> web.Response:
    """What a business unit says it sent on a day: count and sum per currency (the next run compares)."""
    rt = request.app[SERVICES]
    principal = await authenticate(request, "instructions", "finance")
    allow_only(request.query)
    body = await read_json(request)
    check_body(_TOTALS, body)
    unit = body.get("business_unit", principal.business_unit)
    if unit != principal.business_unit and "finance" not in principal.scopes and "admin" not in principal.scopes:
        raise ContractError(
            "/business_unit: only a finance key sends another business unit's totals",
            errors=[FieldError("/business_unit", "not this key's business unit")],
        )
    day = _day(body["date"], "/date")
    rows = checked_totals(unit, day, body["totals"])
    try:
        await store_totals(rt.engine, rows, principal.key_id, rt.clock())
    except IntegrityError:
        raise ConflictError("the same totals are being sent concurrently; send them again") from None
    return web.json_response({"business_unit": unit, "date": day.isoformat(), "totals": body["totals"]})
