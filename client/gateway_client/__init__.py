"""Python client for Partner Gateway (docs/client.md): ``GatewayClient``, typed errors, ``verify`` for webhooks."""

from __future__ import annotations

from gateway_client.client import DEFAULT_TIMEOUT, GatewayClient, RetryPolicy
from gateway_client.errors import (
    AuthError,
    ConflictError,
    FieldProblem,
    GatewayError,
    NotFoundError,
    ProblemError,
    RateLimitedError,
    ServerError,
    SignatureVerificationError,
    TransportError,
    ValidationError,
)
from gateway_client.webhooks import parse_event, verify

__all__ = [
    "DEFAULT_TIMEOUT",
    "AuthError",
    "ConflictError",
    "FieldProblem",
    "GatewayClient",
    "GatewayError",
    "NotFoundError",
    "ProblemError",
    "RateLimitedError",
    "RetryPolicy",
    "ServerError",
    "SignatureVerificationError",
    "TransportError",
    "ValidationError",
    "parse_event",
    "verify",
]
