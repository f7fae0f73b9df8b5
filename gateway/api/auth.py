"""API-key authentication: ``Authorization: Bearer <key>``, hashed look-up, short cache."""

from __future__ import annotations

import asyncio
import functools
import time
from typing import Any

from aiohttp import web

from gateway.api.appkeys import AUTH_CACHE, AUTH_PENDING, PRINCIPAL, SERVICES
from gateway.errors import AuthenticationError, ForbiddenError
from gateway.store import repo
from gateway.store.repo import Principal

__all__ = ["CACHE_SECONDS", "authenticate", "forget_keys"]

#: a key revoked by another process (the CLI, another gateway) stops working within this many
#: seconds; one revoked through this process's API stops at once (``forget_keys``)
CACHE_SECONDS = 5.0


def forget_keys(app: web.Application) -> None:
    """Drop every cached look-up, so a key revoked just now gets 401 on its next request."""
    app[AUTH_CACHE].clear()
    app[AUTH_PENDING].clear()  # a look-up begun before the revocation answers only those already waiting


async def _look_up(app: web.Application, key_hash: str) -> Principal | None:
    """The key's principal from the database, cached (unless ``forget_keys`` was called meanwhile)."""
    rt = app[SERVICES]
    now, wall = time.monotonic(), rt.clock()
    async with rt.engine.begin() as conn:  # begin: the look-up may note when the key was used
        principal = await repo.lookup_principal(conn, key_hash, wall)
    pending: dict[str, asyncio.Task[Principal | None]] = app[AUTH_PENDING]
    if pending.get(key_hash) is asyncio.current_task():
        cache: dict[str, tuple[float, Principal | None]] = app[AUTH_CACHE]
        if len(cache) > 10_000:
            cache.clear()
        expires = now + CACHE_SECONDS
        if principal is not None and principal.valid_until is not None:  # a rotated key in its grace period
            expires = min(expires, now + (principal.valid_until - wall).total_seconds())
        cache[key_hash] = (expires, principal)
    return principal


def _settled(pending: dict[str, asyncio.Task[Principal | None]], key_hash: str, task: asyncio.Task[Any]) -> None:
    if pending.get(key_hash) is task:
        del pending[key_hash]
    if not task.cancelled():
        task.exception()  # retrieved: every request that waited on it has raised it already


async def authenticate(request: web.Request, scope: str, *others: str) -> Principal:
    """The caller's principal; 401 without a valid key, 403 without ``scope`` (or one of ``others``).

    A key is looked up once at a time: requests that miss the cache while its look-up is in flight
    wait for that one (at hundreds of requests a second, each of them would otherwise go to the
    database when the cached entry expires, and queue for its connections behind one another).
    """
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthenticationError("send the API key as 'Authorization: Bearer <key>'")
    key_hash = repo.hash_key(token.strip())
    hit = request.app[AUTH_CACHE].get(key_hash)
    if hit is not None and hit[0] > time.monotonic():
        principal = hit[1]
    else:
        pending: dict[str, asyncio.Task[Principal | None]] = request.app[AUTH_PENDING]
        task = pending.get(key_hash)
        if task is None:  # its own task: a caller that goes away does not cancel it for the others
            task = asyncio.create_task(_look_up(request.app, key_hash), name="api-key-look-up")
            pending[key_hash] = task
            task.add_done_callback(functools.partial(_settled, pending, key_hash))
        principal = await asyncio.shield(task)
    if principal is None:
        raise AuthenticationError("the API key is not valid (unknown or revoked)")
    request[PRINCIPAL] = principal
    wanted = (scope, *others)
    if "admin" not in principal.scopes and not any(s in principal.scopes for s in wanted):
        raise ForbiddenError(f"this API key lacks the {' or '.join(repr(s) for s in wanted)} scope")
    return principal
