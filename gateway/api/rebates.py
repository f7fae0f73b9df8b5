"""``/v1/rebates``: distributors' rebates per period, and their settlement (scope finance; docs/credit-and-rebates.md).

``GET /v1/rebates?period=2026-Q4`` lists the period's rows (one per program,
distributor and currency: a handful, not paged) with the final amount and true-up
the settlement would post. ``POST /v1/rebates/settle`` settles the period as
``gateway rebates settle`` does; with an Idempotency-Key, a repeated request gets
the first answer back, and a new request for a settled period settles nothing.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from aiohttp import web
from jsonschema import Draft202012Validator
from sqlalchemy.exc import IntegrityError

from gateway.api.appkeys import SERVICES
from gateway.api.auth import authenticate
from gateway.api.bodies import idempotency_key, read_json
from gateway.api.paging import allow_only
from gateway.contracts.registry import check_body
from gateway.domain.rebates import parse_period
from gateway.errors import BadRequestError, ConfigError, ConflictError, ContractError, FieldError
from gateway.finance.rebates import lines, settle_period
from gateway.store import receivables as keys

__all__ = ["routes"]

routes = web.RouteTableDef()

PERIOD_PATTERN = r"^2[0-9]{3}-(Q[1-4]|0[1-9]|1[0-2])$"

SETTLE_REQUEST: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["period"],
    "properties": {
        "period": {"type": "string", "pattern": PERIOD_PATTERN, "description": "YYYY-Qn (a quarter) or YYYY-MM"},
        "dry_run": {"type": "boolean", "default": False, "description": "show what would be posted; change nothing"},
    },
}
_SETTLE = Draft202012Validator(SETTLE_REQUEST)


@routes.get("/v1/rebates")
async def list_rebates(request: web.Request) -> web.Response:
    """The period's rebate rows (scope finance)."""
    rt = request.app[SERVICES]
    await authenticate(request, "finance")
    allow_only(request.query, "period")
    period = request.query.get("period", "")
    try:
        parse_period(period)
    except ValueError as exc:
        raise BadRequestError(str(exc)) from None
    return web.json_response({"period": period, "items": await lines(rt.engine, rt.rebate_programs, period)})


@routes.post("/v1/rebates/settle")
async def settle(request: web.Request) -> web.Response:
    """Settle a period's open rows: true-ups, credit notes or payouts through intake, once (scope finance)."""
    rt = request.app[SERVICES]
    principal = await authenticate(request, "finance")
    key = idempotency_key(request)
    body = await read_json(request)
    check_body(_SETTLE, body)
    period = body["period"]
    try:
        parse_period(period)
    except ValueError as exc:
        raise ContractError(f"/period: {exc}", errors=[FieldError("/period", str(exc))]) from None
    digest = hashlib.sha256(json.dumps([request.path, body], sort_keys=True).encode()).hexdigest()
    async with rt.engine.connect() as conn:
        replay = await keys.replayed_response(conn, principal.business_unit_id, key, digest)
    if replay is not None:
        return web.json_response(replay[1], status=replay[0], headers={"Idempotent-Replayed": "true"})
    try:
        items = await settle_period(
            rt.engine,
            rt.rebate_programs,
            period,
            rt.clock,
            contracts=rt.contracts,
            codec=rt.codec,
            writer=rt.writer,
            dry_run=bool(body.get("dry_run", False)),
        )
    except ConfigError as exc:  # a program's payout parties the instruction contract refuses: fix the file
        raise ConflictError(f"cannot settle {period}: {exc.message}") from None
    response = {"period": period, "items": items}
    try:
        async with rt.engine.begin() as conn:
            await keys.remember_response(conn, principal.business_unit_id, key, digest, 200, response, rt.clock())
    except IntegrityError:
        raise ConflictError("a concurrent request used this Idempotency-Key; read GET /v1/rebates") from None
    return web.json_response(response)
