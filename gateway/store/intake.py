"""Durable intake with group commit.

Each accepted request hands its rows (instruction, first event, outbox job,
idempotency record) to one writer task, which commits whatever has queued up
in a single transaction and then answers every waiting request. A 202 is only
sent after that commit: accepted means durable. Conflicts (idempotency key
reuse, duplicate reference) are found with two set-based look-ups per batch,
so the fast path never reads row by row.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from sqlalchemy import Table, select
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from gateway.store.bulk import insert_rows, insert_statement, result_values
from gateway.store.sqlite_thread import sqlite_thread
from gateway.store.tables import idempotency_keys, instruction_events, instructions, outbox

__all__ = ["IntakeItem", "IntakeOutcome", "IntakeResult", "IntakeWriter"]

log = logging.getLogger(__name__)


class IntakeOutcome(Enum):
    CREATED = "created"
    REPLAYED = "replayed"  # same idempotency key, same body: the first response again
    KEY_CONFLICT = "key_conflict"  # same idempotency key, different body
    DUPLICATE_REFERENCE = "duplicate_reference"


@dataclass(frozen=True, slots=True)
class IntakeResult:
    outcome: IntakeOutcome
    status_code: int = 202
    response: dict[str, Any] | None = None


@dataclass(slots=True)
class IntakeItem:
    """Everything one accepted request writes, and the future its handler awaits."""

    business_unit_id: str
    idempotency_key: str
    request_hash: str
    instruction: dict[str, Any]
    event: dict[str, Any]
    job: dict[str, Any]
    response: dict[str, Any]
    future: asyncio.Future[IntakeResult] = field(default_factory=lambda: asyncio.get_running_loop().create_future())

    @property
    def key(self) -> tuple[str, str]:
        return (self.business_unit_id, self.idempotency_key)

    @property
    def ref(self) -> tuple[str, str]:
        return (self.business_unit_id, self.instruction["reference"])


class IntakeWriter:
    """The single writer task that group-commits intake batches."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        batch_max: int = 256,
        on_committed: Callable[[int], None] | None = None,
        one_hop: bool = True,
    ) -> None:
        self.engine = engine
        self.batch_max = batch_max
        self.one_hop = one_hop  # on SQLite, a batch's statements in one trip to the driver's thread
        self.on_committed = on_committed
        self._queue: asyncio.Queue[IntakeItem] = asyncio.Queue()
        self._last_batch_at = float("-inf")
        self._writing = False
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="intake-writer")

    async def stop(self, grace: float = 5.0) -> None:
        """Finish what is queued (up to ``grace`` seconds), then stop; never cut a commit short if it can help it."""
        deadline = time.monotonic() + grace
        while self._task and not self._task.done() and (self._writing or not self._queue.empty()):
            if time.monotonic() > deadline:
                break
            await asyncio.sleep(0.01)
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        while not self._queue.empty():
            item = self._queue.get_nowait()
            if not item.future.done():
                item.future.set_exception(RuntimeError("gateway is shutting down"))

    async def submit(self, item: IntakeItem) -> IntakeResult:
        """Queue the item and wait until its batch is committed (or refused)."""
        if self._task is None or self._task.done():
            raise RuntimeError("intake writer is not running")
        self._queue.put_nowait(item)
        return await item.future

    def under_pressure(self, window: float = 0.02) -> bool:
        """Whether requests are queued or a batch was written in the last ``window`` seconds."""
        return not self._queue.empty() or time.monotonic() - self._last_batch_at < window

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            self._last_batch_at = time.monotonic()
            while len(batch) < self.batch_max and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            self._writing = True
            try:
                results = await self._write_with_retry(batch)
            except asyncio.CancelledError:
                for item in batch:
                    if not item.future.done():
                        item.future.set_exception(RuntimeError("gateway is shutting down"))
                raise
            except Exception as exc:  # database down: every waiter gets the error
                log.exception("intake batch of %d failed", len(batch))
                for item in batch:
                    if not item.future.done():
                        item.future.set_exception(exc)
                continue
            finally:
                self._writing = False
            created = 0
            for item, result in zip(batch, results, strict=True):
                created += result.outcome is IntakeOutcome.CREATED
                if not item.future.done():
                    item.future.set_result(result)
            if created and self.on_committed:
                self.on_committed(created)

    async def _write_with_retry(self, batch: Sequence[IntakeItem]) -> list[IntakeResult]:
        # An IntegrityError means another process wrote a conflicting row between
        # our look-up and our insert; the next attempt's look-up sees it.
        for attempt in range(3):
            try:
                async with self.engine.begin() as conn:
                    return await self._write(conn, batch)
            except (IntegrityError, sqlite3.IntegrityError):  # the second: raised in the one-hop path
                if attempt == 2:
                    raise
                log.info("intake batch raced another writer; retrying")
        raise AssertionError("unreachable")

    async def _write(self, conn: AsyncConnection, batch: Sequence[IntakeItem]) -> list[IntakeResult]:
        thread = await sqlite_thread(conn, enabled=self.one_hop)
        if thread is not None:
            dialect = conn.dialect
            return await thread.run(lambda db: self._write_sqlite(db, dialect, batch))
        keys = {item.key for item in batch}
        refs = {item.ref for item in batch}
        units = sorted({bu for bu, _ in keys})
        # "unit IN (…) AND key IN (…)", not "(unit, key) IN (…)": SQLite answers a row-value IN list
        # with a scan of the whole index; the cross product is filtered here
        stored: dict[tuple[str, str], _Prior] = {}
        for row in await conn.execute(
            select(*_PRIOR_COLUMNS).where(
                idempotency_keys.c.business_unit_id.in_(units),
                idempotency_keys.c.key.in_(sorted({k for _, k in keys})),
            )
        ):
            if (row.business_unit_id, row.key) in keys:
                stored[(row.business_unit_id, row.key)] = _Prior(row.request_hash, row.status_code, row.response)
        taken_refs = {
            (row.business_unit_id, row.reference)
            for row in await conn.execute(
                select(instructions.c.business_unit_id, instructions.c.reference).where(
                    instructions.c.business_unit_id.in_(units),
                    instructions.c.reference.in_(sorted({r for _, r in refs})),
                )
            )
        } & refs
        results, accepted = _decide(batch, stored, taken_refs)
        if accepted:
            for table, rows in _rows(accepted):
                await insert_rows(conn, table, rows)
        return results

    @staticmethod
    def _write_sqlite(db: sqlite3.Connection, dialect: Dialect, batch: Sequence[IntakeItem]) -> list[IntakeResult]:
        """``_write`` as plain ``sqlite3`` calls, run in the driver's thread (one hop for the whole batch)."""
        keys = {item.key for item in batch}
        refs = {item.ref for item in batch}
        units = sorted({bu for bu, _ in keys})
        key_names = sorted({k for _, k in keys})
        references = sorted({r for _, r in refs})
        columns = tuple(c.name for c in _PRIOR_COLUMNS)
        marks = ", ".join("?" * len(units))
        rows = db.execute(
            f"SELECT {', '.join(columns)} FROM idempotency_keys "
            f"WHERE business_unit_id IN ({marks}) AND key IN ({', '.join('?' * len(key_names))})",
            [*units, *key_names],
        ).fetchall()
        stored = {
            (bu, key): _Prior(request_hash, status_code, response)
            for bu, key, request_hash, status_code, response in result_values(rows, idempotency_keys, columns, dialect)
            if (bu, key) in keys
        }
        taken_refs = {
            (bu, ref)
            for bu, ref in db.execute(
                "SELECT business_unit_id, reference FROM instructions "
                f"WHERE business_unit_id IN ({marks}) AND reference IN ({', '.join('?' * len(references))})",
                [*units, *references],
            )
        } & refs
        results, accepted = _decide(batch, stored, taken_refs)
        if accepted:
            for table, table_rows in _rows(accepted):
                db.executemany(*insert_statement(table, table_rows, dialect))
        return results


@dataclass(frozen=True, slots=True)
class _Prior:
    """A stored idempotency record."""

    request_hash: str
    status_code: int
    response: dict[str, Any] | None


_PRIOR_COLUMNS = (
    idempotency_keys.c.business_unit_id,
    idempotency_keys.c.key,
    idempotency_keys.c.request_hash,
    idempotency_keys.c.status_code,
    idempotency_keys.c.response,
)


def _decide(
    batch: Sequence[IntakeItem], stored: dict[tuple[str, str], _Prior], taken_refs: set[tuple[str, str]]
) -> tuple[list[IntakeResult], list[IntakeItem]]:
    """Each item's outcome, in order, and the items to insert (replays and conflicts insert nothing)."""
    results: list[IntakeResult] = []
    accepted: list[IntakeItem] = []
    in_batch: dict[tuple[str, str], IntakeItem] = {}
    for item in batch:
        prior = stored.get(item.key)
        if prior is not None:
            if prior.request_hash == item.request_hash:
                results.append(IntakeResult(IntakeOutcome.REPLAYED, prior.status_code, prior.response))
            else:
                results.append(IntakeResult(IntakeOutcome.KEY_CONFLICT, 409))
            continue
        twin = in_batch.get(item.key)
        if twin is not None:
            same = twin.request_hash == item.request_hash
            results.append(
                IntakeResult(IntakeOutcome.REPLAYED, 202, twin.response)
                if same
                else IntakeResult(IntakeOutcome.KEY_CONFLICT, 409)
            )
            continue
        if item.ref in taken_refs:
            results.append(IntakeResult(IntakeOutcome.DUPLICATE_REFERENCE, 409))
            continue
        taken_refs.add(item.ref)
        in_batch[item.key] = item
        accepted.append(item)
        results.append(IntakeResult(IntakeOutcome.CREATED, 202, item.response))
    return results, accepted


def _rows(accepted: Sequence[IntakeItem]) -> list[tuple[Table, list[dict[str, Any]]]]:
    """What the accepted items write, table by table, parents first."""
    return [
        (instructions, [i.instruction for i in accepted]),
        (instruction_events, [i.event for i in accepted]),
        (outbox, [i.job for i in accepted]),
        (
            idempotency_keys,
            [
                {
                    "business_unit_id": i.business_unit_id,
                    "key": i.idempotency_key,
                    "request_hash": i.request_hash,
                    "status_code": 202,
                    "response": i.response,
                    "instruction_id": i.instruction["id"],
                    "created_at": i.instruction["created_at"],
                }
                for i in accepted
            ],
        ),
    ]
