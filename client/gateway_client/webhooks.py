"""The receiving side of the gateway's status webhooks: check ``Gateway-Signature`` before trusting a body.

The header reads ``t=<unix seconds>,v1=<hex>[,v1=<hex>]``: each ``v1`` is the
HMAC-SHA256, keyed with one of the endpoint's secrets, of ``f"{t}."`` followed by the
raw body bytes (docs/webhooks.md). During a secret rotation the gateway signs with both
secrets (two ``v1``); a receiver holding either accepts. A timestamp further than
``tolerance`` seconds (5 minutes) from the receiver's clock is refused as a replay.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
from collections.abc import Iterable, Mapping
from typing import Any

from gateway_client.errors import SignatureVerificationError

__all__ = [
    "DELIVERY_ID_HEADER",
    "EVENT_ID_HEADER",
    "SIGNATURE_HEADER",
    "TOLERANCE_SECONDS",
    "parse_event",
    "verify",
]

SIGNATURE_HEADER = "Gateway-Signature"
EVENT_ID_HEADER = "Gateway-Event-Id"
DELIVERY_ID_HEADER = "Gateway-Delivery-Id"
#: the documented tolerance between the signature's timestamp and the receiver's clock
TOLERANCE_SECONDS = 300
#: the longest header read (it arrives before anything is authenticated)
_MAX_HEADER = 1024
_TIMESTAMP = re.compile(r"[0-9]{1,12}")
_HEX_MAC = re.compile(r"[0-9a-fA-F]{64}")

Secrets = str | bytes | Iterable[str | bytes]


def _header(headers: Mapping[str, str], name: str) -> str | None:
    """A header by name, case-insensitively (works for plain dicts as well as frameworks' header maps)."""
    value = headers.get(name)
    if value is not None:
        return value
    wanted = name.lower()
    return next((v for k, v in headers.items() if k.lower() == wanted), None)


def _secrets(secrets: Secrets) -> list[bytes]:
    items = [secrets] if isinstance(secrets, str | bytes) else list(secrets)
    keys = [s.encode() if isinstance(s, str) else bytes(s) for s in items]
    if not keys or not all(keys):
        raise ValueError("give at least one non-empty webhook secret")
    return keys


def _parse(header: str) -> tuple[int, list[bytes]]:
    if len(header) > _MAX_HEADER or not header.isascii():
        raise SignatureVerificationError("the signature header is malformed")
    timestamps: list[str] = []
    signatures: list[str] = []
    for item in header.split(","):
        key, sep, value = item.strip().partition("=")
        if not sep:
            raise SignatureVerificationError("the signature header is malformed")
        if key == "t":
            timestamps.append(value)
        elif key == "v1":
            signatures.append(value)
        # other schemes (v0=, a future v2=) are ignored
    if len(timestamps) != 1 or not _TIMESTAMP.fullmatch(timestamps[0]):
        raise SignatureVerificationError("the signature header has no valid timestamp")
    if not signatures or not all(_HEX_MAC.fullmatch(v) for v in signatures):
        raise SignatureVerificationError("the signature header has no well-formed v1 signature")
    return int(timestamps[0]), [v.lower().encode() for v in signatures]


def verify(
    headers: Mapping[str, str],
    body: bytes,
    secrets: Secrets,
    tolerance: float = TOLERANCE_SECONDS,
    *,
    now: float | None = None,
) -> int:
    """Check a webhook request's signature; return its timestamp or raise ``SignatureVerificationError``.

    ``body`` is the raw bytes as received (never re-serialised JSON); ``secrets`` one
    secret or several (during a rotation, the new and the old one). Every comparison
    is constant-time.
    """
    header = _header(headers, SIGNATURE_HEADER)
    if not header:
        raise SignatureVerificationError(f"the {SIGNATURE_HEADER} header is missing")
    timestamp, signatures = _parse(header)
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance:
        raise SignatureVerificationError("the signature's timestamp is outside the tolerance (replayed or stale)")
    signed = f"{timestamp}.".encode() + body
    matched = False
    for key in _secrets(secrets):
        expected = hmac.new(key, signed, hashlib.sha256).hexdigest().encode()
        for candidate in signatures:
            # no early exit: the time taken does not tell which secret or signature matched
            matched |= hmac.compare_digest(expected, candidate)
    if not matched:
        raise SignatureVerificationError("the signature does not match any of the secrets")
    return timestamp


def parse_event(
    headers: Mapping[str, str],
    body: bytes,
    secrets: Secrets,
    tolerance: float = TOLERANCE_SECONDS,
    *,
    now: float | None = None,
) -> dict[str, Any]:
    """``verify``, then the body as a ``status-event`` document (``SignatureVerificationError`` if not JSON)."""
    verify(headers, body, secrets, tolerance, now=now)
    try:
        document = json.loads(body)
    except ValueError:
        raise SignatureVerificationError("the signed body is not JSON") from None
    if not isinstance(document, dict):
        raise SignatureVerificationError("the signed body is not a JSON object")
    return document
