"""``/v1/api-keys``: the API key life cycle over HTTP (scope ``admin``): list, create, revoke, rotate.

A key's secret is in the answer that creates it (create, rotate) and nowhere else,
ever: the store keeps only its SHA-256. Revoking through this API takes effect at
once in this process (its look-up cache is dropped); other gateway processes
sharing the database notice within ``gateway.api.auth.CACHE_SECONDS``.

Rotation issues a new key with the same business unit and scopes. The old key
stops at once by default, or after ``grace_seconds`` (up to 7 days) so that the
business unit can deploy the new key before the old one stops working.
"""

from __future__ import annotations

import logging
import re
from datetime import timedelta
from typing import Any

from aiohttp import web
from jsonschema import Draft202012Validator

from gateway.api.appkeys import SERVICES
from gateway.api.auth import authenticate, forget_keys
from gateway.api.instructions import read_json
from gateway.api.paging import PAGE_PARAMETERS, allow_only, page_cursor, page_limit, path_id
from gateway.contracts.registry import check_body
from gateway.contracts.safejson import TEXT_PATTERN
from gateway.errors import BadRequestError
from gateway.store import repo

__all__ = ["CREATE_SCHEMA", "ROTATE_SCHEMA", "routes"]

log = logging.getLogger(__name__)
routes = web.RouteTableDef()

KEY_ID_RE = re.compile(r"^key_[0-9A-Z]{26}$")
#: answers that carry a secret must not be kept by any cache on the way
_NO_STORE = {"Cache-Control": "no-store"}

CREATE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["business_unit"],
    "properties": {
        "business_unit": {
            "type": "string",
            "minLength": 1,
            "maxLength": 100,
            # some visible character, and the text rule (no control or bidirectional characters)
            "pattern": "^(?=.*\\S)" + TEXT_PATTERN.removeprefix("^"),
            "description": "business unit name (created if new)",
        },
        "scopes": {
            "type": "array",
            "items": {"enum": sorted(repo.SCOPES)},
            "minItems": 1,
            "uniqueItems": True,
            "default": ["instructions"],
        },
    },
}
ROTATE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "grace_seconds": {
            "type": "integer",
            "minimum": 0,
            "maximum": int(repo.MAX_ROTATION_GRACE.total_seconds()),
            "default": 0,
            "description": "how long the old key keeps working beside the new one (0: it stops at once)",
        }
    },
}
_CREATE = Draft202012Validator(CREATE_SCHEMA)
_ROTATE = Draft202012Validator(ROTATE_SCHEMA)


def _key_id(request: web.Request) -> str:
    value = request.match_info["id"]
    return path_id(value, KEY_ID_RE, f"no API key {value!r}")


@routes.get("/v1/api-keys")
async def list_keys(request: web.Request) -> web.Response:
    """Every business unit's keys, newest first; ``state`` active, revoked or all (default); ``business_unit``."""
    rt = request.app[SERVICES]
    await authenticate(request, "admin")
    q = request.query
    allow_only(q, "state", "business_unit", *PAGE_PARAMETERS)
    state = q.get("state", "all")
    if state not in repo.KEY_STATES:
        raise BadRequestError(f"state must be one of {', '.join(repo.KEY_STATES)}")
    limit = page_limit(q)
    now = rt.clock()
    async with rt.engine.connect() as conn:
        keys = await repo.list_api_keys(
            conn,
            now,
            business_unit=q.get("business_unit"),
            state=state,
            before=page_cursor(q, KEY_ID_RE),
            limit=limit + 1,
        )
    items = [k.as_dict(now) for k in keys[:limit]]
    return web.json_response({"items": items, "next_cursor": items[-1]["id"] if len(keys) > limit else None})


@routes.post("/v1/api-keys")
async def create_key(request: web.Request) -> web.Response:
    """Create a key; the answer holds its secret, shown this once."""
    rt = request.app[SERVICES]
    principal = await authenticate(request, "admin")
    body = await read_json(request)
    check_body(_CREATE, body)
    now = rt.clock()
    async with rt.engine.begin() as conn:
        key_id, secret = await repo.issue_api_key(
            conn, body["business_unit"], body.get("scopes", ["instructions"]), now
        )
        info = await repo.get_api_key(conn, key_id)
    log.info(
        "API key %s created for %s (scopes %s) by key %s",
        key_id,
        info.business_unit,
        ",".join(info.scopes),
        principal.key_id,
        extra={"key_id": key_id, "business_unit": info.business_unit, "actor": principal.key_id},
    )
    headers = {"Location": f"/v1/api-keys/{key_id}", **_NO_STORE}
    return web.json_response({**info.as_dict(now), "key": secret}, status=201, headers=headers)


@routes.get("/v1/api-keys/{id}")
async def get_key(request: web.Request) -> web.Response:
    """One key: business unit, scopes, created, last used, revoked (never its secret)."""
    rt = request.app[SERVICES]
    await authenticate(request, "admin")
    key_id = _key_id(request)
    async with rt.engine.connect() as conn:
        info = await repo.get_api_key(conn, key_id)
    return web.json_response(info.as_dict(rt.clock()))


@routes.post("/v1/api-keys/{id}/revoke")
async def revoke_key(request: web.Request) -> web.Response:
    """Revoke a key now: its next request gets 401. Revoking a revoked key changes nothing."""
    rt = request.app[SERVICES]
    principal = await authenticate(request, "admin")
    key_id = _key_id(request)
    now = rt.clock()
    async with rt.engine.begin() as conn:
        info = await repo.revoke_api_key(conn, key_id, now)
    forget_keys(request.app)
    log.info(
        "API key %s of %s revoked by key %s",
        key_id,
        info.business_unit,
        principal.key_id,
        extra={"key_id": key_id, "business_unit": info.business_unit, "actor": principal.key_id},
    )
    return web.json_response(info.as_dict(now))


@routes.post("/v1/api-keys/{id}/rotate")
async def rotate_key(request: web.Request) -> web.Response:
    """Replace a key by a new one (same business unit and scopes); the old one stops after ``grace_seconds``."""
    rt = request.app[SERVICES]
    principal = await authenticate(request, "admin")
    key_id = _key_id(request)
    body: Any = {}
    if request.can_read_body:
        body = await read_json(request)
    check_body(_ROTATE, body)
    grace = timedelta(seconds=body.get("grace_seconds", 0))
    now = rt.clock()
    async with rt.engine.begin() as conn:
        secret, info = await repo.rotate_api_key(conn, key_id, now, grace)
    forget_keys(request.app)
    log.info(
        "API key %s of %s rotated to %s by key %s; the old key stops at %s",
        key_id,
        info.business_unit,
        info.id,
        principal.key_id,
        (now + grace).isoformat(),
        extra={"key_id": key_id, "new_key_id": info.id, "business_unit": info.business_unit, "actor": principal.key_id},
    )
    body_out = {
        **info.as_dict(now),
        "key": secret,
        "replaces": key_id,
        "replaced_key_valid_until": (now + grace).isoformat(),
    }
    headers = {"Location": f"/v1/api-keys/{info.id}", **_NO_STORE}
    return web.json_response(body_out, status=201, headers=headers)
