"""What every console page shares: templates, security headers, the session check, CSRF, error pages."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

import jinja2
from aiohttp import web

from gateway.api.appkeys import SERVICES, SIMULATORS, ApiServices
from gateway.console import sessions
from gateway.console.sessions import Session
from gateway.errors import GatewayError

__all__ = ["PREFIX", "STATIC", "Page", "can", "page", "redirect", "render", "security_headers", "unit_filter"]

PREFIX = "/console"
STATIC = Path(__file__).resolve().parent / "static"

#: no inline script or style, nothing from elsewhere, never framed
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}

_ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("gateway.console", "templates"),
    autoescape=True,  # every template, whatever its name: a creditor called <script> is text
    undefined=jinja2.StrictUndefined,
)


def masked(account: object) -> str:
    """A stored masked account (``{"iban": "SE45…7466"}``) as text; never a full number (only masks are stored)."""
    if isinstance(account, Mapping):
        return " ".join(str(v) for v in account.values() if v)
    return "" if account is None else str(account)


_ENV.filters["masked"] = masked

#: the console's sections: (path, label, scopes that see it); later sections add a line here
SECTIONS: tuple[tuple[str, str, frozenset[str]], ...] = (
    ("/console/", "Dashboard", frozenset({"instructions", "finance", "admin"})),
    ("/console/payments", "Payments", frozenset({"instructions", "finance", "admin"})),
    ("/console/holds", "Holds", frozenset({"finance", "admin"})),
    ("/console/ledger", "Ledger", frozenset({"finance", "admin"})),
    ("/console/recon", "Reconciliation", frozenset({"finance", "admin"})),
    ("/console/reports", "Reports", frozenset({"finance", "admin"})),
    ("/console/rebates", "Rebates", frozenset({"finance", "admin"})),
    ("/console/admin/keys", "API keys", frozenset({"admin"})),
    ("/console/admin/webhooks", "Webhooks", frozenset({"admin"})),
    ("/console/admin/rollout", "Rollout", frozenset({"admin"})),
    ("/console/qa", "QA", frozenset({"admin"})),
)
#: sections that exist only in development (this process started partner simulators: ``SIMULATORS``)
DEVELOPMENT_ONLY = frozenset({"/console/qa"})


async def security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """``on_response_prepare``: the console's pages get the strict headers (the API's answers are untouched)."""
    if request.path == PREFIX or request.path.startswith(PREFIX + "/"):
        for name, value in _HEADERS.items():
            response.headers.setdefault(name, value)


def can(session: Session, *scopes: str) -> bool:
    """The API's rule: ``admin`` may do everything, others need one of ``scopes``."""
    held = session.principal.scopes
    return "admin" in held or any(s in held for s in scopes)


def redirect(location: str) -> web.Response:
    """303 See Other: after a POST, the browser GETs the page that shows the result."""
    return web.Response(status=303, headers={"Location": location})


def unit_filter(session: Session) -> str | None:
    """The business unit whose payments this session sees; None: every unit's (finance and admin keys)."""
    return None if can(session, "finance") else session.principal.business_unit_id


def render(
    request: web.Request, template: str, session: Session | None, status: int = 200, **context: Any
) -> web.Response:
    development = bool(request.app[SIMULATORS])
    nav = [
        (path, label)
        for path, label, scopes in SECTIONS
        if session is not None and can(session, *scopes) and (development or path not in DEVELOPMENT_ONLY)
    ]
    text = _ENV.get_template(template).render(
        session=session, nav=nav, path=request.path, csrf=session.csrf if session else "", **context
    )
    return web.Response(text=text, status=status, content_type="text/html", charset="utf-8")


class Page:
    """What a page handler gets: the request, the session, the services."""

    def __init__(self, request: web.Request, session: Session) -> None:
        self.request = request
        self.session = session
        self.rt: ApiServices = request.app[SERVICES]

    def render(self, template: str, status: int = 200, **context: Any) -> web.Response:
        return render(self.request, template, self.session, status, **context)

    async def form(self) -> Mapping[str, str]:
        """The POSTed form, after its CSRF token is checked (403 without the session's)."""
        data = await self.request.post()
        if not sessions.check_csrf(self.session.csrf, data.get("csrf")):
            raise web.HTTPForbidden(text="the form's security token is missing or stale: reload the page")
        return {k: v for k, v in data.items() if isinstance(v, str)}


Handler = Callable[[Page], Awaitable[web.StreamResponse]]


def page(*scopes: str) -> Callable[[Handler], Callable[[web.Request], Awaitable[web.StreamResponse]]]:
    """A console handler: signed in (or to the sign-in page), one of ``scopes``, errors as HTML pages."""

    def wrap(handler: Handler) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        @functools.wraps(handler)
        async def run(request: web.Request) -> web.StreamResponse:
            session = await sessions.current(request)
            if session is None:
                if request.method == "GET":
                    return redirect(f"{PREFIX}/sign-in")
                return render(request, "error.html", None, 401, message="Sign in first.")
            if not can(session, *scopes):
                return render(request, "error.html", session, 403, message="Your key's scopes do not open this page.")
            try:
                return await handler(Page(request, session))
            except web.HTTPForbidden as exc:
                return render(request, "error.html", session, 403, message=exc.text or "Forbidden")
            except GatewayError as exc:
                status = exc.status if exc.status < 500 else 503
                return render(request, "error.html", session, status, message=exc.message)

        return run

    return wrap
