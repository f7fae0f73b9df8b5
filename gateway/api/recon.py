"""Reconciliation over HTTP (scope ``finance``): run the matching rules, list breaks, confirm a match.

``POST /v1/recon/run`` matches every unmatched statement line it can
(``source`` narrows it to one partner); ``GET /v1/recon/breaks`` lists what is
left — lines nothing explains, returns and notifications of change, suggested
matches waiting for finance, settled payments missing from their partner's
statements — in a stable order, paged; ``POST /v1/recon/matches/{line}/confirm``
confirms a suggested match. See docs/reconciliation.md.
"""

from __future__ import annotations

import re

from aiohttp import web

from gateway.api.appkeys import SERVICES, SETTINGS
from gateway.api.auth import authenticate
from gateway.api.paging import PAGE_PARAMETERS, allow_only, page_cursor, page_limit
from gateway.errors import BadRequestError
from gateway.recon.matching import BREAK_KINDS, confirm_match, list_breaks, run_matching

__all__ = ["BREAK_CURSOR", "SOURCE_PATTERN", "routes"]

routes = web.RouteTableDef()

SOURCE_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
BREAK_CURSOR = re.compile(r"^(" + "|".join(BREAK_KINDS) + r")/[A-Za-z0-9_]{1,60}$")


@routes.post("/v1/recon/run")
async def run(request: web.Request) -> web.Response:
    """Run the matching rules over every unmatched statement line (of one ``source``, if given)."""
    rt = request.app[SERVICES]
    await authenticate(request, "finance")
    allow_only(request.query, "source")
    source = request.query.get("source")
    if source is not None and not SOURCE_PATTERN.fullmatch(source):
        raise BadRequestError("source must be an adapter's name (e.g. iso20022_bank)")
    found = await run_matching(rt.engine, request.app[SETTINGS].reconciliation, now=rt.clock(), source=source)
    return web.json_response(found.as_dict())


@routes.get("/v1/recon/breaks")
async def breaks(request: web.Request) -> web.Response:
    """Open breaks by kind, then id; ``kind`` narrows them."""
    rt = request.app[SERVICES]
    await authenticate(request, "finance")
    allow_only(request.query, "kind", *PAGE_PARAMETERS)
    kind = request.query.get("kind")
    if kind is not None and kind not in BREAK_KINDS:
        raise BadRequestError(f"kind must be one of {', '.join(BREAK_KINDS)}")
    limit = page_limit(request.query)
    cursor = page_cursor(request.query, BREAK_CURSOR)
    found = await list_breaks(rt.engine, request.app[SETTINGS].reconciliation, now=rt.clock())
    if kind is not None:
        found = [b for b in found if b.kind == kind]
    if cursor is not None:
        after_kind, after_id = cursor.split("/", 1)
        after = (BREAK_KINDS.index(after_kind), after_id)
        found = [b for b in found if (BREAK_KINDS.index(b.kind), b.id) > after]
    page = found[:limit]
    return web.json_response(
        {
            "items": [b.as_dict() for b in page],
            "next_cursor": f"{page[-1].kind}/{page[-1].id}" if len(found) > limit else None,
        }
    )


@routes.post("/v1/recon/matches/{line}/confirm")
async def confirm(request: web.Request) -> web.Response:
    """Confirm the suggested match of a statement line (``ln_<statement>_<line>``)."""
    rt = request.app[SERVICES]
    principal = await authenticate(request, "finance")
    allow_only(request.query)
    line = request.match_info["line"]
    instruction_id = await confirm_match(rt.engine, line, by=principal.key_id, now=rt.clock())
    return web.json_response({"line": line, "instruction_id": instruction_id, "status": "confirmed"})
