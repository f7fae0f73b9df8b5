"""Every object an aiohttp handler shares, behind one ``web.AppKey`` each."""

from __future__ import annotations

from aiohttp import web

from gateway.config import Settings
from gateway.runtime import Runtime

__all__ = ["AUTH_CACHE", "RUNTIME", "SETTINGS"]

SETTINGS = web.AppKey("settings", Settings)
RUNTIME = web.AppKey("runtime", Runtime)
#: key hash → (expires at, principal or None); see gateway.api.auth
AUTH_CACHE = web.AppKey("auth_cache", dict)
