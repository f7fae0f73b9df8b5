"""``mount``: the console's routes, static files and security headers on the gateway's app.

Each section is one module with a ``routes`` table and its templates; a later section
adds its module here and a line to ``web.SECTIONS``.
"""

from __future__ import annotations

from aiohttp import web

from gateway.console import admin, dashboard, holds, ledger, payments, qa, rebates, recon, reports, rollout, signin
from gateway.console.web import PREFIX, STATIC, redirect, security_headers

__all__ = ["mount"]

SECTION_ROUTES = (
    signin.routes,
    dashboard.routes,
    payments.routes,
    holds.routes,
    ledger.routes,
    recon.routes,
    reports.routes,
    rebates.routes,
    admin.routes,
    rollout.routes,
    qa.routes,
)


async def _to_dashboard(request: web.Request) -> web.StreamResponse:
    return redirect(PREFIX + "/")


def mount(app: web.Application) -> None:
    """Serve the console under ``/console`` (its assets from this package: nothing from the internet)."""
    app.router.add_get(PREFIX, _to_dashboard)
    for routes in SECTION_ROUTES:
        app.add_routes(routes)
    app.router.add_static(PREFIX + "/static", STATIC, append_version=False)
    app.on_response_prepare.append(security_headers)
