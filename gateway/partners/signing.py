"""HMAC message signatures between the gateway and its partners.

A signature header reads ``t=<unix seconds>,v1=<hex HMAC-SHA256 of "t.body">``;
adapters and simulators sign and verify with the same two functions.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time

from gateway.errors import SignatureError

__all__ = ["sign_payload", "verify_signature"]


def sign_payload(secret: bytes, body: bytes, timestamp: int | None = None) -> str:
    """Signature header value ``t=<unix>,v1=<hex HMAC-SHA256 of "t.body">``."""
    ts = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret, f"{ts}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={ts},v1={mac}"


#: longest signature header read; a few signatures (key rotation) fit easily
MAX_SIGNATURE_HEADER = 1024
_TIMESTAMP = re.compile(r"[0-9]{1,12}")
_HEX_MAC = re.compile(r"[0-9a-fA-F]{64}")


def _parse_signature_header(header: str) -> tuple[int, list[bytes]]:
    """``(timestamp, [v1 MACs])`` of a ``t=…,v1=…`` header; ``SignatureError`` for anything else.

    Strict on purpose: the header arrives before any authentication, so it is
    bounded in length, ASCII only, the timestamp is at most 12 decimal digits and
    every ``v1`` is exactly 64 hex digits. Unknown schemes (``v0=``)
    are ignored, as partners add them when they rotate.
    """
    if len(header) > MAX_SIGNATURE_HEADER or not header.isascii():
        raise SignatureError("signature header is malformed")
    parts: dict[str, list[str]] = {}
    for item in header.split(","):
        key, sep, value = item.strip().partition("=")
        if not sep:
            raise SignatureError("signature header is malformed")
        parts.setdefault(key, []).append(value)
    timestamps = parts.get("t", [])
    if len(timestamps) != 1 or not _TIMESTAMP.fullmatch(timestamps[0]):
        raise SignatureError("signature header has no valid timestamp")
    signatures = parts.get("v1", [])
    if not signatures or not all(_HEX_MAC.fullmatch(v) for v in signatures):
        raise SignatureError("signature header has no well-formed v1 signature (64 hex digits)")
    return int(timestamps[0]), [v.lower().encode() for v in signatures]


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
    ts, signatures = _parse_signature_header(header)
    current = time.time() if now is None else now
    if abs(current - ts) > tolerance:
        raise SignatureError("signature timestamp outside the tolerance (replayed or stale)")
    expected = hmac.new(secret, f"{ts}.".encode() + body, hashlib.sha256).hexdigest().encode()
    if not any(hmac.compare_digest(expected, v) for v in signatures):
        raise SignatureError("signature does not match")
    return ts
