"""Event sinks: where status-change events are published beyond the gateway (``gateway_event_sinks``).

A sink receives events in the order they were committed, from a cursor over the
event history that the gateway keeps per sink (``gateway.finance.stream``). The
cursor moves only after ``publish`` returns, so delivery is at least once: after
a crash the last batch may come again, and each event carries a ``dedup_id``
(``<instruction id>:<sequence>``, the same every time) for the sink or its
consumers to drop repeats. :class:`NatsJetStreamSink` sends it as ``Nats-Msg-Id``,
so JetStream itself drops a repeat within the stream's duplicate window.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

import nats
from nats.aio.client import Client
from nats.js.api import StreamConfig
from nats.js.client import JetStreamContext
from nats.js.errors import NotFoundError

__all__ = ["EventSink", "NatsJetStreamSink", "SinkEvent", "subject_token"]

_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


@dataclass(frozen=True)
class SinkEvent:
    """One applied status change, as sinks receive it."""

    dedup_id: str  # <instruction id>:<sequence>: the same on every delivery of this event
    chain_seq: int  # its place in the gateway's event history (commit order)
    instruction_id: str
    business_unit_id: str
    sequence: int
    previous_status: str | None
    status: str
    source: str
    adapter: str | None
    partner_reference: str | None
    reason_code: str | None
    occurred_at: datetime

    def document(self) -> dict[str, Any]:
        """The event as a JSON-able document (what the JetStream sink sends)."""
        return {
            "id": self.dedup_id,
            "chain_seq": self.chain_seq,
            "instruction_id": self.instruction_id,
            "business_unit_id": self.business_unit_id,
            "sequence": self.sequence,
            "previous_status": self.previous_status,
            "status": self.status,
            "source": self.source,
            "adapter": self.adapter,
            "partner_reference": self.partner_reference,
            "reason_code": self.reason_code,
            "occurred_at": self.occurred_at.isoformat(),
        }


@runtime_checkable
class EventSink(Protocol):
    """What a plugin's sink implements; ``name`` keys its cursor (keep it stable)."""

    name: str

    async def open(self) -> None:
        """Connect (called once before the first ``publish``)."""

    async def publish(self, events: Sequence[SinkEvent]) -> None:
        """Publish events, in order; return only once they are durably accepted, raise otherwise."""

    async def close(self) -> None:
        """Disconnect."""


def subject_token(value: str) -> str:
    """``value`` as one NATS subject token (no dots, spaces or wildcards)."""
    return _UNSAFE.sub("_", value) or "_"


class NatsJetStreamSink:
    """Publishes events to a JetStream stream, each with ``Nats-Msg-Id`` = its dedup id.

    Subjects: ``<subject>.<business unit>.<status>``. The stream is created over
    ``<subject>.>`` if it does not exist. ``publish`` waits for every
    acknowledgement, so the cursor moves only over events the stream has stored.
    """

    def __init__(self, url: str, stream: str, subject: str, *, name: str | None = None) -> None:
        self.url = url
        self.stream = stream
        self.subject = subject
        self.name = name or f"nats:{stream}"
        self._client: Client | None = None
        self._js: JetStreamContext | None = None

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> NatsJetStreamSink | None:
        """The sink ``event_sinks.nats_*`` configure, or None without ``nats_url``."""
        url = config.get("nats_url")
        if not url:
            return None
        return cls(str(url), str(config["nats_stream"]), str(config["nats_subject"]))

    async def open(self) -> None:
        self._client = await nats.connect(self.url, connect_timeout=5, max_reconnect_attempts=3)
        self._js = self._client.jetstream()
        try:
            await self._js.stream_info(self.stream)
        except NotFoundError:
            await self._js.add_stream(StreamConfig(name=self.stream, subjects=[f"{self.subject}.>"]))

    async def publish(self, events: Sequence[SinkEvent]) -> None:
        if self._js is None:
            raise RuntimeError("NatsJetStreamSink.publish before open")
        for event in events:
            subject = f"{self.subject}.{subject_token(event.business_unit_id)}.{subject_token(event.status)}"
            body = json.dumps(event.document(), separators=(",", ":")).encode()
            await self._js.publish(subject, body, stream=self.stream, headers={"Nats-Msg-Id": event.dedup_id})

    async def close(self) -> None:
        if self._client is not None:
            await self._client.drain()
        self._client = self._js = None
