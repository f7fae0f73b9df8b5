"""Stored history for report and anomaly tests: instructions written as intake writes them, moved through
their statuses by ``repo.record_transitions`` (the one place a status changes) at chosen instants."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.contracts.registry import contracts
from gateway.contracts.versions import parse_as_latest
from gateway.domain.ids import new_id
from gateway.domain.instruction import parse_instruction
from gateway.domain.status import Decision, Status
from gateway.store import repo
from gateway.store.audit import seal_events
from gateway.store.tables import instruction_events, instructions, outbox
from tests.support import TEST_CODEC, example_instruction

#: a payment's path: (status, minutes after it was received)
Path = Sequence[tuple[str, float]]

SETTLED: Path = (("accepted", 0.1), ("routed", 0.2), ("submitted", 0.5), ("settled", 10))
REJECTED: Path = (("accepted", 0.1), ("routed", 0.2), ("submitted", 0.5), ("rejected", 10))
FAILED: Path = (("accepted", 0.1), ("routed", 0.2), ("submitted", 0.5), ("failed", 10))


async def store_payments(
    engine: AsyncEngine,
    *,
    business_unit: str,
    adapter: str,
    received_at: datetime,
    paths: Sequence[Path],
    amount: str = "100.00",
    currency: str = "EUR",
) -> list[str]:
    """Store one payment per path, all received at ``received_at``, and apply every step at its instant."""
    ids = []
    async with engine.begin() as conn:
        bu = await repo.ensure_business_unit(conn, business_unit, received_at)
        for _ in paths:
            body = example_instruction(amount=amount, currency=currency)
            data = parse_as_latest(contracts(), "instruction", "1.1", body, parse_instruction)
            instruction_id = new_id("ins")
            await conn.execute(
                instructions.insert().values(TEST_CODEC.new_row(instruction_id, bu, data, "1.1", received_at))
            )
            event = repo.event_row(
                instruction_id,
                1,
                None,
                Status.RECEIVED,
                Decision(True, "applied"),
                source="api",
                occurred_at=received_at,
            )
            await seal_events(conn, [event])
            await conn.execute(instruction_events.insert().values(event))
            ids.append(instruction_id)
    steps: dict[float, list[repo.Transition]] = {}
    for instruction_id, path in zip(ids, paths, strict=True):
        for status, minutes in path:
            source = "partner" if status in ("settled", "rejected", "failed") else "dispatcher"
            named = adapter if status != "accepted" else None
            steps.setdefault(minutes, []).append(repo.Transition(instruction_id, Status(status), source, adapter=named))
    for minutes in sorted(steps):
        async with engine.begin() as conn:
            await repo.record_transitions(conn, steps[minutes], received_at + timedelta(minutes=minutes))
    return ids


async def unknown_outcome(engine: AsyncEngine, instruction_id: str, at: datetime, attempts: int = 3) -> None:
    """The dispatcher's retry of a submission that got no answer: its outbox job, attempted, with the error."""
    row: dict[str, Any] = {
        "instruction_id": instruction_id,
        "kind": "dispatch",
        "available_at": at + timedelta(minutes=5),
        "attempts": attempts,
        "last_error": "partner outcome unknown",
        "created_at": at,
    }
    async with engine.begin() as conn:
        await conn.execute(outbox.insert().values(row))
