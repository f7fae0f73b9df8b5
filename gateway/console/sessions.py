"""Console sessions: an API key signs in once and becomes a server-side session.

The browser holds a random token in an HttpOnly, SameSite=Strict cookie (Secure over
TLS); the ``console_sessions`` table holds only the token's SHA-256, the API key's hash
and the session's CSRF token. Every request looks the key up again, so a revoked key
ends its sessions at once; a session unused for ``console.idle_timeout_seconds`` ends
too, and signing out ends it for good (``ended_at``).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta

from aiohttp import web
from sqlalchemy import select, update

from gateway.api.appkeys import PRINCIPAL, SERVICES, SETTINGS
from gateway.store import repo
from gateway.store.repo import Principal
from gateway.store.tables import console_sessions

__all__ = ["COOKIE", "PRE_COOKIE", "Session", "check_csrf", "current", "end", "start"]

COOKIE = "gw_console"
#: the sign-in form's CSRF token before any session exists (double-submit cookie)
PRE_COOKIE = "gw_console_pre"
#: last_seen_at is written at most this often (an idle session is judged to this precision)
_TOUCH = timedelta(seconds=15)


@dataclass(frozen=True)
class Session:
    """A signed-in console user: the key's principal and the session's CSRF token."""

    id: str
    principal: Principal
    csrf: str


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def set_cookie(request: web.Request, response: web.StreamResponse, name: str, value: str) -> None:
    """A console cookie: HttpOnly, SameSite=Strict, Secure when the request came over TLS, path /console."""
    response.set_cookie(name, value, path="/console", httponly=True, samesite="Strict", secure=request.secure)


async def start(request: web.Request, api_key: str) -> tuple[str, Principal] | None:
    """Check ``api_key`` and open a session; the cookie's token and the principal, or None for a bad key."""
    rt = request.app[SERVICES]
    now = rt.clock()
    key_hash = repo.hash_key(api_key.strip())
    token = secrets.token_urlsafe(32)
    async with rt.engine.begin() as conn:
        principal = await repo.lookup_principal(conn, key_hash, now)
        if principal is None:
            return None
        await conn.execute(
            console_sessions.insert().values(
                id=_digest(token),
                key_hash=key_hash,
                key_id=principal.key_id,
                csrf=secrets.token_urlsafe(32),
                created_at=now,
                last_seen_at=now,
            )
        )
    return token, principal


async def current(request: web.Request) -> Session | None:
    """The request's live session, or None (no cookie, unknown, ended, idle too long, or its key revoked)."""
    token = request.cookies.get(COOKIE)
    if not token:
        return None
    rt = request.app[SERVICES]
    idle = timedelta(seconds=request.app[SETTINGS].console.idle_timeout_seconds)
    now = rt.clock()
    session_id = _digest(token)
    async with rt.engine.begin() as conn:
        row = (await conn.execute(select(console_sessions).where(console_sessions.c.id == session_id))).first()
        if row is None or row.ended_at is not None:
            return None
        if now - row.last_seen_at > idle:
            await conn.execute(update(console_sessions).where(console_sessions.c.id == session_id).values(ended_at=now))
            return None
        principal = await repo.lookup_principal(conn, row.key_hash, now)
        if principal is None:  # the key was revoked (or its rotation grace ran out): the session ends with it
            await conn.execute(update(console_sessions).where(console_sessions.c.id == session_id).values(ended_at=now))
            return None
        if now - row.last_seen_at > _TOUCH:
            await conn.execute(
                update(console_sessions).where(console_sessions.c.id == session_id).values(last_seen_at=now)
            )
    request[PRINCIPAL] = principal  # the access log names the key
    return Session(session_id, principal, row.csrf)


async def end(request: web.Request, session: Session) -> None:
    """Sign out: the session ends for good, whatever the browser keeps."""
    rt = request.app[SERVICES]
    async with rt.engine.begin() as conn:
        await conn.execute(
            update(console_sessions).where(console_sessions.c.id == session.id).values(ended_at=rt.clock())
        )


def check_csrf(expected: str, sent: object) -> bool:
    """Whether the form's token is the session's (constant time)."""
    return isinstance(sent, str) and bool(expected) and hmac.compare_digest(expected.encode(), sent.encode())
