"""The webhook tests' receiver fixture."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.webhooks.support import Receiver, start_receiver


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    """A business unit's webhook receiver on a loopback port (answers 200 unless told otherwise)."""
    rec = await start_receiver()
    try:
        yield rec
    finally:
        await rec.stop()
