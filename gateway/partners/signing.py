"""HMAC message signatures between the gateway and its partners.

A signature header reads ``t=<unix seconds>,v1=<hex HMAC-SHA256 of "t.body">``;
adapters and simulators sign and verify with the same two functions.
"""

from __future__ import annotations

import hashlib
import hmac
import time

from gateway.errors import SignatureError

__all__ = ["sign_payload", "verify_signature"]


def sign_payload(secret: bytes, body: bytes, timestamp: int | None = None) -> str:
    """Signature header value ``t=<unix>,v1=<hex HMAC-SHA256 of "t.body">``."""
    ts = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret, f"{ts}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={ts},v1={mac}"


def verify_signature(
    secret: bytes,
    body: bytes,
    header: str | None,
    *,
    tolerance: float = 300.0,
    now: float | None = None,
) -> int:
    """Check a ``t=…,v1=…`` signature; return its timestamp or raise ``SignatureError``.

    A timestamp further than ``tolerance`` seconds from ``now`` is a replay.
    """
    if not header:
        raise SignatureError("signature header is missing")
    parts: dict[str, list[str]] = {}
    for item in header.split(","):
        key, sep, value = item.strip().partition("=")
        if sep:
            parts.setdefault(key, []).append(value)
    try:
        ts = int(parts["t"][0])
    except (KeyError, ValueError):
        raise SignatureError("signature header has no valid timestamp") from None
    current = time.time() if now is None else now
    if abs(current - ts) > tolerance:
        raise SignatureError("signature timestamp outside the tolerance (replayed or stale)")
    expected = hmac.new(secret, f"{ts}.".encode() + body, hashlib.sha256).hexdigest()
    if not any(hmac.compare_digest(expected, v) for v in parts.get("v1", [])):
        raise SignatureError("signature does not match")
    return ts
