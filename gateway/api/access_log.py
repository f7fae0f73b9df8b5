"""One access log line per request: method, path, status, milliseconds, business unit.

Never the query string, a header, a key or a body: a path holds only ids and names
the API itself chose. The business unit is known once ``authenticate`` has run.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

from aiohttp import web

from gateway.api.appkeys import PRINCIPAL

__all__ = ["access_log_middleware"]

log = logging.getLogger("gateway.api.access")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def access_log_middleware() -> Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]:
    """Log every request once it is answered (outermost: it sees the problem middleware's answer)."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        start = time.perf_counter()
        status = 500
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as exc:  # redirects and the like pass the problem middleware as exceptions
            status = exc.status
            raise
        finally:
            if log.isEnabledFor(logging.INFO):
                ms = round((time.perf_counter() - start) * 1000, 1)
                principal = request.get(PRINCIPAL)
                business_unit = principal.business_unit if principal is not None else None
                log.info(
                    "%s %s %d %.1fms%s",
                    request.method,
                    request.path,
                    status,
                    ms,
                    f" bu={business_unit}" if business_unit else "",
                    extra={
                        "method": request.method,
                        "path": request.path,
                        "status": status,
                        "ms": ms,
                        "business_unit": business_unit,
                    },
                )

    return middleware
