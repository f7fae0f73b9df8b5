"""Sortable, URL-safe identifiers (ULID layout: 48-bit milliseconds + 80 random bits)."""

from __future__ import annotations

import base64
import os
import time

__all__ = ["new_id", "new_ids"]

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base32
# RFC 4648 base32 → Crockford: both alphabets are in ascending order, so byte order is kept
_TO_CROCKFORD = bytes.maketrans(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", _ALPHABET.encode())
#: each id's 17 bytes padded to 20 (a whole number of base32's 5-byte groups), so one encoding serves many ids
_PAD = b"\0\0\0"


def new_id(prefix: str) -> str:
    """``prefix_`` + 26 characters; ids made later sort after ids made earlier (per ms).

    Instruction ids are sent to partners as MsgId/InstrId and idempotency keys,
    so with a prefix of at most 8 characters they stay within ISO 20022's 35.
    """
    return new_ids(prefix, 1)[0]


def new_ids(prefix: str, count: int) -> list[str]:
    """``count`` ids as ``new_id`` makes them, with one clock reading and one read of random bits for all.

    They share their millisecond: they sort after ids made earlier and before ids made later,
    in no particular order among themselves (as ids made within one millisecond always did).
    """
    ms = time.time_ns() // 1_000_000
    random = os.urandom(10 * count)
    high = ms << 80
    # 48-bit ms + 80 random bits, shifted so that 26 base32 digits (130 bits, the top two zero) hold them
    raw = b"".join(
        ((high | int.from_bytes(random[i : i + 10], "big")) << 6).to_bytes(17, "big") + _PAD
        for i in range(0, 10 * count, 10)
    )
    encoded = base64.b32encode(raw).translate(_TO_CROCKFORD).decode()
    return [f"{prefix}_{encoded[k : k + 26]}" for k in range(0, 32 * count, 32)]
