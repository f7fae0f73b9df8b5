"""Administration (admin scope): API keys (create, revoke, rotate) and every unit's webhook endpoints
(create, disable or enable, rotate the signing secret).

A new key's or endpoint's secret is shown once, in the answer to the form that made it (never
stored in clear, never in a URL, ``Cache-Control: no-store``), as ``/v1/api-keys`` and
``/v1/webhook-endpoints`` do.
"""

from __future__ import annotations

import logging
import re
from datetime import timedelta

from aiohttp import web
from sqlalchemy import select

from gateway.api.appkeys import SETTINGS
from gateway.api.auth import forget_keys
from gateway.api.webhooks import ENDPOINT_ID_RE
from gateway.console.web import PREFIX, Page, page, redirect
from gateway.errors import BadRequestError, ConfigError, NotFoundError
from gateway.store import repo
from gateway.store import webhooks as hooks
from gateway.store.tables import business_units
from gateway.webhooks.urls import check_url

__all__ = ["routes"]

log = logging.getLogger(__name__)
routes = web.RouteTableDef()

_KEY_ID = re.compile(r"^key_[0-9A-Z]{26}$")


async def _keys_page(p: Page, status: int = 200, **extra: object) -> web.Response:
    now = p.rt.clock()
    async with p.rt.engine.connect() as conn:
        keys = await repo.list_api_keys(conn, now, state="all", limit=200)
    return p.render(
        "keys.html",
        status,
        keys=[k.as_dict(now) for k in keys],
        scopes=sorted(repo.SCOPES),
        notice=p.request.query.get("n", ""),
        secret=extra.get("secret"),
        secret_for=extra.get("secret_for"),
    )


@routes.get(PREFIX + "/admin/keys")
@page("admin")
async def keys(p: Page) -> web.StreamResponse:
    """Every business unit's keys, newest first (never a secret)."""
    return await _keys_page(p)


@routes.post(PREFIX + "/admin/keys")
@page("admin")
async def create_key(p: Page) -> web.StreamResponse:
    """Create a key; the page that answers shows its secret this once."""
    data = await p.request.post()
    await p.form()
    scopes = [s for s in data.getall("scopes", []) if isinstance(s, str)]
    unit = str(data.get("business_unit", "")).strip()
    try:
        async with p.rt.engine.begin() as conn:
            key_id, secret = await repo.issue_api_key(conn, unit, scopes or ["instructions"], p.rt.clock())
    except ConfigError as exc:
        raise BadRequestError(exc.message) from None
    log.info(
        "API key %s created for %s in the console by key %s",
        key_id,
        unit,
        p.session.principal.key_id,
        extra={"key_id": key_id, "business_unit": unit, "actor": p.session.principal.key_id},
    )
    return await _keys_page(p, 201, secret=secret, secret_for=key_id)


def _key_id(p: Page) -> str:
    key_id = p.request.match_info["id"]
    if not _KEY_ID.fullmatch(key_id):
        raise NotFoundError(f"no API key {key_id!r}")
    return key_id


@routes.post(PREFIX + "/admin/keys/{id}/revoke")
@page("admin")
async def revoke_key(p: Page) -> web.StreamResponse:
    """Revoke now; its sessions end on their next request."""
    await p.form()
    key_id = _key_id(p)
    async with p.rt.engine.begin() as conn:
        info = await repo.revoke_api_key(conn, key_id, p.rt.clock())
    forget_keys(p.request.app)
    log.info(
        "API key %s of %s revoked in the console by key %s",
        key_id,
        info.business_unit,
        p.session.principal.key_id,
        extra={"key_id": key_id, "business_unit": info.business_unit, "actor": p.session.principal.key_id},
    )
    return redirect(f"{PREFIX}/admin/keys?n=revoked")


@routes.post(PREFIX + "/admin/keys/{id}/rotate")
@page("admin")
async def rotate_key(p: Page) -> web.StreamResponse:
    """A new key with the same unit and scopes; the old one stops after the grace period (hours, 0-168)."""
    form = await p.form()
    key_id = _key_id(p)
    text = form.get("grace_hours", "0").strip() or "0"
    if not text.isdigit() or int(text) > 168:
        raise BadRequestError("grace period: whole hours from 0 to 168")
    try:
        async with p.rt.engine.begin() as conn:
            secret, info = await repo.rotate_api_key(conn, key_id, p.rt.clock(), timedelta(hours=int(text)))
    except ConfigError as exc:
        raise BadRequestError(exc.message) from None
    forget_keys(p.request.app)
    log.info(
        "API key %s rotated to %s in the console by key %s",
        key_id,
        info.id,
        p.session.principal.key_id,
        extra={"key_id": key_id, "new_key_id": info.id, "actor": p.session.principal.key_id},
    )
    return await _keys_page(p, 201, secret=secret, secret_for=info.id)


async def _webhooks_page(p: Page, status: int = 200, **extra: object) -> web.Response:
    now = p.rt.clock()
    async with p.rt.engine.connect() as conn:
        endpoints = await hooks.list_endpoints(conn, limit=500)
    return p.render(
        "webhooks.html",
        status,
        endpoints=[e.as_dict(now) for e in endpoints],
        notice=p.request.query.get("n", ""),
        secret=extra.get("secret"),
        secret_for=extra.get("secret_for"),
    )


@routes.get(PREFIX + "/admin/webhooks")
@page("admin")
async def webhooks(p: Page) -> web.StreamResponse:
    """Every business unit's webhook endpoints: URL, events, enabled, failures (never a secret)."""
    return await _webhooks_page(p)


@routes.post(PREFIX + "/admin/webhooks")
@page("admin")
async def create_endpoint(p: Page) -> web.StreamResponse:
    """An endpoint for a business unit, every event; the page that answers shows its signing secret this once."""
    form = await p.form()
    unit = form.get("business_unit", "").strip()
    url = check_url(form.get("url", "").strip(), allow_private=p.request.app[SETTINGS].webhooks.allow_private_addresses)
    now = p.rt.clock()
    async with p.rt.engine.begin() as conn:
        unit_id = await conn.scalar(select(business_units.c.id).where(business_units.c.name == unit[:64]))
        if unit_id is None:
            raise BadRequestError(f"business unit: no unit named {unit[:64]!r}")
        endpoint, secret = await hooks.create_endpoint(conn, p.rt.cipher, unit_id, url, [hooks.ALL_EVENTS], now)
    log.info(
        "webhook endpoint %s created for %s in the console by key %s",
        endpoint.id,
        unit,
        p.session.principal.key_id,
        extra={"endpoint_id": endpoint.id, "business_unit": unit, "actor": p.session.principal.key_id},
    )
    return await _webhooks_page(p, 201, secret=secret, secret_for=endpoint.id)


def _endpoint_id(p: Page) -> str:
    endpoint_id = p.request.match_info["id"]
    if not ENDPOINT_ID_RE.fullmatch(endpoint_id):
        raise NotFoundError(f"no webhook endpoint {endpoint_id!r}")
    return endpoint_id


@routes.post(PREFIX + "/admin/webhooks/{id}/enabled")
@page("admin")
async def enable_endpoint(p: Page) -> web.StreamResponse:
    """Disable an endpoint (nothing is sent to it) or enable it again (its failure count starts over)."""
    form = await p.form()
    endpoint_id = _endpoint_id(p)
    if form.get("enabled") not in ("yes", "no"):
        raise BadRequestError("enabled: yes or no")
    enabled = form["enabled"] == "yes"
    async with p.rt.engine.begin() as conn:
        await hooks.update_endpoint(conn, endpoint_id, p.rt.clock(), enabled=enabled)
    if enabled:
        p.rt.wake_webhooks()
    log.info(
        "webhook endpoint %s %s in the console by key %s",
        endpoint_id,
        "enabled" if enabled else "disabled",
        p.session.principal.key_id,
        extra={"endpoint_id": endpoint_id, "actor": p.session.principal.key_id},
    )
    return redirect(f"{PREFIX}/admin/webhooks?n={'enabled' if enabled else 'disabled'}")


@routes.post(PREFIX + "/admin/webhooks/{id}/rotate")
@page("admin")
async def rotate_endpoint_secret(p: Page) -> web.StreamResponse:
    """A new signing secret, shown this once; the old one signs beside it for ``webhooks.secret_overlap_seconds``."""
    await p.form()
    endpoint_id = _endpoint_id(p)
    overlap = timedelta(seconds=p.request.app[SETTINGS].webhooks.secret_overlap_seconds)
    now = p.rt.clock()
    async with p.rt.engine.begin() as conn:
        _, secret = await hooks.rotate_secret(conn, p.rt.cipher, endpoint_id, now, overlap)
    log.info(
        "webhook endpoint %s secret rotated in the console by key %s",
        endpoint_id,
        p.session.principal.key_id,
        extra={"endpoint_id": endpoint_id, "actor": p.session.principal.key_id},
    )
    return await _webhooks_page(p, 201, secret=secret, secret_for=endpoint_id)
