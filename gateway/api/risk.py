"""Finance and admin endpoints of risk screening: holds (four eyes), alerts, credit limits.

Finance keys (scope ``finance``) see every business unit's holds and alerts:
finance approves for the enterprise. A key never decides a hold on a payment it
submitted itself (403). Credit limits are changed with the ``admin`` scope.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

from aiohttp import web
from sqlalchemy import select

from gateway.api.appkeys import SERVICES
from gateway.api.auth import authenticate
from gateway.api.bodies import read_json
from gateway.api.instructions import INSTRUCTION_ID_RE
from gateway.api.paging import PAGE_PARAMETERS, allow_only, page_cursor, page_limit, path_id
from gateway.contracts.registry import check_body
from gateway.contracts.strict_schema import StrictValidator
from gateway.domain.money import Money
from gateway.errors import BadRequestError, ContractError, DomainError, FieldError, NotFoundError
from gateway.risk import credit
from gateway.risk.holds import hold_query, hold_view
from gateway.store.tables import business_units, holds, instructions, risk_alerts

__all__ = ["DECISION_SCHEMA", "LIMIT_SCHEMA", "routes"]

routes = web.RouteTableDef()

_ALERT_ID = re.compile(r"^alr_[0-9A-Z]{26}$")
_COUNTERPARTY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_CURRENCY = re.compile(r"^[A-Z]{3}$")

DECISION_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["comment"],
    "properties": {"comment": {"type": "string", "minLength": 1, "maxLength": 400, "description": "why (kept)"}},
}
LIMIT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["limit"],
    "properties": {
        "limit": {"type": "string", "pattern": r"^\d{1,15}(\.\d{1,4})?$", "description": "decimal amount"},
        "on_exceed": {"enum": ["hold", "reject"], "default": "hold"},
    },
}
_DECISION = StrictValidator(DECISION_SCHEMA)
_LIMIT = StrictValidator(LIMIT_SCHEMA)


@routes.get("/v1/holds")
async def list_holds(request: web.Request) -> web.Response:
    """Holds, oldest first: ``state=pending`` (default), ``decided`` or ``all``; ``business_unit=NAME``."""
    rt = request.app[SERVICES]
    await authenticate(request, "finance")
    allow_only(request.query, "state", "business_unit", *PAGE_PARAMETERS)
    state = request.query.get("state", "pending")
    query = hold_query()
    if state == "pending":
        query = query.where(holds.c.decision.is_(None), instructions.c.status == "held")
    elif state == "decided":
        query = query.where(holds.c.decision.is_not(None))
    elif state != "all":
        raise BadRequestError("state must be pending, decided or all")
    if "business_unit" in request.query:
        query = query.where(business_units.c.name == request.query["business_unit"])
    limit = page_limit(request.query)
    cursor = page_cursor(request.query, INSTRUCTION_ID_RE)
    if cursor:
        query = query.where(holds.c.instruction_id > cursor)
    query = query.order_by(holds.c.instruction_id).limit(limit + 1)
    async with rt.engine.connect() as conn:
        rows = (await conn.execute(query)).all()
    items = [hold_view(r) for r in rows[:limit]]
    return web.json_response(
        {"items": items, "next_cursor": items[-1]["instruction_id"] if len(rows) > limit else None}
    )


def _hold_id(request: web.Request) -> str:
    value = request.match_info["id"]
    return path_id(value, INSTRUCTION_ID_RE, f"no hold for instruction {value!r}")


@routes.get("/v1/holds/{id}")
async def get_hold(request: web.Request) -> web.Response:
    """One hold, pending or decided (who, when, why)."""
    rt = request.app[SERVICES]
    await authenticate(request, "finance")
    instruction_id = _hold_id(request)
    async with rt.engine.connect() as conn:
        row = (await conn.execute(hold_query().where(holds.c.instruction_id == instruction_id))).first()
    if row is None:
        raise NotFoundError(f"no hold for instruction {instruction_id!r}")
    return web.json_response(hold_view(row))


async def _decide(request: web.Request, approve: bool) -> web.Response:
    rt = request.app[SERVICES]
    principal = await authenticate(request, "finance")
    instruction_id = _hold_id(request)
    body = await read_json(request)
    check_body(_DECISION, body)
    view = await rt.holds.decide(principal, instruction_id, approve, body["comment"].strip() or body["comment"])
    return web.json_response(view)


@routes.post("/v1/holds/{id}/approve")
async def approve_hold(request: web.Request) -> web.Response:
    """Release a held payment to routing (four eyes: not the submitting key)."""
    return await _decide(request, True)


@routes.post("/v1/holds/{id}/reject")
async def reject_hold(request: web.Request) -> web.Response:
    """Reject a held payment for good; the business unit sees a ``rejected`` event."""
    return await _decide(request, False)


def _alert_view(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "instruction_id": row.instruction_id,
        "reference": row.reference,
        "business_unit": row.business_unit,
        "amount": row.amount,
        "currency": row.currency,
        "outcome": row.outcome,
        "reason_code": row.reason_code,
        "findings": row.findings,
        "created_at": row.created_at.isoformat(),
    }


@routes.get("/v1/alerts")
async def list_alerts(request: web.Request) -> web.Response:
    """Screening alerts and operational anomalies, newest first; filter by ``outcome``, ``business_unit``, ``rule``."""
    rt = request.app[SERVICES]
    await authenticate(request, "finance")
    query = select(
        risk_alerts,
        instructions.c.reference,
        instructions.c.amount,
        instructions.c.currency,
        business_units.c.name.label("business_unit"),
    ).select_from(
        # an operational anomaly (outcome anomaly) concerns no single payment: no instruction
        risk_alerts.outerjoin(instructions, instructions.c.id == risk_alerts.c.instruction_id).join(
            business_units, business_units.c.id == risk_alerts.c.business_unit_id
        )
    )
    q = request.query
    allow_only(q, "outcome", "business_unit", "rule", *PAGE_PARAMETERS)
    if "outcome" in q:
        outcomes = [o for o in q["outcome"].split(",") if o]
        if not outcomes or set(outcomes) - {"flag", "hold", "reject", "anomaly"}:
            raise BadRequestError("outcome must be among flag, hold, reject, anomaly")
        query = query.where(risk_alerts.c.outcome.in_(outcomes))
    if "business_unit" in q:
        query = query.where(business_units.c.name == q["business_unit"])
    limit = page_limit(request.query)
    cursor = page_cursor(request.query, _ALERT_ID)
    if cursor:
        query = query.where(risk_alerts.c.id < cursor)
    rule = q.get("rule")
    # the rule filter runs on the decoded findings (portable across SQLite and PostgreSQL JSON)
    query = query.order_by(risk_alerts.c.id.desc()).limit(limit + 1 if rule is None else 5000)
    async with rt.engine.connect() as conn:
        rows = (await conn.execute(query)).all()
    if rule is not None:
        rows = [r for r in rows if any(f.get("rule") == rule for f in r.findings)][: limit + 1]
    items = [_alert_view(r) for r in rows[:limit]]
    return web.json_response({"items": items, "next_cursor": items[-1]["id"] if len(rows) > limit else None})


@routes.get("/v1/credit-limits")
async def list_credit_limits(request: web.Request) -> web.Response:
    """Every credit limit with its exposure (reserved in flight + consumed by settled payments)."""
    rt = request.app[SERVICES]
    await authenticate(request, "finance")
    allow_only(request.query)
    async with rt.engine.connect() as conn:
        limits = await credit.load_limits(conn)
    return web.json_response({"items": [credit.limit_view(row) for row in limits.values()]})


@routes.put("/v1/credit-limits/{counterparty}/{currency}")
async def put_credit_limit(request: web.Request) -> web.Response:
    """Create or change a limit (admin scope); exposure already taken stays."""
    rt = request.app[SERVICES]
    await authenticate(request, "admin")
    counterparty = request.match_info["counterparty"]
    currency = request.match_info["currency"]
    if not _COUNTERPARTY.fullmatch(counterparty):
        raise BadRequestError("counterparty must be 1-64 characters [A-Za-z0-9._-]")
    if not _CURRENCY.fullmatch(currency):
        raise BadRequestError("currency must be an ISO 4217 code like EUR")
    body = await read_json(request)
    check_body(_LIMIT, body)
    try:
        money = Money(Decimal(body["limit"]), currency)
    except DomainError as exc:
        raise ContractError(f"/limit: {exc.message}", errors=[FieldError("/limit", exc.message)]) from None
    async with rt.engine.begin() as conn:
        row = await credit.set_limit(conn, counterparty, currency, money, body.get("on_exceed", "hold"), rt.clock())
    return web.json_response(credit.limit_view(row))
