"""``build_app``: the gateway's aiohttp application, given the services its handlers use."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager

from aiohttp import web

from gateway.api import batches, collections, docs_page, instructions, keys_admin, ops, partners, risk, webhooks
from gateway.api import creditlines as creditlines_api
from gateway.api import files as files_api
from gateway.api import ledger as ledger_api
from gateway.api import rebates as rebates_api
from gateway.api import receivables as receivables_api
from gateway.api import recon as recon_api
from gateway.api import reports as reports_api
from gateway.api import rollout as rollout_api
from gateway.api import statements as statements_api
from gateway.api.access_log import access_log_middleware
from gateway.api.appkeys import AUTH_CACHE, AUTH_PENDING, RATE_LIMITER, SERVICES, SETTINGS, SIMULATORS, ApiServices
from gateway.api.problems import problem_middleware
from gateway.api.ratelimit import RateLimiter
from gateway.config import Settings

__all__ = ["build_app"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def metrics_middleware() -> Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]:
    """Count requests and time them per route template (never per raw path)."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        start = time.perf_counter()
        response = await handler(request)
        resource = request.match_info.route.resource
        route = resource.canonical if resource is not None else "unmatched"
        metrics = request.app[SERVICES].metrics
        metrics.http_requests.labels(request.method, route, str(response.status)).inc()
        metrics.http_latency.labels(route).observe(time.perf_counter() - start)
        return response

    return middleware


def build_app(
    settings: Settings,
    *,
    services: ApiServices | None = None,
    open_services: Callable[[], AbstractAsyncContextManager[ApiServices]] | None = None,
    simulators: Mapping[str, str] | None = None,
) -> web.Application:
    """The API app over ``services``, or over what ``open_services`` opens at start-up and closes at clean-up.

    ``simulators``: the partner simulators this process started (name → base URL); development only.
    """
    if (services is None) == (open_services is None):
        raise TypeError("build_app takes exactly one of services= and open_services=")
    app = web.Application(
        client_max_size=settings.server.max_body_bytes,
        middlewares=[access_log_middleware(), metrics_middleware(), problem_middleware()],
    )
    app[SETTINGS] = settings
    app[AUTH_CACHE] = {}
    app[AUTH_PENDING] = {}
    app[SIMULATORS] = dict(simulators or {})
    app[RATE_LIMITER] = RateLimiter(settings.intake)
    app.add_routes(instructions.routes)
    app.add_routes(collections.routes)
    app.add_routes(partners.routes)
    app.add_routes(ops.routes)
    app.add_routes(risk.routes)
    app.add_routes(keys_admin.routes)
    app.add_routes(docs_page.routes)
    app.add_routes(ledger_api.routes)
    app.add_routes(webhooks.routes)
    app.add_routes(statements_api.routes)
    app.add_routes(recon_api.routes)
    app.add_routes(receivables_api.routes)
    app.add_routes(creditlines_api.routes)
    app.add_routes(rollout_api.routes)
    app.add_routes(rebates_api.routes)
    app.add_routes(batches.routes)
    app.add_routes(files_api.routes)
    app.add_routes(reports_api.routes)
    if services is not None:
        app[SERVICES] = services
    else:
        assert open_services is not None

        async def lifecycle(app: web.Application) -> AsyncIterator[None]:
            async with open_services() as opened:
                app[SERVICES] = opened
                yield

        app.cleanup_ctx.append(lifecycle)
    return app
