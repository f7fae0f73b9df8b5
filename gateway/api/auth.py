"""API-key authentication: ``Authorization: Bearer <key>``, hashed look-up, short cache."""

from __future__ import annotations

import time

from aiohttp import web

from gateway.api.appkeys import AUTH_CACHE, SERVICES
from gateway.errors import AuthenticationError, ForbiddenError
from gateway.store import repo
from gateway.store.repo import Principal

__all__ = ["CACHE_SECONDS", "authenticate"]

#: a revoked key stops working within this many seconds
CACHE_SECONDS = 30.0


async def authenticate(request: web.Request, scope: str) -> Principal:
    """The caller's principal; 401 without a valid key, 403 without ``scope``."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthenticationError("send the API key as 'Authorization: Bearer <key>'")
    key_hash = repo.hash_key(token.strip())
    cache: dict[str, tuple[float, Principal | None]] = request.app[AUTH_CACHE]
    hit = cache.get(key_hash)
    now = time.monotonic()
    if hit is not None and hit[0] > now:
        principal = hit[1]
    else:
        async with request.app[SERVICES].engine.connect() as conn:
            principal = await repo.lookup_principal(conn, key_hash)
        if len(cache) > 10_000:
            cache.clear()
        cache[key_hash] = (now + CACHE_SECONDS, principal)
    if principal is None:
        raise AuthenticationError("the API key is not valid (unknown or revoked)")
    if scope not in principal.scopes and "admin" not in principal.scopes:
        raise ForbiddenError(f"this API key lacks the {scope!r} scope")
    return principal
