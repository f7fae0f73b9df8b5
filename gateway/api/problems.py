"""RFC 9457 problem details: the one place that maps errors to HTTP."""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from gateway.errors import FieldError, GatewayError

__all__ = ["PROBLEM_BASE", "problem_middleware", "problem_response"]

PROBLEM_BASE = "https://partner-gateway.dev/problems/"
log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def problem_response(
    status: int,
    title: str,
    *,
    slug: str,
    detail: str | None = None,
    instance: str | None = None,
    errors: list[FieldError] | None = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    body: dict[str, Any] = {"type": PROBLEM_BASE + slug, "title": title, "status": status}
    if detail:
        body["detail"] = detail
    if instance:
        body["instance"] = instance
    if errors:
        body["errors"] = [e.as_dict() for e in errors]
    return web.Response(
        status=status,
        text=json.dumps(body),
        content_type="application/problem+json",
        headers=headers,
    )


_HTTP_SLUGS = {
    404: "not-found",
    405: "method-not-allowed",
    413: "payload-too-large",
    415: "unsupported-media-type",
}


def problem_middleware() -> Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]:
    """Turn every error into ``application/problem+json``; never leak a traceback."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except GatewayError as exc:
            headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
            retry_after = getattr(exc, "retry_after", None)
            if retry_after is not None:
                headers = {"Retry-After": str(max(1, math.ceil(retry_after)))}
            return problem_response(
                exc.status,
                exc.title,
                slug=exc.slug,
                detail=exc.message,
                instance=request.path,
                errors=exc.errors,
                headers=headers,
            )
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            headers = {k: v for k, v in exc.headers.items() if k.lower() == "allow"}
            detail = exc.text if exc.text and not exc.text.startswith(f"{exc.status}:") else None
            if exc.status == 413:
                detail = f"request body is larger than {request.app._client_max_size} bytes"
            return problem_response(
                exc.status,
                exc.reason,
                slug=_HTTP_SLUGS.get(exc.status, f"http-{exc.status}"),
                detail=detail,
                instance=request.path,
                headers=headers or None,
            )
        except Exception:
            log.exception("unhandled error on %s %s", request.method, request.path)
            return problem_response(
                500,
                "Internal error",
                slug="internal",
                detail="the gateway failed to handle this request; nothing was accepted",
                instance=request.path,
            )

    return middleware
