"""``/v1/webhook-endpoints`` and ``/v1/webhook-deliveries``: a business unit's status webhooks (docs/webhooks.md).

A business unit's key (scope ``instructions``) manages its own endpoints and sees its
own deliveries only; another unit's ids answer 404. An endpoint's signing secret is
in the answer that creates it (create, rotate-secret) and nowhere else.
"""

from __future__ import annotations

import logging
import re
from datetime import timedelta
from typing import Any

from aiohttp import web
from jsonschema import Draft202012Validator

from gateway.api.appkeys import SERVICES, SETTINGS
from gateway.api.auth import authenticate
from gateway.api.bodies import read_json
from gateway.api.instructions import INSTRUCTION_ID_RE
from gateway.api.paging import PAGE_PARAMETERS, allow_only, page_cursor, page_limit, path_id
from gateway.contracts.registry import check_body
from gateway.domain.status import Status
from gateway.errors import BadRequestError
from gateway.store import webhooks as store
from gateway.webhooks.urls import MAX_URL_LENGTH, URL_PATTERN, check_url

__all__ = ["CREATE_SCHEMA", "ROTATE_SCHEMA", "UPDATE_SCHEMA", "routes"]

log = logging.getLogger(__name__)
routes = web.RouteTableDef()

ENDPOINT_ID_RE = re.compile(r"^whe_[0-9A-Z]{26}$")
DELIVERY_ID_RE = re.compile(r"^whd_[0-9A-Z]{26}$")
_NO_STORE = {"Cache-Control": "no-store"}

EVENTS_SCHEMA: dict[str, Any] = {
    "type": "array",
    "items": {"enum": [store.ALL_EVENTS, *(s.value for s in Status)]},
    "minItems": 1,
    "uniqueItems": True,
    "description": "the statuses to be told about, or * for every status change",
}
URL_SCHEMA: dict[str, Any] = {
    "type": "string",
    "minLength": 1,
    "maxLength": MAX_URL_LENGTH,
    "pattern": URL_PATTERN,
    "description": "where the gateway POSTs events: http(s); public addresses only unless the gateway allows others",
}
CREATE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["url"],
    "properties": {
        "url": URL_SCHEMA,
        "events": {**EVENTS_SCHEMA, "default": [store.ALL_EVENTS]},
        "enabled": {"type": "boolean", "default": True},
    },
}
UPDATE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {"url": URL_SCHEMA, "events": EVENTS_SCHEMA, "enabled": {"type": "boolean"}},
}
ROTATE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "overlap_seconds": {
            "type": "integer",
            "minimum": 0,
            "maximum": int(store.MAX_SECRET_OVERLAP.total_seconds()),
            "description": "how long the old secret keeps signing beside the new one "
            "(default: webhooks.secret_overlap_seconds)",
        }
    },
}
_CREATE = Draft202012Validator(CREATE_SCHEMA)
_UPDATE = Draft202012Validator(UPDATE_SCHEMA)
_ROTATE = Draft202012Validator(ROTATE_SCHEMA)


def _endpoint_id(request: web.Request) -> str:
    value = request.match_info["id"]
    return path_id(value, ENDPOINT_ID_RE, f"no webhook endpoint {value!r}")


def _checked_url(request: web.Request, body: Any) -> str | None:
    """The body's ``url`` if it has one the gateway may call (checked first, for a message better than a regex)."""
    if isinstance(body, dict) and isinstance(body.get("url"), str):
        return check_url(body["url"], allow_private=request.app[SETTINGS].webhooks.allow_private_addresses)
    return None


@routes.get("/v1/webhook-endpoints")
async def list_endpoints(request: web.Request) -> web.Response:
    """The business unit's webhook endpoints, newest first."""
    rt = request.app[SERVICES]
    principal = await authenticate(request, "instructions")
    allow_only(request.query, *PAGE_PARAMETERS)
    limit = page_limit(request.query)
    async with rt.engine.connect() as conn:
        found = await store.list_endpoints(
            conn,
            business_unit_id=principal.business_unit_id,
            before=page_cursor(request.query, ENDPOINT_ID_RE),
            limit=limit + 1,
        )
    now = rt.clock()
    items = [e.as_dict(now) for e in found[:limit]]
    return web.json_response({"items": items, "next_cursor": items[-1]["id"] if len(found) > limit else None})


@routes.post("/v1/webhook-endpoints")
async def create_endpoint(request: web.Request) -> web.Response:
    """Register an endpoint; the answer holds its signing secret, shown this once."""
    rt = request.app[SERVICES]
    principal = await authenticate(request, "instructions")
    body = await read_json(request)
    url = _checked_url(request, body)
    check_body(_CREATE, body)
    now = rt.clock()
    async with rt.engine.begin() as conn:
        endpoint, secret = await store.create_endpoint(
            conn,
            rt.cipher,
            principal.business_unit_id,
            body["url"] if url is None else url,
            body.get("events", [store.ALL_EVENTS]),
            now,
            enabled=body.get("enabled", True),
        )
    log.info(
        "webhook endpoint %s created for %s by key %s",
        endpoint.id,
        endpoint.business_unit,
        principal.key_id,
        extra={"endpoint_id": endpoint.id, "business_unit": endpoint.business_unit, "actor": principal.key_id},
    )
    headers = {"Location": f"/v1/webhook-endpoints/{endpoint.id}", **_NO_STORE}
    return web.json_response({**endpoint.as_dict(now), "secret": secret}, status=201, headers=headers)


@routes.get("/v1/webhook-endpoints/{id}")
async def get_endpoint(request: web.Request) -> web.Response:
    """One endpoint (never its secret)."""
    rt = request.app[SERVICES]
    principal = await authenticate(request, "instructions")
    endpoint_id = _endpoint_id(request)
    async with rt.engine.connect() as conn:
        endpoint = await store.get_endpoint(conn, endpoint_id, principal.business_unit_id)
    return web.json_response(endpoint.as_dict(rt.clock()))


@routes.patch("/v1/webhook-endpoints/{id}")
async def update_endpoint(request: web.Request) -> web.Response:
    """Change an endpoint's URL, events or ``enabled`` (enabling it again clears its failure count)."""
    rt = request.app[SERVICES]
    principal = await authenticate(request, "instructions")
    endpoint_id = _endpoint_id(request)
    body = await read_json(request)
    url = _checked_url(request, body)
    check_body(_UPDATE, body)
    now = rt.clock()
    async with rt.engine.begin() as conn:
        endpoint = await store.update_endpoint(
            conn,
            endpoint_id,
            now,
            business_unit_id=principal.business_unit_id,
            url=url,
            events=body.get("events"),
            enabled=body.get("enabled"),
        )
    if endpoint.enabled:
        rt.wake_webhooks()
    return web.json_response(endpoint.as_dict(now))


@routes.delete("/v1/webhook-endpoints/{id}")
async def delete_endpoint(request: web.Request) -> web.Response:
    """Delete an endpoint and its deliveries."""
    rt = request.app[SERVICES]
    principal = await authenticate(request, "instructions")
    endpoint_id = _endpoint_id(request)
    async with rt.engine.begin() as conn:
        await store.delete_endpoint(conn, endpoint_id, principal.business_unit_id)
    return web.Response(status=204)


@routes.post("/v1/webhook-endpoints/{id}/rotate-secret")
async def rotate_secret(request: web.Request) -> web.Response:
    """A new signing secret, shown this once; the old one also signs for ``overlap_seconds``."""
    rt = request.app[SERVICES]
    principal = await authenticate(request, "instructions")
    endpoint_id = _endpoint_id(request)
    body: Any = {}
    if request.can_read_body:
        body = await read_json(request)
    check_body(_ROTATE, body)
    overlap = timedelta(seconds=body.get("overlap_seconds", request.app[SETTINGS].webhooks.secret_overlap_seconds))
    now = rt.clock()
    async with rt.engine.begin() as conn:
        endpoint, secret = await store.rotate_secret(
            conn, rt.cipher, endpoint_id, now, overlap, business_unit_id=principal.business_unit_id
        )
    log.info(
        "webhook endpoint %s secret rotated by key %s; the old secret signs until %s",
        endpoint_id,
        principal.key_id,
        (now + overlap).isoformat(),
        extra={"endpoint_id": endpoint_id, "actor": principal.key_id},
    )
    return web.json_response({**endpoint.as_dict(now), "secret": secret}, headers=_NO_STORE)


@routes.get("/v1/webhook-deliveries")
async def list_deliveries(request: web.Request) -> web.Response:
    """The business unit's deliveries, newest first; ``status`` pending, delivered or failed."""
    rt = request.app[SERVICES]
    principal = await authenticate(request, "instructions")
    q = request.query
    allow_only(q, "status", "endpoint_id", "instruction_id", *PAGE_PARAMETERS)
    status = q.get("status")
    if status is not None and status not in store.DELIVERY_STATES:
        raise BadRequestError(f"status must be one of {', '.join(store.DELIVERY_STATES)}")
    endpoint_id = q.get("endpoint_id")
    if endpoint_id is not None and not ENDPOINT_ID_RE.fullmatch(endpoint_id):
        raise BadRequestError("endpoint_id must be a webhook endpoint id (whe_…)")
    instruction_id = q.get("instruction_id")
    if instruction_id is not None and not INSTRUCTION_ID_RE.fullmatch(instruction_id):
        raise BadRequestError("instruction_id must be an instruction id (ins_…)")
    limit = page_limit(q)
    async with rt.engine.connect() as conn:
        found = await store.list_deliveries(
            conn,
            principal.business_unit_id,
            status=status,
            endpoint_id=endpoint_id,
            instruction_id=instruction_id,
            before=page_cursor(q, DELIVERY_ID_RE),
            limit=limit + 1,
        )
    items = [d.as_dict() for d in found[:limit]]
    return web.json_response({"items": items, "next_cursor": items[-1]["id"] if len(found) > limit else None})


@routes.post("/v1/webhook-deliveries/{id}/redeliver")
async def redeliver(request: web.Request) -> web.Response:
    """Send a delivery again now: same event id, same body; 409 while its endpoint is disabled."""
    rt = request.app[SERVICES]
    principal = await authenticate(request, "instructions")
    value = request.match_info["id"]
    delivery_id = path_id(value, DELIVERY_ID_RE, f"no webhook delivery {value!r}")
    async with rt.engine.begin() as conn:
        delivery = await store.redeliver(conn, delivery_id, rt.clock(), principal.business_unit_id)
    rt.wake_webhooks()
    return web.json_response(delivery.as_dict(), status=202)
