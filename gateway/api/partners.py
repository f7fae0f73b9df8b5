"""``/v1/partners/{adapter}/callbacks``: partner webhooks, verified by their adapter."""

from __future__ import annotations

from aiohttp import web

from gateway.api.appkeys import SERVICES, SETTINGS
from gateway.api.bodies import read_body
from gateway.dispatch.collections import CollectionUpdateSummary
from gateway.dispatch.updates import UpdateSummary
from gateway.errors import GatewayError
from gateway.partners.capture import inbound

__all__ = ["routes"]

routes = web.RouteTableDef()


@routes.post("/v1/partners/{adapter}/callbacks")
async def partner_callback(request: web.Request) -> web.Response:
    """Verify (adapter checks the signature first), parse, and apply a partner's status report.

    A report about collections (``Adapter.parse_collection_callback``) goes to the collections;
    any other to the instructions, with the callback itself (masked; ``dispatch.partner_messages``) linked to
    the payments it reports on, in the same transaction.

    Every outcome is counted in ``gateway_partner_callbacks{adapter,result}``: ``accepted``,
    the problem slug of a refusal (``invalid-signature``, ``contract-violation`` …), or
    ``internal`` for a failure of the gateway itself.
    """
    rt = request.app[SERVICES]
    name = request.match_info["adapter"]
    adapter = rt.adapter(name)
    try:
        # a bank's pooled status report (hundreds of payments) is larger than other requests may be
        body = await read_body(request.clone(client_max_size=request.app[SETTINGS].server.callback_max_body_bytes))
        about_collections = adapter.parse_collection_callback(request.headers, body)
        if about_collections is not None and rt.collection_updates is not None:
            summary: UpdateSummary | CollectionUpdateSummary = await rt.collection_updates.apply(
                name, about_collections, source="callback"
            )
        else:
            updates = adapter.parse_callback(request.headers, body)
            settings = request.app[SETTINGS].dispatch
            kept = (
                [
                    inbound(
                        name,
                        "callback",
                        request.method,
                        request.path,
                        request.headers,
                        body,
                        200,
                        settings.partner_message_max_bytes,
                    )
                ]
                if settings.partner_messages
                else []
            )
            summary = await rt.updates.apply(name, updates, source="callback", messages=kept)
    except GatewayError as exc:
        rt.metrics.callbacks.labels(name, exc.slug).inc()
        raise
    except Exception:
        rt.metrics.callbacks.labels(name, "internal").inc()
        raise
    rt.metrics.callbacks.labels(name, "accepted").inc()
    return web.json_response(summary.as_dict())
