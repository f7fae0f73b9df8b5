"""The client's errors: one root, problem+json answers by status, transport failures, bad signatures.

``GatewayError``
 ├─ ``ProblemError``              the gateway answered 4xx/5xx (RFC 9457 problem details)
 │   ├─ ``ValidationError``       400, 413, 415, 422: fix the request (``pointer``, ``errors``)
 │   ├─ ``AuthError``             401, 403: the key is missing, wrong, revoked or lacks a scope
 │   ├─ ``NotFoundError``         404
 │   ├─ ``ConflictError``         409: idempotency conflict, duplicate reference, wrong state
 │   ├─ ``RateLimitedError``      429 (after the retries)
 │   └─ ``ServerError``           5xx (after the retries, where retried)
 ├─ ``TransportError``            no answer: connection refused or reset, timeout (after the retries)
 └─ ``SignatureVerificationError`` a webhook's ``Gateway-Signature`` does not check out

No message or repr holds the API key, a webhook secret or a request body.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "AuthError",
    "ConflictError",
    "FieldProblem",
    "GatewayError",
    "NotFoundError",
    "ProblemError",
    "RateLimitedError",
    "ServerError",
    "SignatureVerificationError",
    "TransportError",
    "ValidationError",
    "problem_error",
]


class GatewayError(Exception):
    """Root of every error this package raises."""


@dataclass(frozen=True)
class FieldProblem:
    """One failing field of a request: its JSON pointer (RFC 6901) and what is wrong."""

    pointer: str
    detail: str


class ProblemError(GatewayError):
    """The gateway answered with an error status; the problem+json fields are attributes."""

    def __init__(
        self,
        status: int,
        title: str,
        *,
        type: str = "about:blank",
        detail: str | None = None,
        instance: str | None = None,
        errors: Sequence[FieldProblem] = (),
        retry_after: float | None = None,
        body: Mapping[str, Any] | None = None,
    ) -> None:
        self.status = status
        self.title = title
        self.type = type
        self.detail = detail
        self.instance = instance
        self.errors = tuple(errors)
        #: seconds the gateway asked to wait (``Retry-After``), if it said
        self.retry_after = retry_after
        #: the whole problem document as received (extension members included)
        self.body = dict(body or {})
        message = f"{status} {title}"
        if detail:
            message += f": {detail}"
        if self.errors:
            message += " (" + "; ".join(f"{e.pointer or '/'}: {e.detail}" for e in self.errors[:5]) + ")"
        super().__init__(message)

    @property
    def pointer(self) -> str | None:
        """The JSON pointer of the first failing field, if the gateway named one."""
        return self.errors[0].pointer if self.errors else None

    @property
    def slug(self) -> str:
        """The last segment of ``type`` (``contract-violation``, ``idempotency-conflict``, …)."""
        return self.type.rstrip("/").rsplit("/", 1)[-1]

    def __repr__(self) -> str:
        return f"{type(self).__name__}(status={self.status}, type={self.type!r}, title={self.title!r})"


class ValidationError(ProblemError):
    """The request is wrong (400, 413, 415, 422); ``pointer`` and ``errors`` say where."""


class AuthError(ProblemError):
    """The API key is missing, unknown, revoked, or lacks the scope (401, 403)."""


class NotFoundError(ProblemError):
    """No such resource for this business unit (404)."""


class ConflictError(ProblemError):
    """The request conflicts with what the gateway holds (409): a reused Idempotency-Key, a state."""


class RateLimitedError(ProblemError):
    """Too many requests (429), still after the retries."""


class ServerError(ProblemError):
    """The gateway (or a proxy before it) failed (5xx), still after the retries where they were safe."""


_BY_STATUS: dict[int, type[ProblemError]] = {
    400: ValidationError,
    413: ValidationError,
    415: ValidationError,
    422: ValidationError,
    401: AuthError,
    403: AuthError,
    404: NotFoundError,
    409: ConflictError,
    429: RateLimitedError,
}


def problem_error(status: int, document: Any, reason: str, retry_after: float | None = None) -> ProblemError:
    """The typed error for an error answer; ``document`` is its parsed JSON body (anything, when it was not)."""
    doc: Mapping[str, Any] = document if isinstance(document, Mapping) else {}
    errors = [
        FieldProblem(str(e.get("pointer", "")), str(e.get("detail", "")))
        for e in doc.get("errors") or ()
        if isinstance(e, Mapping)
    ]
    cls = _BY_STATUS.get(status) or (ServerError if status >= 500 else ProblemError)
    title = doc.get("title")
    detail = doc.get("detail")
    instance = doc.get("instance")
    return cls(
        status,
        title if isinstance(title, str) and title else reason or f"HTTP {status}",
        type=str(doc.get("type") or "about:blank"),
        detail=detail if isinstance(detail, str) else None,
        instance=instance if isinstance(instance, str) else None,
        errors=errors,
        retry_after=retry_after,
        body=doc,
    )


class TransportError(GatewayError):
    """No answer from the gateway (refused, reset, timed out), after ``attempts`` tries."""

    def __init__(self, method: str, path: str, attempts: int, cause: BaseException) -> None:
        self.method = method
        self.path = path
        self.attempts = attempts
        self.cause = cause
        reason = " ".join(f"{type(cause).__name__}: {cause}".split())[:300]
        super().__init__(f"{method} {path}: no answer after {attempts} attempt(s): {reason}")


class SignatureVerificationError(GatewayError, ValueError):
    """A webhook request's ``Gateway-Signature`` is missing, malformed, stale, or signed with another secret."""
