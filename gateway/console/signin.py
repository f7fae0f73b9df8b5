"""Signing in (an API key becomes a session) and out."""

from __future__ import annotations

import secrets

from aiohttp import web

from gateway.console import sessions
from gateway.console.web import PREFIX, Page, page, redirect, render

__all__ = ["routes"]

routes = web.RouteTableDef()


def _sign_in_form(request: web.Request, status: int = 200, message: str = "") -> web.Response:
    token = request.cookies.get(sessions.PRE_COOKIE) or secrets.token_urlsafe(32)
    response = render(request, "sign_in.html", None, status, pre_csrf=token, message=message)
    sessions.set_cookie(request, response, sessions.PRE_COOKIE, token)
    return response


@routes.get(PREFIX + "/sign-in")
async def sign_in_page(request: web.Request) -> web.StreamResponse:
    """The sign-in form (a CSRF token in a cookie and in the form: double submit)."""
    return _sign_in_form(request)


@routes.post(PREFIX + "/sign-in")
async def sign_in(request: web.Request) -> web.StreamResponse:
    """Check the key; on success a new session (a fresh cookie) and the dashboard."""
    data = await request.post()
    expected = request.cookies.get(sessions.PRE_COOKIE, "")
    if not sessions.check_csrf(expected, data.get("csrf")):
        return _sign_in_form(request, 403, "The form's security token is missing or stale; try again.")
    key = data.get("api_key")
    started = await sessions.start(request, key) if isinstance(key, str) and key.strip() else None
    if started is None:
        return _sign_in_form(request, 401, "That API key is not valid (unknown or revoked).")
    token, _principal = started
    response = redirect(PREFIX + "/")
    sessions.set_cookie(request, response, sessions.COOKIE, token)
    response.del_cookie(sessions.PRE_COOKIE, path=PREFIX)
    return response


@routes.post(PREFIX + "/sign-out")
@page("instructions", "finance", "admin")
async def sign_out(p: Page) -> web.StreamResponse:
    """End the session for good and forget the cookie."""
    await p.form()
    await sessions.end(p.request, p.session)
    response = redirect(PREFIX + "/sign-in")
    response.del_cookie(sessions.COOKIE, path=PREFIX)
    return response
