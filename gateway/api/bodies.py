"""The one place request bodies are read and decoded: API requests and partner callbacks alike.

``read_body`` reads the raw bytes within ``server.body_timeout_seconds`` (408
and the connection closed otherwise) and ``server.max_body_bytes`` (413);
``read_json`` checks the media type and decodes with ``gateway.contracts.safejson`` (depth,
number, string and text limits, strict UTF-8, no duplicate keys). Every failure
is a ``GatewayError``, which the problem middleware answers as problem+json with
the failing JSON pointer. A client that hangs up while sending is logged at
INFO, never as an error.

Partner bodies in other formats (pain.002 XML, NACHA files) are decoded by their
adapters' own safe readers from the bytes ``read_body`` returns.
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Any

from aiohttp import web

from gateway.api.appkeys import SETTINGS
from gateway.api.connections import stop_lingering
from gateway.config import default_settings
from gateway.contracts.safejson import DEFAULT_LIMITS, JsonLimits, decode_json
from gateway.errors import BadRequestError, RequestTimeoutError, UnsupportedMediaTypeError

__all__ = ["IDEMPOTENCY_KEY_RE", "ClientGoneError", "idempotency_key", "read_body", "read_json", "read_json_and_bytes"]

log = logging.getLogger(__name__)

#: what an Idempotency-Key header may hold: 1-255 printable ASCII characters
IDEMPOTENCY_KEY_RE = re.compile(r"^[\x21-\x7e]{1,255}$")


def idempotency_key(request: web.Request) -> str:
    """The request's Idempotency-Key header; a 400 when it is missing or malformed."""
    key = request.headers.get("Idempotency-Key", "")
    if not IDEMPOTENCY_KEY_RE.fullmatch(key):
        raise BadRequestError("send an Idempotency-Key header (1-255 printable ASCII characters, e.g. a UUID)")
    return key


class ClientGoneError(BadRequestError):
    """The client closed the connection before its body arrived; nobody reads the answer."""

    default_message = "client closed the connection"
    slug = "client-closed"


def _body_timeout(request: web.Request) -> float:
    settings = request.app.get(SETTINGS) or default_settings()  # a simulator app carries no gateway settings
    return settings.server.body_timeout_seconds


async def read_body(request: web.Request) -> bytes:
    """The raw body: 413 beyond ``client_max_size``, 408 if it does not arrive in time."""
    timeout = _body_timeout(request)
    try:
        # all of it has arrived already (a small body, usually): reading cannot wait, so no timer is set
        async with asyncio.timeout(None if request.content.is_eof() else timeout):
            return await request.read()  # aiohttp enforces client_max_size → 413
    except TimeoutError:
        stop_lingering(request)
        log.info("%s %s: body did not arrive within %ss; closing", request.method, request.path, timeout)
        raise RequestTimeoutError(f"the request body did not arrive within {timeout:g} seconds") from None
    except ConnectionError:
        log.info("%s %s: client closed the connection while sending the body", request.method, request.path)
        raise ClientGoneError() from None


async def read_json(request: web.Request, limits: JsonLimits = DEFAULT_LIMITS) -> Any:
    """The JSON body, or a 4xx problem (wrong media type, too large, too slow, malformed, forbidden text)."""
    return (await read_json_and_bytes(request, limits))[0]


async def read_json_and_bytes(request: web.Request, limits: JsonLimits = DEFAULT_LIMITS) -> tuple[Any, bytes]:
    """``read_json``'s document and the bytes it was decoded from (a caller may look at those too)."""
    if request.content_type != "application/json":
        raise UnsupportedMediaTypeError(f"send the body as application/json, not {request.content_type or 'nothing'}")
    raw = await read_body(request)
    return decode_json(raw, limits), raw
