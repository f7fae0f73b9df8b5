"""Queries and commands on the store (SQLAlchemy Core; portable SQLite/PostgreSQL)."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from functools import lru_cache
from typing import Any

from sqlalchemy import Select, and_, delete, func, or_, select, update
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.domain.events import StatusChange
from gateway.domain.ids import new_id
from gateway.domain.status import Decision, Status, decide
from gateway.errors import ConfigError, ConflictError, NotFoundError
from gateway.store.bulk import bind_converter, placeholders
from gateway.store.exposure import settle_exposure
from gateway.store.journal import Move, record_events
from gateway.store.tables import (
    api_keys,
    business_units,
    instructions,
    outbox,
)
from gateway.store.webhooks import insert_deliveries

__all__ = [
    "ApiKeyInfo",
    "Principal",
    "StatusRecord",
    "claim_outbox",
    "create_api_key",
    "ensure_business_unit",
    "event_row",
    "get_api_key",
    "hash_key",
    "issue_api_key",
    "list_api_keys",
    "lookup_principal",
    "record_status",
    "revoke_api_key",
    "rotate_api_key",
]

KEY_PREFIX = "pgw_"
SCOPES = frozenset({"instructions", "finance", "admin"})


def hash_key(plaintext: str) -> str:
    """API keys are 256-bit random tokens, so one SHA-256 is a sufficient hash."""
    return hashlib.sha256(plaintext.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the API key's business unit and scopes."""

    key_id: str
    business_unit_id: str
    business_unit: str
    scopes: frozenset[str]
    default_contract_version: str | None = None
    #: when the key stops working (set while a rotated key is in its grace period)
    valid_until: datetime | None = None


async def ensure_business_unit(conn: AsyncConnection, name: str, now: datetime) -> str:
    """Id of the business unit called ``name``, created if it does not exist."""
    found = await conn.scalar(select(business_units.c.id).where(business_units.c.name == name))
    if found:
        return str(found)
    bu_id = new_id("bu")
    await conn.execute(business_units.insert().values(id=bu_id, name=name, created_at=now))
    return bu_id


async def issue_api_key(
    conn: AsyncConnection, business_unit: str, scopes: Sequence[str], now: datetime
) -> tuple[str, str]:
    """Create a key for ``business_unit`` (created if new); return its id and the plaintext, shown once."""
    unknown = sorted(set(scopes) - SCOPES)
    if unknown:
        raise ConfigError(f"unknown scope {unknown[0]!r}; choose from {', '.join(sorted(SCOPES))}")
    if not scopes:
        raise ConfigError(f"an API key needs at least one scope; choose from {', '.join(sorted(SCOPES))}")
    if not business_unit.strip() or len(business_unit) > 100:
        raise ConfigError("business unit name must be 1-100 characters")
    bu_id = await ensure_business_unit(conn, business_unit, now)
    plaintext = KEY_PREFIX + secrets.token_urlsafe(32)
    key_id = new_id("key")
    await conn.execute(
        api_keys.insert().values(
            id=key_id,
            business_unit_id=bu_id,
            key_hash=hash_key(plaintext),
            prefix=plaintext[:10],
            scopes=",".join(sorted(set(scopes))),
            created_at=now,
        )
    )
    return key_id, plaintext


async def create_api_key(conn: AsyncConnection, business_unit: str, scopes: Sequence[str], now: datetime) -> str:
    """Create a key for ``business_unit`` (created if new); return the plaintext, shown once."""
    return (await issue_api_key(conn, business_unit, scopes, now))[1]


#: ``last_used_at`` is written at most this often per key, so authentication stays a read
LAST_USED_RESOLUTION = timedelta(seconds=60)
#: the longest a rotated key may keep working beside its successor
MAX_ROTATION_GRACE = timedelta(days=7)


async def lookup_principal(conn: AsyncConnection, key_hash: str, now: datetime) -> Principal | None:
    """The principal of a key that is valid at ``now``; notes when it was used (to the minute).

    Caller commits: on a key not used for ``LAST_USED_RESOLUTION`` this writes ``last_used_at``.
    """
    row = (
        await conn.execute(
            select(
                api_keys.c.id,
                api_keys.c.business_unit_id,
                api_keys.c.scopes,
                api_keys.c.revoked_at,
                api_keys.c.last_used_at,
                business_units.c.name,
                business_units.c.default_contract_version,
            )
            .join(business_units, business_units.c.id == api_keys.c.business_unit_id)
            .where(api_keys.c.key_hash == key_hash, or_(api_keys.c.revoked_at.is_(None), api_keys.c.revoked_at > now))
        )
    ).first()
    if row is None:
        return None
    if row.last_used_at is None or now - row.last_used_at >= LAST_USED_RESOLUTION:
        await conn.execute(update(api_keys).where(api_keys.c.id == row.id).values(last_used_at=now))
    return Principal(
        key_id=row.id,
        business_unit_id=row.business_unit_id,
        business_unit=row.name,
        scopes=frozenset(s for s in row.scopes.split(",") if s),
        default_contract_version=row.default_contract_version,
        valid_until=row.revoked_at,
    )


@dataclass(frozen=True, slots=True)
class ApiKeyInfo:
    """What an operator may see of an API key: never its secret or hash."""

    id: str
    business_unit: str
    scopes: tuple[str, ...]
    #: the first characters of the key, to tell keys apart (``pgw_`` + 6)
    prefix: str
    created_at: datetime
    last_used_at: datetime | None
    #: when it stopped (or, after a rotation with grace, will stop) working
    revoked_at: datetime | None

    def active(self, now: datetime) -> bool:
        return self.revoked_at is None or self.revoked_at > now

    def as_dict(self, now: datetime) -> dict[str, Any]:
        def iso(value: datetime | None) -> str | None:
            return value.isoformat() if value else None

        return {
            "id": self.id,
            "business_unit": self.business_unit,
            "scopes": list(self.scopes),
            "prefix": self.prefix,
            "created_at": self.created_at.isoformat(),
            "last_used_at": iso(self.last_used_at),
            "revoked_at": iso(self.revoked_at),
            "active": self.active(now),
        }


KEY_STATES = ("active", "revoked", "all")


def _key_query() -> Select[Any]:
    return select(
        api_keys.c.id,
        api_keys.c.scopes,
        api_keys.c.prefix,
        api_keys.c.created_at,
        api_keys.c.last_used_at,
        api_keys.c.revoked_at,
        business_units.c.name.label("business_unit"),
    ).join(business_units, business_units.c.id == api_keys.c.business_unit_id)


def _key_info(row: Any) -> ApiKeyInfo:
    return ApiKeyInfo(
        id=row.id,
        business_unit=row.business_unit,
        scopes=tuple(s for s in row.scopes.split(",") if s),
        prefix=row.prefix,
        created_at=row.created_at,
        last_used_at=row.last_used_at,
        revoked_at=row.revoked_at,
    )


async def list_api_keys(
    conn: AsyncConnection,
    now: datetime,
    *,
    business_unit: str | None = None,
    state: str = "all",
    before: str | None = None,
    limit: int | None = None,
) -> list[ApiKeyInfo]:
    """API keys, newest first: ``state`` active, revoked or all; ``before`` a key id (paging)."""
    if state not in KEY_STATES:
        raise ConfigError(f"state must be one of {', '.join(KEY_STATES)}")
    query = _key_query()
    if business_unit is not None:
        query = query.where(business_units.c.name == business_unit)
    if state == "active":
        query = query.where(or_(api_keys.c.revoked_at.is_(None), api_keys.c.revoked_at > now))
    elif state == "revoked":
        query = query.where(api_keys.c.revoked_at <= now)
    if before is not None:
        query = query.where(api_keys.c.id < before)
    query = query.order_by(api_keys.c.id.desc())
    if limit is not None:
        query = query.limit(limit)
    return [_key_info(row) for row in await conn.execute(query)]


async def get_api_key(conn: AsyncConnection, key_id: str) -> ApiKeyInfo:
    """One key's information; ``NotFoundError`` if there is no such key."""
    row = (await conn.execute(_key_query().where(api_keys.c.id == key_id))).first()
    if row is None:
        raise NotFoundError(f"no API key {key_id!r}")
    return _key_info(row)


async def revoke_api_key(conn: AsyncConnection, key_id: str, now: datetime) -> ApiKeyInfo:
    """Stop a key working from ``now`` on (a key already revoked keeps its time); returns it after."""
    await get_api_key(conn, key_id)
    await conn.execute(
        update(api_keys)
        .where(api_keys.c.id == key_id, or_(api_keys.c.revoked_at.is_(None), api_keys.c.revoked_at > now))
        .values(revoked_at=now)
    )
    return await get_api_key(conn, key_id)


async def rotate_api_key(
    conn: AsyncConnection, key_id: str, now: datetime, grace: timedelta = timedelta(0)
) -> tuple[str, ApiKeyInfo]:
    """A new key for the same business unit and scopes; the old one stops working after ``grace``.

    Returns the new key's plaintext (shown once) and information. Only an active key
    that is not already on its way out can be rotated (``ConflictError`` otherwise).
    """
    if not timedelta(0) <= grace <= MAX_ROTATION_GRACE:
        raise ConfigError(f"the grace period must be from 0 to {MAX_ROTATION_GRACE.days} days")
    old = await get_api_key(conn, key_id)
    if old.revoked_at is not None:
        when = "was" if old.revoked_at <= now else "is to be"
        raise ConflictError(
            f"API key {key_id} {when} revoked at {old.revoked_at:%Y-%m-%d %H:%M:%S} UTC; create a new key instead"
        )
    result = await conn.execute(
        update(api_keys).where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None)).values(revoked_at=now + grace)
    )
    if result.rowcount != 1:  # revoked by someone else meanwhile
        raise ConflictError(f"API key {key_id} was revoked meanwhile; create a new key instead")
    new_id_, plaintext = await issue_api_key(conn, old.business_unit, old.scopes, now)
    return plaintext, await get_api_key(conn, new_id_)


def event_row(
    instruction_id: str,
    sequence: int,
    previous: StrEnum | None,
    status: StrEnum,
    decision: Decision,
    *,
    source: str,
    occurred_at: datetime,
    adapter: str | None = None,
    partner_reference: str | None = None,
    partner_status: str | None = None,
    reason_code: str | None = None,
    reason: str | None = None,
    actor: str | None = None,
) -> dict[str, Any]:
    return {
        "instruction_id": instruction_id,
        "sequence": sequence,
        "previous_status": previous.value if previous else None,
        "status": status.value,
        "applied": decision.applied,
        "outcome": decision.reason,
        "source": source,
        "adapter": adapter,
        "partner_reference": partner_reference,
        "partner_status": partner_status,
        "reason_code": reason_code,
        "reason": (reason or None) and reason[:500],
        "occurred_at": occurred_at,
        "actor": actor,
    }


@dataclass(frozen=True, slots=True)
class StatusRecord:
    """What ``record_status`` did: the decision, and the change to announce after commit."""

    decision: Decision
    previous: Status
    change: StatusChange | None


@dataclass(frozen=True, slots=True)
class Transition:
    """A requested status change for one instruction, with what the event should say."""

    instruction_id: str
    status: Status
    source: str
    adapter: str | None = None
    partner_reference: str | None = None
    partner_status: str | None = None
    reason_code: str | None = None
    reason: str | None = None
    #: who decided, for human decisions (an API key id)
    actor: str | None = None


@lru_cache(maxsize=4)
def _cas_update_sql(dialect: Dialect) -> str:
    """``record_transitions``' compare-and-set of an instruction's status on its event count, driver-level."""
    mark = [placeholders(dialect, 1, n) for n in range(1, 8)]
    return (
        f"UPDATE instructions SET status = {mark[0]}, adapter = {mark[1]}, partner_reference = {mark[2]}, "
        f"event_count = {mark[3]}, updated_at = {mark[4]} WHERE id = {mark[5]} AND event_count = {mark[6]}"
    )


async def record_transitions(
    conn: AsyncConnection, transitions: Sequence[Transition], now: datetime
) -> list[StatusRecord]:
    """Append one event per transition and apply those the state machine allows; set-based.

    One locking read (``FOR UPDATE`` on PostgreSQL, in id order so batches never
    deadlock; SQLite has a single writer), one ``executemany`` update, one
    ``executemany`` insert — whatever the batch size. Several transitions of one
    instruction apply in order. Ignored transitions are recorded too. Raises
    ``NotFoundError`` if an instruction does not exist.
    """
    if not transitions:
        return []
    ids = sorted({t.instruction_id for t in transitions})
    query = (
        select(
            instructions.c.id,
            instructions.c.status,
            instructions.c.event_count,
            instructions.c.business_unit_id,
            instructions.c.adapter,
            instructions.c.partner_reference,
            instructions.c.amount_minor,
            instructions.c.currency,
            instructions.c.reference,
            select(business_units.c.name)
            .where(business_units.c.id == instructions.c.business_unit_id)
            .scalar_subquery()
            .label("business_unit"),
        )
        .where(instructions.c.id.in_(ids))
        .order_by(instructions.c.id)
    )
    if conn.dialect.name == "postgresql":
        query = query.with_for_update()
    state: dict[str, dict[str, Any]] = {r.id: dict(r._mapping) for r in await conn.execute(query)}
    missing = [i for i in ids if i not in state]
    if missing:
        raise NotFoundError(f"instruction {missing[0]} not found")
    original_counts = {i: row["event_count"] for i, row in state.items()}
    events: list[dict[str, Any]] = []
    records: list[StatusRecord] = []
    moves: list[Move] = []  # what the ledger posts, in this transaction
    for t in transitions:
        row = state[t.instruction_id]
        current = Status(row["status"])
        decision = decide(current, t.status)
        row["event_count"] += 1
        if decision.applied:
            previous_adapter = row["adapter"]
            row["status"] = t.status.value
            if t.adapter is not None:
                row["adapter"] = t.adapter
            moves.append(
                Move(
                    t.instruction_id,
                    row["business_unit"],
                    row["currency"],
                    row["amount_minor"],
                    current,
                    previous_adapter,
                    t.status,
                    row["adapter"],
                )
            )
        if t.partner_reference and not row["partner_reference"]:
            row["partner_reference"] = t.partner_reference
        events.append(
            event_row(
                t.instruction_id,
                row["event_count"],
                current,
                t.status,
                decision,
                source=t.source,
                occurred_at=now,
                adapter=t.adapter or row["adapter"],
                partner_reference=t.partner_reference or row["partner_reference"],
                partner_status=t.partner_status,
                reason_code=t.reason_code,
                reason=t.reason,
                actor=t.actor,
            )
        )
        change = (
            StatusChange(
                instruction_id=t.instruction_id,
                business_unit_id=row["business_unit_id"],
                previous=current,
                current=t.status,
                source=t.source,
                occurred_at=now,
                reason_code=t.reason_code,
            )
            if decision.applied
            else None
        )
        records.append(StatusRecord(decision, current, change))
    # driver-level, as tuples: Core's per-row parameter processing was most of this function's time
    dialect = conn.dialect
    stamp = bind_converter(instructions.c.updated_at, dialect)(now)
    result = await conn.exec_driver_sql(
        _cas_update_sql(dialect),
        [
            (row["status"], row["adapter"], row["partner_reference"], row["event_count"], stamp, i, original_counts[i])
            for i, row in state.items()
        ],
    )
    if conn.dialect.name == "sqlite" and result.rowcount != len(state):
        # Cannot happen with SQLite's single writer; refuse rather than write a gap.
        raise ConflictError("instructions changed during a status update; retry")
    # the status webhooks of the applied changes: their outbox rows commit (or roll back) with them
    await insert_deliveries(
        conn, events, {i: (row["business_unit_id"], row["reference"]) for i, row in state.items()}, now
    )
    applied = [(t.instruction_id, t.status) for t, r in zip(transitions, records, strict=True) if r.decision.applied]
    await settle_exposure(conn, applied, now)
    # last: the audit chain heads are shared by every writer, so they are locked after the rows
    # this transaction locks anyway (instructions, credit limits) and held only until the commit
    await record_events(conn, events, moves, now)  # linked into the audit chain, with their ledger entries
    return records


async def record_status(
    conn: AsyncConnection,
    instruction_id: str,
    requested: Status,
    *,
    source: str,
    now: datetime,
    adapter: str | None = None,
    partner_reference: str | None = None,
    partner_status: str | None = None,
    reason_code: str | None = None,
    reason: str | None = None,
) -> StatusRecord:
    """Append a status event and apply it if the state machine allows (one instruction)."""
    (record,) = await record_transitions(
        conn,
        [
            Transition(
                instruction_id,
                requested,
                source,
                adapter=adapter,
                partner_reference=partner_reference,
                partner_status=partner_status,
                reason_code=reason_code,
                reason=reason,
            )
        ],
        now,
    )
    return record


async def set_partner_reference(conn: AsyncConnection, instruction_id: str, partner_reference: str) -> None:
    await conn.execute(
        update(instructions)
        .where(instructions.c.id == instruction_id, instructions.c.partner_reference.is_(None))
        .values(partner_reference=partner_reference)
    )


async def set_partner_references(conn: AsyncConnection, references: Mapping[str, str]) -> None:
    """``set_partner_reference`` for many instructions (id -> reference) in one ``executemany``."""
    if not references:
        return
    dialect = conn.dialect
    await conn.exec_driver_sql(
        f"UPDATE instructions SET partner_reference = {placeholders(dialect, 1)} "
        f"WHERE id = {placeholders(dialect, 1, 2)} AND partner_reference IS NULL",
        [(ref, i) for i, ref in references.items()],
    )


async def find_many_by_partner(
    conn: AsyncConnection, instruction_ids: set[str], partner_references: set[str]
) -> tuple[dict[str, tuple[str, str, str]], dict[str, list[tuple[str, str, str]]]]:
    """(id, adapter, status) of the instructions partner reports name, by id and (lists) by partner reference;
    the caller keeps only those routed to the reporting adapter, by id first."""
    columns = (instructions.c.id, instructions.c.adapter, instructions.c.status, instructions.c.partner_reference)
    by_id: dict[str, tuple[str, str, str]] = {}
    by_ref: dict[str, list[tuple[str, str, str]]] = {}
    for column, keys in ((instructions.c.id, instruction_ids), (instructions.c.partner_reference, partner_references)):
        if not keys:
            continue
        for row in await conn.execute(select(*columns).where(column.in_(sorted(keys)))):
            found = (str(row.id), str(row.adapter), str(row.status))
            if column is instructions.c.id:
                by_id[found[0]] = found
            else:
                by_ref.setdefault(str(row.partner_reference), []).append(found)
    return by_id, by_ref


# -- outbox ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OutboxJob:
    id: int
    instruction_id: str
    kind: str
    attempts: int


async def claim_outbox(
    conn: AsyncConnection, owner: str, now: datetime, lease_until: datetime, limit: int
) -> list[OutboxJob]:
    """Lease up to ``limit`` due jobs to ``owner`` (SKIP LOCKED on PostgreSQL)."""
    due = (
        select(outbox.c.id)
        .where(
            outbox.c.available_at <= now,
            or_(outbox.c.lease_until.is_(None), outbox.c.lease_until < now),
        )
        .order_by(outbox.c.available_at, outbox.c.id)
        .limit(limit)
    )
    if conn.dialect.name == "postgresql":
        due = due.with_for_update(skip_locked=True)
    result = await conn.execute(
        update(outbox)
        .where(outbox.c.id.in_(due.scalar_subquery()))
        .values(lease_owner=owner, lease_until=lease_until)
        .returning(outbox.c.id, outbox.c.instruction_id, outbox.c.kind, outbox.c.attempts)
    )
    return [OutboxJob(r.id, r.instruction_id, r.kind, r.attempts) for r in result]


async def finish_outbox_many(conn: AsyncConnection, job_ids: Sequence[int], owner: str) -> int:
    """Delete the jobs this owner still holds; returns how many it did."""
    if not job_ids:
        return 0
    result = await conn.execute(delete(outbox).where(outbox.c.id.in_(list(job_ids)), outbox.c.lease_owner == owner))
    return int(result.rowcount)


async def retry_outbox(
    conn: AsyncConnection,
    job_id: int,
    owner: str,
    available_at: datetime,
    error: str,
    *,
    kind: str = "dispatch",
) -> None:
    """Release a job to run again at ``available_at``; ``kind="resolve"`` asks the partner first."""
    await conn.execute(
        update(outbox)
        .where(outbox.c.id == job_id, outbox.c.lease_owner == owner)
        .values(
            kind=kind,
            attempts=outbox.c.attempts + 1,
            available_at=available_at,
            lease_owner=None,
            lease_until=None,
            last_error=error[:500],
        )
    )


async def outbox_depth(conn: AsyncConnection) -> int:
    return int(await conn.scalar(select(func.count()).select_from(outbox)) or 0)


async def due_for_poll(conn: AsyncConnection, older_than: datetime, limit: int) -> list[str]:
    """Instructions submitted to a partner with no final status since ``older_than``."""
    rows = await conn.execute(
        select(instructions.c.id)
        .where(
            and_(
                instructions.c.status.in_([Status.SUBMITTED.value, Status.ROUTED.value]),
                instructions.c.adapter.is_not(None),
                instructions.c.updated_at < older_than,
            )
        )
        .order_by(instructions.c.updated_at)
        .limit(limit)
    )
    return [r.id for r in rows]
