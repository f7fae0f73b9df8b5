"""``/v1/rollout``: the staged rollout modes per business unit and partner (admin; docs/go-live.md).

``GET`` lists every stored mode (a business unit and partner not listed is ``live``);
``PUT /v1/rollout/{business_unit}/{partner}`` sets one, audited like ``gateway rollout set``
(who is ``api:<key id>``). Payments already routed keep their route.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from aiohttp import web
from sqlalchemy import select

from gateway.api.appkeys import SERVICES, ApiServices
from gateway.api.auth import authenticate
from gateway.api.bodies import read_json
from gateway.api.paging import allow_only
from gateway.contracts.registry import check_body
from gateway.contracts.strict_schema import StrictValidator
from gateway.errors import BadRequestError, ContractError, FieldError, NotFoundError
from gateway.store.rollout import DEFAULT, MODES, RolloutMode, parse_mode, set_mode, table_modes
from gateway.store.tables import business_units

__all__ = [
    "BUSINESS_UNIT_PATTERN",
    "DOCUMENTED_MODE_SCHEMA",
    "MODE_SCHEMA",
    "PARTNER_PATTERN",
    "change_mode",
    "check_names",
    "routes",
]

routes = web.RouteTableDef()

BUSINESS_UNIT_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"
PARTNER_PATTERN = r"^[a-z][a-z0-9_]{0,63}$"
MODE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["mode"],
    "properties": {
        "mode": {"enum": list(MODES)},
        "percent": {"type": "integer", "minimum": 1, "maximum": 99, "description": "canary only (and required)"},
    },
}
_MODE = StrictValidator(MODE_SCHEMA)
#: what the OpenAPI document says: the schema plus its cross-field rule (canary needs a percent, others take none)
DOCUMENTED_MODE_SCHEMA: dict[str, Any] = {
    **MODE_SCHEMA,
    "if": {"properties": {"mode": {"const": "canary"}}},
    "then": {"required": ["percent"]},
    "else": {"not": {"required": ["percent"]}},
}


def _view(business_unit: str, partner: str, mode: RolloutMode, at: datetime, who: str) -> dict[str, Any]:
    return {
        "business_unit": business_unit,
        "partner": partner,
        "mode": mode.mode,
        "percent": mode.percent,
        "updated_at": at.isoformat(),
        "updated_by": who,
    }


@routes.get("/v1/rollout")
async def list_rollout(request: web.Request) -> web.Response:
    """Every stored mode; the default for the rest."""
    rt = request.app[SERVICES]
    await authenticate(request, "admin")
    allow_only(request.query)
    async with rt.engine.connect() as conn:
        stored = await table_modes(conn)
    items = [_view(bu, partner, mode, at, who) for (bu, partner), (mode, at, who) in stored.items()]
    return web.json_response({"default": DEFAULT.mode, "items": items})


def check_names(business_unit: str, partner: str) -> None:
    """A business unit and a partner named as the API takes them; ``BadRequestError`` otherwise."""
    if not re.fullmatch(BUSINESS_UNIT_PATTERN, business_unit):
        raise BadRequestError("business_unit must be 1-100 characters [A-Za-z0-9._-]")
    if not re.fullmatch(PARTNER_PATTERN, partner):
        raise BadRequestError("partner must be an adapter name (lower case, digits, _)")


async def change_mode(
    rt: ApiServices, business_unit: str, partner: str, mode: RolloutMode, who: str, reason: str | None = None
) -> dict[str, Any]:
    """Set one business unit and partner's mode, audited (who, when, from, to, why); the API and the console use it.

    404 for a partner that is not an enabled adapter or an unknown business unit; the answer is
    the new mode's view with ``from`` (the mode before, as text).
    """
    check_names(business_unit, partner)
    if partner not in rt.adapters:
        raise NotFoundError(f"no enabled adapter named {partner!r}")
    async with rt.engine.connect() as conn:
        known = (
            await conn.execute(select(business_units.c.id).where(business_units.c.name == business_unit))
        ).scalar_one_or_none()
    if known is None:
        raise NotFoundError(f"no business unit named {business_unit!r}")
    now = rt.clock()
    before, _ = await set_mode(rt.engine, business_unit, partner, mode, who, now, reason)
    return {**_view(business_unit, partner, mode, now, who), "from": str(before)}


@routes.put("/v1/rollout/{business_unit}/{partner}")
async def put_rollout(request: web.Request) -> web.Response:
    """Set one business unit and partner's mode (admin scope), audited."""
    rt = request.app[SERVICES]
    principal = await authenticate(request, "admin")
    business_unit = request.match_info["business_unit"]
    partner = request.match_info["partner"]
    check_names(business_unit, partner)
    body = await read_json(request)
    check_body(_MODE, body)
    percent = body.get("percent")
    if (body["mode"] == "canary") != (percent is not None):
        why = "canary needs a percent (1-99)"
        if percent is not None:
            why = f"percent applies only to canary, not to {body['mode']}"
        raise ContractError(f"/percent: {why}", errors=[FieldError("/percent", why)])
    mode = parse_mode(body["mode"], None if percent is None else int(percent))  # 30.0 is the integer 30 in JSON
    view = await change_mode(rt, business_unit, partner, mode, f"api:{principal.key_id}")
    view.pop("from")
    return web.json_response(view)
