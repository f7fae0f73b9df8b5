"""Operations endpoints: health, Prometheus metrics, the OpenAPI document."""

from __future__ import annotations

from aiohttp import web
from sqlalchemy import text

from gateway.api.appkeys import SERVICES
from gateway.api.openapi import build_openapi
from gateway.store import repo

__all__ = ["routes"]

routes = web.RouteTableDef()


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    """Liveness + readiness: the database answers and the workers run."""
    rt = request.app[SERVICES]
    checks: dict[str, str] = {}
    try:
        async with rt.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception:
        checks["database"] = "unavailable"
    checks["adapters"] = ",".join(sorted(rt.adapters)) or "none"
    healthy = checks["database"] == "ok"
    return web.json_response(
        {"status": "ok" if healthy else "degraded", "checks": checks}, status=200 if healthy else 503
    )


@routes.get("/metrics")
async def metrics(request: web.Request) -> web.Response:
    """Prometheus text exposition."""
    rt = request.app[SERVICES]
    async with rt.engine.connect() as conn:
        rt.metrics.outbox_depth.set(await repo.outbox_depth(conn))
    return web.Response(body=rt.metrics.render(), content_type="text/plain", charset="utf-8")


@routes.get("/openapi.json")
async def openapi(request: web.Request) -> web.Response:
    """The OpenAPI 3.1 document of this API."""
    rt = request.app[SERVICES]
    return web.json_response(build_openapi(rt.contracts, sorted(rt.adapters)))
