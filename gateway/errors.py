"""The gateway's error hierarchy: one root, one line of docstring per subclass.

Every error carries structured attributes; the API maps them to problem+json in
one middleware (``gateway.api.problems``) and the CLI to exit code 2.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

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
    "GatewayError",
    "IdempotencyConflictError",
    "IdentifierError",
    "MoneyError",
    "NotFoundError",
    "OutcomeUnknownError",
    "PartnerUnreachableError",
    "PermanentPartnerError",
    "RequestTimeoutError",
    "ServiceUnavailableError",
    "SignatureError",
    "TransientPartnerError",
    "UnknownAdapterError",
    "UnsupportedMediaTypeError",
]


@dataclass(frozen=True)
class FieldError:
    """One failing field: its JSON pointer and what is wrong with it."""

    pointer: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"pointer": self.pointer, "detail": self.message}


class GatewayError(Exception):
    """Root of every error the gateway raises on purpose."""

    default_message = "gateway error"
    #: HTTP status the API answers with; the CLI always exits 2.
    status = 500
    #: short stable slug used in the problem ``type`` URI.
    slug = "gateway-error"

    def __init__(self, message: str | None = None, *, errors: list[FieldError] | None = None):
        self.message = message or self.default_message
        self.errors: list[FieldError] = list(errors or [])
        super().__init__(self.message)

    @property
    def title(self) -> str:
        return self.default_message[:1].upper() + self.default_message[1:]


class ConfigError(GatewayError, ValueError):
    """The configuration (file or environment) is invalid."""

    default_message = "invalid configuration"
    slug = "invalid-config"


class DomainError(GatewayError, ValueError):
    """A value breaks a domain rule (money, account, party)."""

    default_message = "invalid value"
    status = 422
    slug = "invalid-value"

    def __init__(self, message: str | None = None, *, pointer: str = "", **kw: Any):
        errors = kw.pop("errors", None) or [FieldError(pointer, message or self.default_message)]
        super().__init__(message, errors=errors)
        self.pointer = pointer


class MoneyError(DomainError):
    """An amount is not a valid amount of money in its currency."""

    default_message = "invalid amount"
    slug = "invalid-amount"


class CurrencyError(MoneyError):
    """A currency code is not an active ISO 4217 code."""

    default_message = "unknown currency"
    slug = "invalid-currency"


class AccountError(DomainError):
    """An account identifier (IBAN, BIC, routing number, wallet) is invalid."""

    default_message = "invalid account"
    slug = "invalid-account"


class IdentifierError(DomainError):
    """A reference or identifier (ISO 11649 creditor reference, LEI) fails its check digits."""

    default_message = "invalid identifier"
    slug = "invalid-identifier"


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


class AdapterError(GatewayError):
    """A partner adapter could not complete a call."""

    default_message = "partner call failed"
    status = 502
    slug = "partner-error"

    def __init__(self, message: str | None = None, *, reason_code: str | None = None):
        super().__init__(message)
        self.reason_code = reason_code


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
        super().__init__(message, reason_code=reason_code)
        self.retry_after = retry_after


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
