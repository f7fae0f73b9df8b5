"""Sortable, URL-safe identifiers (ULID layout: 48-bit milliseconds + 80 random bits)."""

from __future__ import annotations

import os
import time

__all__ = ["new_id", "new_ids"]

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base32
#: ten bits → their two digits (``base64.b32encode`` is Python code, and did four groups per id)
_PAIRS = [a + b for a in _ALPHABET for b in _ALPHABET]


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
    The 26 digits are the 130 bits (two zero bits, 48 of milliseconds, 80 random) five at a time:
    the first ten (the milliseconds) are the same for all, the other sixteen are each id's random
    bits, two digits per ten bits (``_PAIRS``).
    """
    ms = time.time_ns() // 1_000_000
    random = os.urandom(10 * count)
    p = _PAIRS
    head = f"{prefix}_{p[ms >> 40]}{p[(ms >> 30) & 1023]}{p[(ms >> 20) & 1023]}{p[(ms >> 10) & 1023]}{p[ms & 1023]}"
    ids: list[str] = []
    for i in range(0, 10 * count, 10):
        r = int.from_bytes(random[i : i + 10], "big")
        ids.append(
            head
            + p[r >> 70]
            + p[(r >> 60) & 1023]
            + p[(r >> 50) & 1023]
            + p[(r >> 40) & 1023]
            + p[(r >> 30) & 1023]
            + p[(r >> 20) & 1023]
            + p[(r >> 10) & 1023]
            + p[r & 1023]
        )
    return ids
