"""``create_app``: the gateway's aiohttp application."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web

from gateway.api import instructions, ops, partners, risk
from gateway.api.keys import AUTH_CACHE, RUNTIME, SETTINGS
from gateway.api.problems import problem_middleware
from gateway.config import Settings
from gateway.ledger import api as ledger_api
from gateway.runtime import Runtime

__all__ = ["create_app"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def metrics_middleware() -> Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]:
    """Count requests and time them per route template (never per raw path)."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        start = time.perf_counter()
        response = await handler(request)
        resource = request.match_info.route.resource
        route = resource.canonical if resource is not None else "unmatched"
        metrics = request.app[RUNTIME].metrics
        metrics.http_requests.labels(request.method, route, str(response.status)).inc()
        metrics.http_latency.labels(route).observe(time.perf_counter() - start)
        return response

    return middleware


def create_app(
    settings: Settings,
    *,
    runtime: Runtime | None = None,
    dispatch: bool = True,
    poll: bool = True,
) -> web.Application:
    """The API app. Without ``runtime`` it opens (and closes) its own in ``cleanup_ctx``."""
    app = web.Application(
        client_max_size=int(settings.section("server").get("max_body_bytes", 65536)),
        middlewares=[metrics_middleware(), problem_middleware()],
    )
    app[SETTINGS] = settings
    app[AUTH_CACHE] = {}
    app.add_routes(instructions.routes)
    app.add_routes(partners.routes)
    app.add_routes(ops.routes)
    app.add_routes(risk.routes)
    app.add_routes(ledger_api.routes)

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        rt = runtime or Runtime(settings)
        app[RUNTIME] = rt
        if runtime is None:
            await rt.start(dispatch=dispatch, poll=poll)
        try:
            yield
        finally:
            if runtime is None:
                await rt.close()

    if runtime is not None:
        app[RUNTIME] = runtime
    else:
        app.cleanup_ctx.append(lifecycle)
    return app
