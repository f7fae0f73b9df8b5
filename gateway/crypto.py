"""Field encryption at rest (AES-GCM with a key ring) and HMAC message signatures.

Keys are configured as ``kid:base64key`` pairs; the first key encrypts, every key
decrypts, so keys rotate by prepending a new one. Ciphertexts are
``kid$base64(nonce||ciphertext)`` and are bound to their context (AAD), so a
value copied into another row or column does not decrypt.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import time
from collections.abc import Mapping

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from gateway.errors import ConfigError, GatewayError, SignatureError

__all__ = ["FieldCipher", "parse_key_ring", "sign_payload", "verify_signature"]


class DecryptionError(GatewayError):
    """A stored ciphertext cannot be decrypted with the configured keys."""

    default_message = "cannot decrypt stored value"


def parse_key_ring(spec: str) -> dict[str, bytes]:
    """Parse ``kid:base64key[,kid:base64key…]``; keys must be 16, 24 or 32 bytes."""
    ring: dict[str, bytes] = {}
    for part in (p.strip() for p in spec.split(",")):
        if not part:
            continue
        kid, sep, b64 = part.partition(":")
        if not sep or not kid or "$" in kid:
            raise ConfigError("encryption keys must look like 'kid:base64key[,kid:base64key]'")
        try:
            key = base64.b64decode(b64, validate=True)
        except ValueError:
            raise ConfigError(f"encryption key {kid!r} is not valid base64") from None
        if len(key) not in (16, 24, 32):
            raise ConfigError(f"encryption key {kid!r} must be 16, 24 or 32 bytes, not {len(key)}")
        ring[kid] = key
    if not ring:
        raise ConfigError("at least one encryption key is required")
    return ring


class FieldCipher:
    """AES-GCM for single fields, with key ids so keys can rotate."""

    def __init__(self, keys: Mapping[str, bytes]):
        if not keys:
            raise ConfigError("at least one encryption key is required")
        self._keys = {kid: AESGCM(key) for kid, key in keys.items()}
        self.active_kid = next(iter(keys))

    def encrypt(self, plaintext: str, context: str) -> str:
        nonce = os.urandom(12)
        ct = self._keys[self.active_kid].encrypt(nonce, plaintext.encode(), context.encode())
        return f"{self.active_kid}${base64.b64encode(nonce + ct).decode()}"

    def decrypt(self, token: str, context: str) -> str:
        kid, _, b64 = token.partition("$")
        aead = self._keys.get(kid)
        if aead is None:
            raise DecryptionError(f"no key with id {kid!r} is configured")
        raw = base64.b64decode(b64)
        try:
            return aead.decrypt(raw[:12], raw[12:], context.encode()).decode()
        except InvalidTag:
            raise DecryptionError("stored value failed authentication") from None


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
