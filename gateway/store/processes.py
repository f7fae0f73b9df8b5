"""Process heartbeats: a dead process's claims are taken over in seconds, not when its leases end.

Every gateway process registers itself in ``processes`` (its id is the
``lease_owner`` its claims carry) and beats every ``dispatch.heartbeat_seconds``.
Each beat also looks for the dead: a registered process with no heartbeat for
``dispatch.dead_after_seconds``, or, on this host, one whose pid no longer exists
(a kill -9 and restart is noticed at once). Their claims in every leased table
(``LEASED_TABLES``: outbox jobs, collection jobs, webhook deliveries, scheduled jobs' leases) are
released so any live claimer resumes them, and their rows are removed. A beat
also shares the partners' circuit breakers (``share_circuits``), so the
processes agree on a partner's health within a beat.

A claim whose owner is not registered (a tool or test naming its own owner) is
never released here; it waits for its lease as before. A live process's claim
is never released: its heartbeat is fresh and its pid exists.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta

from sqlalchemy import Table, delete, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from gateway.domain.clock import Clock
from gateway.store.tables import circuit_states, collection_outbox, job_leases, outbox, processes, webhook_deliveries

__all__ = [
    "LEASED_TABLES",
    "Heartbeat",
    "beat",
    "dead_processes",
    "pid_exists",
    "register_process",
    "release_claims",
    "share_circuits",
    "take_job_lease",
    "unregister_process",
]

log = logging.getLogger(__name__)

#: tables whose rows are claimed with ``lease_owner``/``lease_until``; a dead owner's claims are released in each.
#: A new claimed queue (e.g. another outbox) is taken over by adding its table here.
LEASED_TABLES: tuple[Table, ...] = (outbox, collection_outbox, webhook_deliveries, job_leases)


def pid_exists(pid: int) -> bool:
    """Whether a process ``pid`` runs on this machine (someone else's included)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        return True
    return True


async def register_process(conn: AsyncConnection, process_id: str, now: datetime) -> None:
    """Record ``process_id`` (this process) as alive."""
    await conn.execute(delete(processes).where(processes.c.id == process_id))
    await conn.execute(
        processes.insert().values(
            id=process_id, host=os.uname().nodename, pid=os.getpid(), started_at=now, heartbeat_at=now
        )
    )


async def beat(conn: AsyncConnection, process_id: str, now: datetime) -> None:
    """Refresh this process's heartbeat (registering it again if a peer took it for dead)."""
    result = await conn.execute(update(processes).where(processes.c.id == process_id).values(heartbeat_at=now))
    if result.rowcount == 0:
        await register_process(conn, process_id, now)


async def unregister_process(conn: AsyncConnection, process_id: str) -> None:
    await conn.execute(delete(processes).where(processes.c.id == process_id))


async def dead_processes(conn: AsyncConnection, process_id: str, dead_before: datetime) -> list[str]:
    """Registered processes other than ``process_id`` that are dead: silent since ``dead_before``, or gone here."""
    host = os.uname().nodename
    rows = await conn.execute(
        select(processes.c.id, processes.c.host, processes.c.pid, processes.c.heartbeat_at).where(
            processes.c.id != process_id
        )
    )
    return [r.id for r in rows if _dead(r.host, r.pid, r.heartbeat_at, host, dead_before)]


def _dead(host: str, pid: int, heartbeat_at: datetime, here: str, dead_before: datetime) -> bool:
    if host == here:
        if pid == os.getpid():  # another runtime in this very process: alive as long as we are
            return False
        if not pid_exists(pid):
            return True
    return heartbeat_at < dead_before


async def release_claims(
    conn: AsyncConnection, owners: Sequence[str], tables: Sequence[Table] = LEASED_TABLES
) -> dict[str, int]:
    """Release every claim ``owners`` hold in ``tables`` (the rows become claimable now); counts per table."""
    released: dict[str, int] = {}
    if not owners:
        return released
    for table in tables:
        result = await conn.execute(
            update(table).where(table.c.lease_owner.in_(list(owners))).values(lease_owner=None, lease_until=None)
        )
        released[table.name] = int(result.rowcount)
    return released


async def take_job_lease(conn: AsyncConnection, name: str, owner: str, now: datetime, until: datetime) -> bool:
    """Whether ``owner`` may run the scheduled job ``name`` now: it holds (or just took) the job's lease.

    With several processes each job then runs once per interval, by one of them; the
    holder renews its lease on every run, and another takes over once it expires (or
    at once when the holder is found dead, ``job_leases`` being one of ``LEASED_TABLES``).
    """
    result = await conn.execute(
        update(job_leases)
        .where(
            job_leases.c.name == name,
            or_(job_leases.c.lease_owner == owner, job_leases.c.lease_until.is_(None), job_leases.c.lease_until < now),
        )
        .values(lease_owner=owner, lease_until=until)
    )
    if result.rowcount:
        return True
    insert = (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(job_leases)
    created = await conn.execute(
        insert.values(name=name, lease_owner=owner, lease_until=until).on_conflict_do_nothing(index_elements=["name"])
    )
    return bool(created.rowcount)


#: partner -> (opened at, changed at) in wall-clock seconds; see ``gateway.dispatch.routing.CircuitBreaker.share``
Circuits = Mapping[str, tuple[float | None, float]]


async def share_circuits(conn: AsyncConnection, exchange: Callable[[Circuits], Circuits]) -> None:
    """Hand the stored circuit states to ``exchange``; store what it returns as newer."""

    def seconds(value: datetime | None) -> float | None:
        return None if value is None else value.timestamp()

    def instant(value: float | None) -> datetime | None:
        return None if value is None else datetime.fromtimestamp(value, UTC)

    rows = await conn.execute(select(circuit_states))
    shared = {r.partner: (seconds(r.opened_at), r.changed_at.timestamp()) for r in rows}
    for partner, (opened, changed) in exchange(shared).items():
        values = {"opened_at": instant(opened), "changed_at": instant(changed)}
        if partner in shared:
            await conn.execute(update(circuit_states).where(circuit_states.c.partner == partner).values(**values))
        else:
            await conn.execute(circuit_states.insert().values(partner=partner, **values))


class Heartbeat:
    """Keeps this process registered and takes over the claims of dead ones."""

    def __init__(
        self,
        engine: AsyncEngine,
        clock: Clock,
        process_id: str,
        *,
        interval: float,
        dead_after: float,
        tables: Sequence[Table] = LEASED_TABLES,
        on_beat: Callable[[AsyncConnection], Awaitable[None]] | None = None,
    ) -> None:
        self.engine = engine
        self.clock = clock
        self.process_id = process_id
        self.interval = interval
        self.dead_after = dead_after
        self.tables = tuple(tables)
        #: also done on every beat, in its transaction (the runtime shares the circuit breakers here)
        self.on_beat = on_beat
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Register, take over the dead's claims at once, then beat every ``interval`` seconds."""
        async with self.engine.begin() as conn:
            await register_process(conn, self.process_id, self.clock())
        await self.reap()
        self._task = asyncio.create_task(self._loop(), name="heartbeat")

    async def stop(self) -> None:
        """Stop beating, release whatever this process still holds (its workers have stopped), unregister."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        with contextlib.suppress(Exception):
            async with self.engine.begin() as conn:
                await release_claims(conn, [self.process_id], self.tables)
                await unregister_process(conn, self.process_id)

    async def reap(self) -> dict[str, int]:
        """One round: find dead processes, release their claims, forget them; returns the released counts."""
        now = self.clock()
        async with self.engine.begin() as conn:
            dead = await dead_processes(conn, self.process_id, now - timedelta(seconds=self.dead_after))
            if not dead:
                return {}
            released = await release_claims(conn, dead, self.tables)
            await conn.execute(delete(processes).where(processes.c.id.in_(dead)))
        log.warning(
            "took over the claims of %d dead process(es): %s",
            len(dead),
            ", ".join(f"{n} {t}" for t, n in released.items()),
            extra={"dead_processes": dead},
        )
        return released

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                async with self.engine.begin() as conn:
                    await beat(conn, self.process_id, self.clock())
                    if self.on_beat is not None:
                        await self.on_beat(conn)
                await self.reap()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("heartbeat failed; retrying")
