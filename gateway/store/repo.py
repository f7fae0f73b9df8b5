"""Queries and commands on the store (SQLAlchemy Core; portable SQLite/PostgreSQL)."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, bindparam, delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.errors import ConfigError, ConflictError, NotFoundError
from gateway.events import StatusChange
from gateway.ids import new_id
from gateway.ledger.journal import Move, record_events
from gateway.risk.credit import settle_exposure
from gateway.status import Decision, Status, decide
from gateway.store.tables import (
    api_keys,
    business_units,
    instructions,
    outbox,
)

__all__ = [
    "Principal",
    "StatusRecord",
    "claim_outbox",
    "create_api_key",
    "ensure_business_unit",
    "event_row",
    "hash_key",
    "lookup_principal",
    "record_status",
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


async def ensure_business_unit(conn: AsyncConnection, name: str, now: datetime) -> str:
    """Id of the business unit called ``name``, created if it does not exist."""
    found = await conn.scalar(select(business_units.c.id).where(business_units.c.name == name))
    if found:
        return str(found)
    bu_id = new_id("bu")
    await conn.execute(business_units.insert().values(id=bu_id, name=name, created_at=now))
    return bu_id


async def create_api_key(conn: AsyncConnection, business_unit: str, scopes: Sequence[str], now: datetime) -> str:
    """Create a key for ``business_unit`` (created if new); return the plaintext, shown once."""
    unknown = sorted(set(scopes) - SCOPES)
    if unknown:
        raise ConfigError(f"unknown scope {unknown[0]!r}; choose from {', '.join(sorted(SCOPES))}")
    if not business_unit.strip() or len(business_unit) > 100:
        raise ConfigError("business unit name must be 1-100 characters")
    bu_id = await ensure_business_unit(conn, business_unit, now)
    plaintext = KEY_PREFIX + secrets.token_urlsafe(32)
    await conn.execute(
        api_keys.insert().values(
            id=new_id("key"),
            business_unit_id=bu_id,
            key_hash=hash_key(plaintext),
            prefix=plaintext[:10],
            scopes=",".join(sorted(set(scopes))),
            created_at=now,
        )
    )
    return plaintext


async def lookup_principal(conn: AsyncConnection, key_hash: str) -> Principal | None:
    row = (
        await conn.execute(
            select(
                api_keys.c.id,
                api_keys.c.business_unit_id,
                api_keys.c.scopes,
                business_units.c.name,
                business_units.c.default_contract_version,
            )
            .join(business_units, business_units.c.id == api_keys.c.business_unit_id)
            .where(api_keys.c.key_hash == key_hash, api_keys.c.revoked_at.is_(None))
        )
    ).first()
    if row is None:
        return None
    return Principal(
        key_id=row.id,
        business_unit_id=row.business_unit_id,
        business_unit=row.name,
        scopes=frozenset(s for s in row.scopes.split(",") if s),
        default_contract_version=row.default_contract_version,
    )


def event_row(
    instruction_id: str,
    sequence: int,
    previous: Status | None,
    status: Status,
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
    result = await conn.execute(
        update(instructions)
        .where(instructions.c.id == bindparam("b_id"), instructions.c.event_count == bindparam("b_old"))
        .values(
            status=bindparam("b_status"),
            adapter=bindparam("b_adapter"),
            partner_reference=bindparam("b_pref"),
            event_count=bindparam("b_count"),
            updated_at=bindparam("b_now"),
        ),
        [
            {
                "b_id": i,
                "b_old": original_counts[i],
                "b_status": row["status"],
                "b_adapter": row["adapter"],
                "b_pref": row["partner_reference"],
                "b_count": row["event_count"],
                "b_now": now,
            }
            for i, row in state.items()
        ],
    )
    if conn.dialect.name == "sqlite" and result.rowcount != len(state):
        # Cannot happen with SQLite's single writer; refuse rather than write a gap.
        raise ConflictError("instructions changed during a status update; retry")
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


async def current_status(conn: AsyncConnection, instruction_id: str) -> Status | None:
    """The instruction's status now (``None`` if there is no such instruction)."""
    value = (
        await conn.execute(select(instructions.c.status).where(instructions.c.id == instruction_id))
    ).scalar_one_or_none()
    return Status(value) if value is not None else None


async def set_partner_reference(conn: AsyncConnection, instruction_id: str, partner_reference: str) -> None:
    await conn.execute(
        update(instructions)
        .where(instructions.c.id == instruction_id, instructions.c.partner_reference.is_(None))
        .values(partner_reference=partner_reference)
    )


async def find_by_partner(
    conn: AsyncConnection, adapter: str, instruction_id: str | None, partner_reference: str | None
) -> str | None:
    """The id of the instruction a partner update is about, only if it went to that adapter."""
    conds = []
    if instruction_id:
        conds.append(instructions.c.id == instruction_id)
    if partner_reference:
        conds.append(instructions.c.partner_reference == partner_reference)
    if not conds:
        return None
    found = await conn.scalar(select(instructions.c.id).where(instructions.c.adapter == adapter, or_(*conds)).limit(1))
    return str(found) if found else None


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
