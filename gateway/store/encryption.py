"""Field encryption at rest: AES-GCM with a key ring.

Keys are configured as ``kid:base64key`` pairs; the first key encrypts, every key
decrypts, so keys rotate by prepending a new one. Ciphertexts are
``kid$base64(nonce||ciphertext)`` and are bound to their context (AAD), so a
value copied into another row or column does not decrypt.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Mapping, Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from gateway.errors import ConfigError, GatewayError

__all__ = ["DecryptionError", "FieldCipher", "parse_key_ring"]


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
        return self.encrypt_many([(plaintext, context)])[0]

    def encrypt_many(self, fields: Sequence[tuple[str, str]]) -> list[str]:
        """``encrypt`` of each (plaintext, context) pair: the same tokens, one read of random bits for all nonces.

        Each field still has its own random 96-bit nonce (drawn from ``os.urandom`` together) and its own AAD.
        """
        aead = self._keys[self.active_kid].encrypt
        nonces = os.urandom(12 * len(fields))
        prefix = f"{self.active_kid}$"
        b64 = base64.b64encode
        out = []
        for k, (plaintext, context) in enumerate(fields):
            nonce = nonces[12 * k : 12 * k + 12]
            out.append(prefix + b64(nonce + aead(nonce, plaintext.encode(), context.encode())).decode())
        return out

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
