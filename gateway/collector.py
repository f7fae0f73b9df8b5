"""Holding Python's cyclic garbage collector off while a large group of long-lived objects is built.

Used by batch intake (``gateway.api.batches``), reconciliation runs (``gateway.recon.service``,
``gateway.recon.matching.decide``) and streamed statement imports: each makes hundreds of thousands
to millions of objects that all live until it is done, and makes no reference cycles.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

__all__ = ["collector_paused"]

_pausing = 0  # groups being taken in with the collector paused


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """Hold Python's cyclic garbage collector off while a group is built, used and written.

    A group of 10,000 documents makes a few hundred thousand objects that all live until it
    is written, a reconciliation run a few million; the collector, started every few hundred
    allocations, would walk them again and again (a third of a batch's CPU time, almost half of
    a reconciliation decision's, measured). Nothing here makes reference cycles, and what the
    group leaves is freed by reference counting; the collector resumes when the last group in
    progress is done (groups overlap when one waits for the writer). Where something else has
    turned the collector off, it is left off.
    """
    global _pausing
    if not _pausing and not gc.isenabled():
        yield
        return
    _pausing += 1
    gc.disable()
    try:
        yield
    finally:
        _pausing -= 1
        if not _pausing:
            gc.enable()
