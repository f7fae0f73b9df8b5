"""``/v1/partners/{adapter}/callbacks``: partner webhooks, verified by their adapter."""

from __future__ import annotations

from aiohttp import web

from gateway.api.appkeys import SERVICES
from gateway.errors import GatewayError

__all__ = ["routes"]

routes = web.RouteTableDef()


@routes.post("/v1/partners/{adapter}/callbacks")
async def partner_callback(request: web.Request) -> web.Response:
    """Verify (adapter checks the signature first), parse, and apply a partner's status report."""
    rt = request.app[SERVICES]
    name = request.match_info["adapter"]
    adapter = rt.adapter(name)
    body = await request.read()
    try:
        updates = adapter.parse_callback(request.headers, body)
    except GatewayError as exc:
        rt.metrics.callbacks.labels(name, exc.slug).inc()
        raise
    summary = await rt.updates.apply(name, updates, source="callback")
    rt.metrics.callbacks.labels(name, "accepted").inc()
    return web.json_response(summary.as_dict())
