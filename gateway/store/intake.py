"""Durable intake with group commit.

Each accepted request hands its rows (instruction, first event, outbox job,
idempotency record) to one writer task, which commits whatever has queued up
in a single transaction and then answers every waiting request. A 202 is only
sent after that commit: accepted means durable. Conflicts (idempotency key
reuse, duplicate reference) are found with two set-based look-ups per batch,
so the fast path never reads row by row.

An ``IntakeGroup`` (a batch request or an ERP file: up to 10,000 instructions)
goes through the same writer but is written alone, in one transaction of its
own: the group's record (``instruction_batches``, idempotent per key), every
accepted instruction with its event, outbox row and webhook deliveries, and
whatever other rows the group brings (a file's row). All or nothing on request.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any, TypeVar

from sqlalchemy import Table
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from gateway.domain.status import Decision, Status
from gateway.store.audit import seal_events, seal_events_in_thread
from gateway.store.bulk import (
    JSONText,
    Statement,
    execute_all,
    insert_statement,
    placeholders,
    result_values,
    run_statements,
)
from gateway.store.repo import event_row
from gateway.store.sqlite_thread import sqlite_thread
from gateway.store.tables import (
    idempotency_keys,
    instruction_batches,
    instruction_events,
    instructions,
    outbox,
    webhook_deliveries,
)
from gateway.store.webhooks import delivery_rows, enabled_endpoints, enabled_endpoints_in_thread

__all__ = ["GroupResult", "IntakeGroup", "IntakeItem", "IntakeOutcome", "IntakeResult", "IntakeWriter"]

log = logging.getLogger(__name__)
T = TypeVar("T")
_APPLIED = Decision(True, "applied")


class IntakeOutcome(Enum):
    CREATED = "created"
    REPLAYED = "replayed"  # same idempotency key, same body: the first response again
    KEY_CONFLICT = "key_conflict"  # same idempotency key, different body
    DUPLICATE_REFERENCE = "duplicate_reference"
    REFUSED = "refused"  # a group written all or nothing with an item that could not be: nothing written


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

    @classmethod
    def received(
        cls,
        *,
        business_unit_id: str,
        idempotency_key: str,
        request_hash: str,
        instruction: dict[str, Any],
        response: dict[str, Any],
        now: datetime,
    ) -> IntakeItem:
        """A new instruction as intake writes it: its row, its ``received`` event and its dispatch job."""
        instruction_id = instruction["id"]
        return cls(
            business_unit_id=business_unit_id,
            idempotency_key=idempotency_key,
            request_hash=request_hash,
            instruction=instruction,
            event=event_row(instruction_id, 1, None, Status.RECEIVED, _APPLIED, source="api", occurred_at=now),
            job={
                "instruction_id": instruction_id,
                "kind": "dispatch",
                "available_at": now,
                "attempts": 0,
                "created_at": now,
            },
            response=response,
        )

    @property
    def key(self) -> tuple[str, str]:
        return (self.business_unit_id, self.idempotency_key)

    @property
    def ref(self) -> tuple[str, str]:
        return (self.business_unit_id, self.instruction["reference"])


#: a group's answer from its items' outcomes: (HTTP status, body stored for replays)
Answer = Callable[[list["IntakeResult"]], tuple[int, dict[str, Any]]]
#: other rows a group writes in its transaction, from its items' outcomes: (table, rows) pairs
ExtraRows = Callable[[list["IntakeResult"]], list[tuple[Table, list[dict[str, Any]]]]]


@dataclass(slots=True)
class IntakeGroup:
    """Many instructions of one business unit written in ONE transaction, idempotent per ``idempotency_key``."""

    id: str
    business_unit_id: str
    idempotency_key: str
    request_hash: str
    items: list[IntakeItem]
    answer: Answer
    now: datetime
    all_or_nothing: bool = False
    extra: ExtraRows | None = None
    future: asyncio.Future[GroupResult] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


@dataclass(frozen=True, slots=True)
class GroupResult:
    """A group's outcome (``CREATED``, ``REPLAYED``, ``KEY_CONFLICT`` or ``REFUSED``) and its items' outcomes.

    ``items`` is empty on a replay or a key conflict (the stored answer says it all).
    """

    outcome: IntakeOutcome
    status_code: int
    response: dict[str, Any] | None
    items: list[IntakeResult]
    #: ``response`` as the JSON text stored with the group (a new group's answer, encoded once for both)
    response_text: str | None = None


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
        self._queue: asyncio.Queue[IntakeItem | IntakeGroup] = asyncio.Queue()
        self._last_batch_at = float("-inf")
        self._writing = False
        self._task: asyncio.Task[None] | None = None
        self._conn: AsyncConnection | None = None  # the writer's own connection (PostgreSQL)

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
        if self._conn is not None:
            conn, self._conn = self._conn, None
            with contextlib.suppress(Exception):
                await conn.close()
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

    async def submit_group(self, group: IntakeGroup) -> GroupResult:
        """Queue a group and wait until it is committed (or refused): written alone, in one transaction."""
        if self._task is None or self._task.done():
            raise RuntimeError("intake writer is not running")
        self._queue.put_nowait(group)
        return await group.future

    def overloaded(self, max_queue: int, max_wait: float) -> float | None:
        """Seconds to suggest in Retry-After if the writer has fallen behind, else ``None``.

        Behind: more than ``max_queue`` requests waiting, or the batch being written
        started more than ``max_wait`` seconds ago (the database is slow or stuck).
        """
        queued = self._queue.qsize()
        busy_for = time.monotonic() - self._last_batch_at if self._writing else 0.0
        if queued > max_queue or busy_for > max_wait:
            return max(1.0, busy_for)
        return None

    def under_pressure(self) -> bool:
        """Whether intake has fallen behind: more requests queued than a quarter of a batch.

        Steady load keeps a few requests queued between commits; that is not pressure, and
        deferring to it would hold dispatch back for as long as the load lasts (the backlog
        then grows however fast the partners are). A queue that outgrows what the next commit
        takes in stride is: the writer needs the database to itself for a moment.
        """
        return self._queue.qsize() > max(1, self.batch_max // 4)

    async def _run(self) -> None:
        while True:
            first = await self._queue.get()
            self._last_batch_at = time.monotonic()
            held: IntakeGroup | None = None
            if isinstance(first, IntakeGroup):
                held, batch = first, []
            else:
                batch = [first]
            while held is None and len(batch) < self.batch_max and not self._queue.empty():
                entry = self._queue.get_nowait()
                if isinstance(entry, IntakeGroup):
                    held = entry  # written after this batch, alone
                else:
                    batch.append(entry)
            if batch:
                await self._commit_items(batch)
            if held is not None:
                await self._commit_group(held)

    async def _commit_items(self, batch: list[IntakeItem]) -> None:
        self._writing = True
        try:
            results = await self._write_with_retry(lambda conn: self._write(conn, batch))
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
            return
        finally:
            self._writing = False
        created = 0
        for item, result in zip(batch, results, strict=True):
            created += result.outcome is IntakeOutcome.CREATED
            if not item.future.done():
                item.future.set_result(result)
        if created and self.on_committed:
            self.on_committed(created)

    async def _commit_group(self, group: IntakeGroup) -> None:
        self._writing = True
        try:
            result = await self._write_with_retry(lambda conn: _write_group(conn, group))
        except asyncio.CancelledError:
            if not group.future.done():
                group.future.set_exception(RuntimeError("gateway is shutting down"))
            raise
        except Exception as exc:
            log.exception("intake group %s of %d failed", group.id, len(group.items))
            if not group.future.done():
                group.future.set_exception(exc)
            return
        finally:
            self._writing = False
        if not group.future.done():
            group.future.set_result(result)
        created = sum(r.outcome is IntakeOutcome.CREATED for r in result.items)
        if result.outcome is IntakeOutcome.CREATED and created and self.on_committed:
            self.on_committed(created)

    async def _write_with_retry(self, write: Callable[[AsyncConnection], Awaitable[T]]) -> T:
        # An IntegrityError means another process wrote a conflicting row between
        # our look-up and our insert; the next attempt's look-up sees it. A lost
        # connection (database restarted) is retried once on a new one: whatever
        # the lost commit did, the look-up of the retry sees it (a committed
        # batch comes back as replays of its own responses).
        for attempt in range(3):
            try:
                async with self._transaction() as conn:
                    return await write(conn)
            except (IntegrityError, sqlite3.IntegrityError):  # the second: raised in the one-hop path
                if attempt == 2:
                    raise
                log.info("intake batch raced another writer; retrying")
            except DBAPIError as exc:
                if not exc.connection_invalidated or attempt == 2:
                    raise
                log.warning("intake lost its database connection; retrying the batch on a new one")
        raise AssertionError("unreachable")

    @contextlib.asynccontextmanager
    async def _transaction(self) -> AsyncIterator[AsyncConnection]:
        """A transaction for one batch: on PostgreSQL on the writer's own connection, else from the pool.

        With a pool shared with the dispatcher's concurrent batches, waiting for a
        free connection was a good part of a batch's time on PostgreSQL. SQLite
        has one connection, which the writer must share.
        """
        if self.engine.dialect.name != "postgresql":
            async with self.engine.begin() as conn:
                yield conn
            return
        if self._conn is None:
            conn = await self.engine.connect()
            # plan the look-up for each batch: a plan cached while the tables were small (a hash join over a
            # sequential scan) would be kept for the connection's life, and each batch would read the whole table
            await conn.exec_driver_sql("SET plan_cache_mode = force_custom_plan")
            await conn.commit()
            self._conn = conn
        try:
            async with self._conn.begin():
                yield self._conn
        except BaseException:
            conn, self._conn = self._conn, None  # a fresh one next time (the pool pings it)
            with contextlib.suppress(Exception):
                await conn.close()
            raise

    async def _write(self, conn: AsyncConnection, batch: Sequence[IntakeItem]) -> list[IntakeResult]:
        dialect = conn.dialect
        thread = await sqlite_thread(conn, enabled=self.one_hop)
        if thread is not None:
            return await thread.run(lambda db: self._write_sqlite(db, dialect, batch))
        lookups = _Lookups(batch, dialect)
        results, accepted = _decide(batch, *lookups.found((await conn.exec_driver_sql(*lookups.query)).all()))
        await seal_events(conn, [i.event for i in accepted])
        endpoints = await enabled_endpoints(conn, {i.business_unit_id for i in accepted})
        await execute_all(conn, _inserts(accepted, dialect, endpoints), one_hop=False)
        return results

    @staticmethod
    def _write_sqlite(db: sqlite3.Connection, dialect: Dialect, batch: Sequence[IntakeItem]) -> list[IntakeResult]:
        """``_write`` as plain ``sqlite3`` calls, run in the driver's thread (one hop for the whole batch)."""
        lookups = _Lookups(batch, dialect)
        results, accepted = _decide(batch, *lookups.found(db.execute(*lookups.query).fetchall()))
        seal_events_in_thread(db, dialect, [i.event for i in accepted])
        endpoints = enabled_endpoints_in_thread(db, dialect, {i.business_unit_id for i in accepted})
        run_statements(db, _inserts(accepted, dialect, endpoints))
        return results


class _Lookups:
    """A batch's look-ups, in one statement: the stored idempotency keys and the references already taken.

    SQLite: ``unit IN (…) AND key IN (…)``, not ``(unit, key) IN (…)``, which it
    answers by scanning the whole index; the cross product is filtered here.
    PostgreSQL: the pairs are joined from ``unnest`` of array parameters, an
    index look-up per pair (with ``unit = ANY(…) AND key = ANY(…)`` PostgreSQL 15
    may use the index for the unit alone and filter every row of it), and the
    statement has one shape whatever the batch, so it is prepared once.
    """

    _COLUMNS = ("business_unit_id", "key", "request_hash", "status_code", "response")

    def __init__(self, batch: Sequence[IntakeItem], dialect: Dialect) -> None:
        self.dialect = dialect
        self.keys = {item.key for item in batch}
        self.refs = {item.ref for item in batch}
        keys_select = "SELECT 'k', t.business_unit_id, t.key, t.request_hash, t.status_code, t.response"
        refs_select = "SELECT 'r', t.business_unit_id, t.reference, NULL, NULL, NULL"
        if dialect.paramstyle == "qmark":
            units = sorted({bu for bu, _ in self.keys})
            names = sorted({k for _, k in self.keys})
            references = sorted({r for _, r in self.refs})
            unit_in = f"t.business_unit_id IN ({placeholders(dialect, len(units))})"
            self.query: tuple[str, tuple[Any, ...]] = (
                f"{keys_select} FROM idempotency_keys t "
                f"WHERE {unit_in} AND t.key IN ({placeholders(dialect, len(names))}) UNION ALL "
                f"{refs_select} FROM instructions t "
                f"WHERE {unit_in} AND t.reference IN ({placeholders(dialect, len(references))})",
                (*units, *names, *units, *references),
            )
        else:  # asyncpg
            self.query = (
                f"{keys_select} FROM unnest($1::text[], $2::text[]) AS q(unit, key) "
                "JOIN idempotency_keys t ON t.business_unit_id = q.unit AND t.key = q.key UNION ALL "
                f"{refs_select} FROM unnest($3::text[], $4::text[]) AS q(unit, ref) "
                "JOIN instructions t ON t.business_unit_id = q.unit AND t.reference = q.ref",
                (*map(list, zip(*sorted(self.keys), strict=True)), *map(list, zip(*sorted(self.refs), strict=True))),
            )

    def found(self, rows: Sequence[Any]) -> tuple[dict[tuple[str, str], _Prior], set[tuple[str, str]]]:
        """The query's rows as (stored idempotency records by key, references taken)."""
        stored_rows = [row[1:] for row in rows if row[0] == "k"]
        values = result_values(stored_rows, idempotency_keys, self._COLUMNS, self.dialect)
        stored = {(bu, key): _Prior(h, code, resp) for bu, key, h, code, resp in values if (bu, key) in self.keys}
        taken = {(row[1], row[2]) for row in rows if row[0] == "r"} & self.refs
        return stored, taken


@dataclass(frozen=True, slots=True)
class _Prior:
    """A stored idempotency record."""

    request_hash: str
    status_code: int
    response: dict[str, Any] | None


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


def _inserts(
    accepted: Sequence[IntakeItem],
    dialect: Dialect,
    endpoints: Mapping[str, Sequence[tuple[str, str]]],
    *,
    keys: bool = True,
) -> list[Statement]:
    """What the accepted items write, table by table, parents first (nothing when none).

    The first event's webhook deliveries (``endpoints``: business unit id → its enabled endpoints) go in
    the same transaction as the instruction. A group's items (``keys=False``) have no idempotency record
    of their own: the group's record covers them.
    """
    if not accepted:
        return []
    key_rows = [
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
        if keys
    ]
    context = {i.instruction["id"]: (i.business_unit_id, i.instruction["reference"]) for i in accepted}
    deliveries = delivery_rows([i.event for i in accepted], context, endpoints, accepted[0].instruction["created_at"])
    return [
        insert_statement(instructions, [i.instruction for i in accepted], dialect),
        insert_statement(instruction_events, [i.event for i in accepted], dialect),
        insert_statement(outbox, [i.job for i in accepted], dialect),
        *([insert_statement(idempotency_keys, key_rows, dialect)] if key_rows else []),
        *([insert_statement(webhook_deliveries, deliveries, dialect)] if deliveries else []),
    ]


async def _taken_references(conn: AsyncConnection, business_unit_id: str, references: Sequence[str]) -> set[str]:
    """Which of ``references`` this business unit has used already (one statement per 30,000)."""
    dialect = conn.dialect
    taken: set[str] = set()
    unique = sorted(set(references))  # none: no statement
    for start in range(0, len(unique), 30_000):
        chunk = unique[start : start + 30_000]
        if dialect.paramstyle == "qmark":
            sql = (
                "SELECT reference FROM instructions WHERE business_unit_id = ? "
                f"AND reference IN ({placeholders(dialect, len(chunk))})"
            )
            params: tuple[Any, ...] = (business_unit_id, *chunk)
        else:
            sql = "SELECT reference FROM instructions WHERE business_unit_id = $1 AND reference = ANY($2::text[])"
            params = (business_unit_id, chunk)
        taken.update(row[0] for row in (await conn.exec_driver_sql(sql, params)).all())
    return taken


async def _prior_group(conn: AsyncConnection, group: IntakeGroup) -> _Prior | None:
    dialect = conn.dialect
    sql = (
        "SELECT request_hash, status_code, response FROM instruction_batches "
        f"WHERE business_unit_id = {placeholders(dialect, 1)} AND idempotency_key = {placeholders(dialect, 1, 2)}"
    )
    rows = (await conn.exec_driver_sql(sql, (group.business_unit_id, group.idempotency_key))).all()
    if not rows:
        return None
    values = result_values(rows, instruction_batches, ("request_hash", "status_code", "response"), dialect)
    return _Prior(*values[0])


async def _write_group(conn: AsyncConnection, group: IntakeGroup) -> GroupResult:
    """One group in ``conn``'s transaction: a replay, a conflict, a refusal (nothing written) or everything."""
    prior = await _prior_group(conn, group)
    if prior is not None:
        if prior.request_hash == group.request_hash:
            return GroupResult(IntakeOutcome.REPLAYED, prior.status_code, prior.response, [])
        return GroupResult(IntakeOutcome.KEY_CONFLICT, 409, None, [])
    taken = await _taken_references(conn, group.business_unit_id, [i.instruction["reference"] for i in group.items])
    results: list[IntakeResult] = []
    accepted: list[IntakeItem] = []
    for item in group.items:
        reference = item.instruction["reference"]
        if reference in taken:
            results.append(IntakeResult(IntakeOutcome.DUPLICATE_REFERENCE, 409))
            continue
        taken.add(reference)
        accepted.append(item)
        results.append(IntakeResult(IntakeOutcome.CREATED, 202, item.response))
    if group.all_or_nothing and len(accepted) < len(group.items):
        return GroupResult(IntakeOutcome.REFUSED, 422, None, results)
    status_code, response = group.answer(results)
    text = JSONText.of(response)
    record = {
        "id": group.id,
        "business_unit_id": group.business_unit_id,
        "idempotency_key": group.idempotency_key,
        "request_hash": group.request_hash,
        "status_code": status_code,
        "response": text,
        "count": len(accepted),
        "created_at": group.now,
    }
    dialect = conn.dialect
    await seal_events(conn, [i.event for i in accepted])
    endpoints = await enabled_endpoints(conn, {group.business_unit_id}) if accepted else {}
    extra = group.extra(results) if group.extra else []
    statements = [
        insert_statement(instruction_batches, [record], dialect),
        *_inserts(accepted, dialect, endpoints, keys=False),
        *(insert_statement(table, rows, dialect) for table, rows in extra if rows),
    ]
    await execute_all(conn, statements)
    return GroupResult(IntakeOutcome.CREATED, status_code, response, results, str(text))
