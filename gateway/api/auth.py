"""API-key authentication: ``Authorization: Bearer <key>``, hashed look-up, short cache."""

from __future__ import annotations

import asyncio
import math
import time

from aiohttp import web

from gateway.api.appkeys import AUTH_CACHE, PRINCIPAL, SERVICES
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


async def authenticate(request: web.Request, scope: str, *others: str) -> Principal:
    """The caller's principal; 401 without a valid key, 403 without ``scope`` (or one of ``others``)."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthenticationError("send the API key as 'Authorization: Bearer <key>'")
    key_hash = repo.hash_key(token.strip())
    cache: dict[str, tuple[float, asyncio.Future[Principal | None]]] = request.app[AUTH_CACHE]
    hit = cache.get(key_hash)
    if hit is not None and hit[0] > time.monotonic() and not hit[1].cancelled():
        lookup = hit[1]
    else:
        if len(cache) > 10_000:
            cache.clear()
        # One look-up per key at a time: every request that finds the entry missing or expired while it
        # runs waits for it, instead of each queueing a look-up of its own for the database connection
        # (under load hundreds arrive before the first answers).
        lookup = asyncio.ensure_future(_look_up(request.app, key_hash))
        cache[key_hash] = (math.inf, lookup)
    principal = lookup.result() if lookup.done() else await asyncio.shield(lookup)
    if principal is None:
        raise AuthenticationError("the API key is not valid (unknown or revoked)")
    request[PRINCIPAL] = principal
    wanted = (scope, *others)
    if "admin" not in principal.scopes and not any(s in principal.scopes for s in wanted):
        raise ForbiddenError(f"this API key lacks the {' or '.join(repr(s) for s in wanted)} scope")
    return principal


async def _look_up(app: web.Application, key_hash: str) -> Principal | None:
    """The key's principal from the database; cached until it expires (a failed look-up is not cached)."""
    cache: dict[str, tuple[float, asyncio.Future[Principal | None]]] = app[AUTH_CACHE]
    this = asyncio.current_task()
    try:
        rt = app[SERVICES]
        wall = rt.clock()
        async with rt.engine.begin() as conn:  # begin: the look-up may note when the key was used
            principal = await repo.lookup_principal(conn, key_hash, wall)
    except BaseException:
        if (entry := cache.get(key_hash)) is not None and entry[1] is this:
            del cache[key_hash]
        raise
    now = time.monotonic()
    expires = now + CACHE_SECONDS
    if principal is not None and principal.valid_until is not None:  # a rotated key in its grace period
        expires = min(expires, now + (principal.valid_until - wall).total_seconds())
    if (entry := cache.get(key_hash)) is not None and entry[1] is this:  # ``forget_keys`` may have dropped it
        cache[key_hash] = (expires, this)
    return principal
