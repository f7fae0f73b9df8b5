"""Sortable, URL-safe identifiers (ULID layout: 48-bit milliseconds + 80 random bits)."""

from __future__ import annotations

import base64
import os
import time

__all__ = ["new_id"]

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base32
# RFC 4648 base32 → Crockford: both alphabets are in ascending order, so byte order is kept
_TO_CROCKFORD = bytes.maketrans(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", _ALPHABET.encode())


def new_id(prefix: str) -> str:
    """``prefix_`` + 26 characters; ids made later sort after ids made earlier (per ms).

    Instruction ids are sent to partners as MsgId/InstrId and idempotency keys,
    so with a prefix of at most 8 characters they stay within ISO 20022's 35.
    """
    ms = time.time_ns() // 1_000_000
    # 48-bit ms + 80 random bits as 26 base32 digits (130 bits, the top two zero), like a ULID
    raw = ((ms << 80) | int.from_bytes(os.urandom(10), "big")) << 6
    encoded = base64.b32encode(raw.to_bytes(17, "big"))[:26]
    return f"{prefix}_{encoded.translate(_TO_CROCKFORD).decode()}"
