"""``/v1/partners/{adapter}/callbacks``: partner webhooks, verified by their adapter."""

from __future__ import annotations

from aiohttp import web

from gateway.api.appkeys import SERVICES
from gateway.api.bodies import read_body
from gateway.errors import GatewayError

__all__ = ["routes"]

routes = web.RouteTableDef()


@routes.post("/v1/partners/{adapter}/callbacks")
async def partner_callback(request: web.Request) -> web.Response:
    """Verify (adapter checks the signature first), parse, and apply a partner's status report.

    Every outcome is counted in ``gateway_partner_callbacks{adapter,result}``: ``accepted``,
    the problem slug of a refusal (``invalid-signature``, ``contract-violation`` …), or
    ``internal`` for a failure of the gateway itself.
    """
    rt = request.app[SERVICES]
    name = request.match_info["adapter"]
    adapter = rt.adapter(name)
    try:
        body = await read_body(request)
        updates = adapter.parse_callback(request.headers, body)
        summary = await rt.updates.apply(name, updates, source="callback")
    except GatewayError as exc:
        rt.metrics.callbacks.labels(name, exc.slug).inc()
        raise
    except Exception:
        rt.metrics.callbacks.labels(name, "internal").inc()
        raise
    rt.metrics.callbacks.labels(name, "accepted").inc()
    return web.json_response(summary.as_dict())
