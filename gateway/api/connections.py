"""HTTP connection limits: slow or stalled clients are cut off, malformed HTTP gets problem+json.

aiohttp bounds an idle keep-alive connection but not a request whose headers
trickle in (or never finish), nor a body that stops arriving. A handful of such
"slowloris" connections per second would hold file descriptors forever. The
runner here serves the app with a request handler that also enforces:

- ``header_timeout``: the request line and headers must be complete within this
  long of the request's first byte (or of the connection opening); otherwise the
  connection is closed;
- ``keepalive_timeout``: an idle keep-alive connection is closed (aiohttp's own);
- ``body_timeout`` is enforced where a body is read (``gateway.api.bodies``),
  which answers 408 and closes the connection.

A request aiohttp cannot parse (bad request line, oversized header, bad
chunking) is answered with a problem+json 400 and logged at INFO in one line,
never an ERROR with a traceback: it is the client's mistake, and anyone can send
one.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

from gateway.config import ServerSettings

__all__ = ["ConnectionLimits", "GuardedHandler", "GuardedRunner", "stop_lingering"]

log = logging.getLogger(__name__)

_PROBLEM_BASE = "https://partner-gateway.dev/problems/"


@dataclass(frozen=True)
class ConnectionLimits:
    """Timeouts of one server (``server.*_timeout_seconds``)."""

    header_timeout: float
    body_timeout: float
    keepalive_timeout: float

    @classmethod
    def from_server_settings(cls, server: ServerSettings) -> ConnectionLimits:
        return cls(
            header_timeout=server.header_timeout_seconds,
            body_timeout=server.body_timeout_seconds,
            keepalive_timeout=server.keepalive_timeout_seconds,
        )


class GuardedHandler(RequestHandler):
    """aiohttp's request handler with a deadline for request heads and problem+json for bad HTTP."""

    __slots__ = ("_header_handle", "_header_timeout")

    def __init__(self, manager: web.Server, *, header_timeout: float, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._header_timeout = header_timeout
        self._header_handle: asyncio.TimerHandle | None = None

    def _arm(self) -> None:
        if self._header_handle is None:
            self._header_handle = self._loop.call_later(self._header_timeout, self._header_expired)

    def _disarm(self) -> None:
        if self._header_handle is not None:
            self._header_handle.cancel()
            self._header_handle = None

    def _idle(self) -> bool:
        return not self._messages and not self._request_in_progress

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._arm()  # a new connection must send its first request promptly

    def data_received(self, data: bytes) -> None:
        before = self._request_count
        super().data_received(data)
        if self._request_count > before:
            self._disarm()  # a whole request head arrived
        elif self._idle():
            self._arm()  # bytes of a request head that is not complete yet

    def connection_lost(self, exc: BaseException | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _header_expired(self) -> None:
        self._header_handle = None
        if self._idle() and self.transport is not None:
            peer = self.transport.get_extra_info("peername")
            log.info("closed a connection from %s: no complete request head within %ss", peer, self._header_timeout)
            self.force_close()

    def stop_lingering(self) -> None:
        """Close right after the response instead of draining a body that stopped arriving."""
        self._lingering_time = 0.0

    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if status >= 500 or not isinstance(exc, HttpProcessingError):
            return super().handle_error(request, status, exc, message)
        detail = " ".join((getattr(exc, "message", "") or str(exc) or "malformed HTTP request").split())[:200]
        log.info("refused a malformed HTTP request from %s: %s", request.remote, detail)
        body = {
            "type": f"{_PROBLEM_BASE}malformed-http",
            "title": "Malformed HTTP request",
            "status": status,
            "detail": detail,
        }
        response = web.Response(status=status, text=json.dumps(body), content_type="application/problem+json")
        response.force_close()
        return response


class GuardedServer(web.Server):
    """A ``web.Server`` whose connections are served by ``GuardedHandler``."""

    def __init__(self, *args: Any, header_timeout: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_timeout = header_timeout

    def __call__(self) -> RequestHandler:
        return GuardedHandler(self, loop=self._loop, header_timeout=self._header_timeout, **self._kwargs)


class GuardedRunner(web.AppRunner):
    """An ``AppRunner`` that applies ``ConnectionLimits`` to every connection."""

    def __init__(self, app: web.Application, limits: ConnectionLimits, **kwargs: Any) -> None:
        super().__init__(app, keepalive_timeout=limits.keepalive_timeout, **kwargs)
        self.limits = limits

    async def _make_server(self) -> web.Server:
        plain = await super()._make_server()
        return GuardedServer(
            plain.request_handler,
            request_factory=plain.request_factory,
            handler_cancellation=plain.handler_cancellation,
            loop=plain._loop,
            header_timeout=self.limits.header_timeout,
            **plain._kwargs,
        )


def stop_lingering(request: web.BaseRequest) -> None:
    """After this request's response, close the connection at once (its body stopped arriving)."""
    protocol = request.protocol
    if isinstance(protocol, GuardedHandler):
        protocol.stop_lingering()
