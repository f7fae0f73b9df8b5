"""Status-change events to NATS JetStream through the ``gateway_event_sinks`` hook: none lost, none twice.

Needs a NATS server with JetStream: the ``nats_url`` fixture (tests/conftest.py).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import nats
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.config import load_settings
from gateway.errors import ConfigError
from gateway.finance.stream import EventRelay
from gateway.plugins.manager import Plugins
from gateway.plugins.markers import hookimpl
from gateway.plugins.sinks import NatsJetStreamSink
from gateway.store.tables import instruction_events
from tests.support import Database
from tests.test_lake import seed


@pytest.fixture
async def stream(nats_url: str) -> AsyncIterator[tuple[str, str]]:
    """A stream and subject prefix of this test's own (deleted afterwards)."""
    tag = uuid.uuid4().hex[:10]
    name, subject = f"T_{tag}", f"t{tag}.events"
    yield name, subject
    client = await nats.connect(nats_url)
    try:
        await client.jetstream().delete_stream(name)
    finally:
        await client.close()


async def stored(url: str, name: str) -> list[dict[str, object]]:
    """Every message the stream holds, in order: its Nats-Msg-Id, subject and document."""
    client = await nats.connect(url)
    try:
        js = client.jetstream()
        info = await js.stream_info(name)
        out = []
        for seq in range(info.state.first_seq, info.state.last_seq + 1):
            msg = await js.get_msg(name, seq)
            out.append(
                {"msg_id": (msg.headers or {}).get("Nats-Msg-Id"), "subject": msg.subject, **json.loads(msg.data)}
            )
        return out
    finally:
        await client.close()


def clock() -> datetime:
    return datetime(2026, 12, 6, 9, 0, tzinfo=UTC)


class Killed(BaseException):
    """Stands in for the gateway dying after the sink took a batch, before the cursor moved."""


async def applied_events(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        query = select(func.count()).select_from(instruction_events).where(instruction_events.c.applied)
        return int(await conn.scalar(query) or 0)


def sink_from_plugins(url: str, name: str, subject: str) -> NatsJetStreamSink:
    """The JetStream sink as the gateway gets it: from the built-in plugin's ``gateway_event_sinks``."""
    settings = load_settings(env={}).with_overrides(
        event_sinks__nats_url=url, event_sinks__nats_stream=name, event_sinks__nats_subject=subject
    )
    (sink,) = Plugins(load_entry_points=False).event_sinks(settings.section("event_sinks"))
    assert isinstance(sink, NatsJetStreamSink)
    return sink


async def test_events_reach_jetstream_once_each_across_a_restart(
    database: Database, nats_url: str, stream: tuple[str, str], tmp_path: Path
) -> None:
    name, subject = stream
    engine = database.engine()
    calls = 0

    def die_after_second_batch(stage: str) -> None:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise Killed

    try:
        await seed(engine, 12, 0)
        sink = sink_from_plugins(nats_url, name, subject)
        relay = EventRelay(engine, [sink], clock, batch=7, crash_point=die_after_second_batch)
        with pytest.raises(Killed):
            await relay.publish_due()  # the second batch is in the stream, the cursor is still before it
        await relay.close()
        # the gateway restarts: a new relay and connection; more payments move meanwhile
        await seed(engine, 5, 12)
        relay = EventRelay(engine, [sink_from_plugins(nats_url, name, subject)], clock, batch=7)
        try:
            await relay.publish_due()
            assert await relay.publish_due() == 0
        finally:
            await relay.close()
        expected = await applied_events(engine)
    finally:
        await engine.dispose()
    messages = await stored(nats_url, name)
    ids = [m["msg_id"] for m in messages]
    assert len(ids) == expected == len(set(ids))  # none lost, none twice (JetStream dropped the re-sent batch)
    assert all(m["id"] == m["msg_id"] for m in messages)
    seqs = [m["chain_seq"] for m in messages]
    assert seqs == sorted(seqs)  # commit order
    first = messages[0]
    assert first["subject"] == f"{subject}.{first['business_unit_id']}.received" and first["status"] == "received"


def test_two_event_sinks_with_one_name_are_refused() -> None:
    class Twice:
        @hookimpl
        def gateway_event_sinks(self, config: object) -> list[NatsJetStreamSink]:
            return [NatsJetStreamSink("nats://x", "S", "s")]

    plugins = Plugins(load_entry_points=False, extra=[Twice()])
    config = {"nats_url": "nats://x", "nats_stream": "S", "nats_subject": "s"}
    with pytest.raises(ConfigError, match="two event sinks are named 'nats:S'"):
        plugins.event_sinks(config)
