"""The client tests' fixtures: a webhook receiver on loopback (as the webhook tests use)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.webhooks.support import Receiver, start_receiver


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    rec = await start_receiver()
    try:
        yield rec
    finally:
        await rec.stop()
