"""The gateway's error hierarchy: one root, one line of docstring per subclass.

Every error carries structured attributes; the API maps them to problem+json in
one middleware (``gateway.api.problems``) and the CLI to exit code 2.
"""

from __future__ import annotations

from gateway.domain.errors import (
    AccountError,
    CurrencyError,
    DomainError,
    FieldError,
    GatewayError,
    IdentifierError,
    MoneyError,
)

__all__ = [
    "AccountError",
    "AdapterError",
    "AuthenticationError",
    "BadRequestError",
    "ConfigError",
    "ConflictError",
    "ContractError",
    "ContractVersionError",
    "CurrencyError",
    "DomainError",
    "DuplicateReferenceError",
    "FieldError",
    "ForbiddenError",
    "FourEyesError",
    "GatewayError",
    "IdempotencyConflictError",
    "IdentifierError",
    "MoneyError",
    "NotFoundError",
    "OutcomeUnknownError",
    "PartnerUnreachableError",
    "PermanentPartnerError",
    "RateLimitedError",
    "RequestTimeoutError",
    "ServiceUnavailableError",
    "SignatureError",
    "TransientPartnerError",
    "UnknownAdapterError",
    "UnsupportedMediaTypeError",
]


class ConfigError(GatewayError, ValueError):
    """The configuration (file or environment) is invalid."""

    default_message = "invalid configuration"
    slug = "invalid-config"


class ContractError(GatewayError, ValueError):
    """A message does not satisfy its JSON contract; ``errors`` has every failing pointer."""

    default_message = "request does not match the contract"
    status = 422
    slug = "contract-violation"


class BadRequestError(GatewayError, ValueError):
    """The request is malformed (not JSON, missing header, bad query parameter)."""

    default_message = "bad request"
    status = 400
    slug = "bad-request"


class ContractVersionError(BadRequestError):
    """The requested contract version is malformed, unknown, retired, or asked for twice differently."""

    default_message = "unsupported contract version"
    slug = "unsupported-contract-version"


class UnsupportedMediaTypeError(GatewayError):
    """The request body is not in a media type this endpoint accepts."""

    default_message = "unsupported media type"
    status = 415
    slug = "unsupported-media-type"


class AuthenticationError(GatewayError):
    """The caller did not present a valid API key."""

    default_message = "missing or invalid API key"
    status = 401
    slug = "unauthenticated"


class ForbiddenError(GatewayError):
    """The caller's key lacks the scope for this operation."""

    default_message = "API key lacks the required scope"
    status = 403
    slug = "forbidden"


class FourEyesError(ForbiddenError):
    """The caller would decide a payment it submitted itself; another key must decide it."""

    default_message = "four-eyes rule: someone else must decide"
    slug = "four-eyes"


class NotFoundError(GatewayError, LookupError):
    """The resource does not exist (or belongs to another business unit)."""

    default_message = "not found"
    status = 404
    slug = "not-found"


class ConflictError(GatewayError):
    """The request conflicts with the resource's current state."""

    default_message = "conflict"
    status = 409
    slug = "conflict"


class DuplicateReferenceError(ConflictError):
    """The business unit already sent an instruction with this reference."""

    default_message = "duplicate reference"
    slug = "duplicate-reference"


class IdempotencyConflictError(ConflictError):
    """The Idempotency-Key was used before with a different request body."""

    default_message = "idempotency key reused with a different body"
    slug = "idempotency-conflict"


class UnknownAdapterError(NotFoundError):
    """No adapter with this name is registered."""

    default_message = "unknown adapter"
    slug = "unknown-adapter"


class SignatureError(GatewayError):
    """A partner message's signature is missing, malformed, stale or wrong."""

    default_message = "invalid signature"
    status = 401
    slug = "invalid-signature"


class ServiceUnavailableError(GatewayError):
    """The store cannot take writes right now; nothing was accepted."""

    default_message = "service unavailable"
    status = 503
    slug = "unavailable"

    def __init__(self, message: str | None = None, *, retry_after: float | None = None):
        super().__init__(message)
        #: seconds the caller should wait before trying again (the ``Retry-After`` header), if known
        self.retry_after = retry_after


class RateLimitedError(GatewayError):
    """The business unit sent more than its rate limit allows; nothing was accepted."""

    default_message = "rate limit exceeded"
    status = 429
    slug = "rate-limited"

    def __init__(self, message: str | None = None, *, retry_after: float):
        super().__init__(message)
        self.retry_after = retry_after


class AdapterError(GatewayError):
    """A partner adapter could not complete a call."""

    default_message = "partner call failed"
    status = 502
    slug = "partner-error"

    def __init__(self, message: str | None = None, *, reason_code: str | None = None, retry_after: float | None = None):
        super().__init__(message)
        self.reason_code = reason_code
        #: seconds the partner asked us to wait before the next try (``Retry-After``), if it said
        self.retry_after = retry_after


class TransientPartnerError(AdapterError):
    """The partner failed in a way that a retry with the same idempotency key may fix."""

    default_message = "transient partner failure"
    slug = "partner-transient"

    def __init__(
        self,
        message: str | None = None,
        *,
        reason_code: str | None = None,
        retry_after: float | None = None,
    ):
        super().__init__(message, reason_code=reason_code, retry_after=retry_after)


class OutcomeUnknownError(TransientPartnerError):
    """The request may have reached the partner but no answer came back: retry at the same partner, same key."""

    default_message = "partner outcome unknown"
    slug = "partner-outcome-unknown"

    def __init__(
        self,
        message: str | None = None,
        *,
        reason_code: str | None = "OUTCOME_UNKNOWN",
        retry_after: float | None = None,
    ):
        super().__init__(message, reason_code=reason_code, retry_after=retry_after)


class PartnerUnreachableError(TransientPartnerError):
    """The request never reached the partner (no connection), so it cannot have been executed."""

    default_message = "partner unreachable"
    slug = "partner-unreachable"

    def __init__(
        self,
        message: str | None = None,
        *,
        reason_code: str | None = "PARTNER_UNREACHABLE",
        retry_after: float | None = None,
    ):
        super().__init__(message, reason_code=reason_code, retry_after=retry_after)


class PermanentPartnerError(AdapterError):
    """The partner refused the call for good; retrying cannot help."""

    default_message = "permanent partner failure"
    slug = "partner-permanent"


class RequestTimeoutError(GatewayError):
    """The request body did not arrive in time; the connection is closed."""

    default_message = "request body timed out"
    status = 408
    slug = "request-timeout"
