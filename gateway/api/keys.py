"""Every object an aiohttp handler shares, behind one ``web.AppKey`` each."""

from __future__ import annotations

from aiohttp import web

from gateway.config import Settings
from gateway.runtime import Runtime
from gateway.store.repo import Principal

__all__ = ["AUTH_CACHE", "PRINCIPAL", "RUNTIME", "SETTINGS"]

SETTINGS = web.AppKey("settings", Settings)
RUNTIME = web.AppKey("runtime", Runtime)
#: key hash → (expires at, principal or None); see gateway.api.auth
AUTH_CACHE = web.AppKey("auth_cache", dict)
#: per request: who called, once ``gateway.api.auth.authenticate`` has checked the key (the access log reads it)
PRINCIPAL = web.RequestKey("principal", Principal)
