"""Queries and commands on the store (SQLAlchemy Core; portable SQLite/PostgreSQL)."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.errors import ConfigError, ConflictError, NotFoundError
from gateway.events import StatusChange
from gateway.ids import new_id
from gateway.status import Decision, Status, decide
from gateway.store.tables import (
    api_keys,
    business_units,
    instruction_events,
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
    }


@dataclass(frozen=True, slots=True)
class StatusRecord:
    """What ``record_status`` did: the decision, and the change to announce after commit."""

    decision: Decision
    previous: Status
    change: StatusChange | None


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
    """Append a status event and apply it if the state machine allows; race-free.

    Compare-and-set on ``event_count``: a concurrent writer makes the update
    miss, and we re-read and decide again. Ignored transitions are recorded too.
    """
    for _ in range(20):
        row = (
            await conn.execute(
                select(
                    instructions.c.status,
                    instructions.c.event_count,
                    instructions.c.business_unit_id,
                    instructions.c.adapter,
                    instructions.c.partner_reference,
                ).where(instructions.c.id == instruction_id)
            )
        ).first()
        if row is None:
            raise NotFoundError(f"instruction {instruction_id} not found")
        current = Status(row.status)
        decision = decide(current, requested)
        values: dict[str, Any] = {"event_count": row.event_count + 1, "updated_at": now}
        if decision.applied:
            values["status"] = requested.value
            if adapter is not None:
                values["adapter"] = adapter
        if partner_reference and not row.partner_reference:
            values["partner_reference"] = partner_reference
        result = await conn.execute(
            update(instructions)
            .where(instructions.c.id == instruction_id, instructions.c.event_count == row.event_count)
            .values(**values)
        )
        if result.rowcount != 1:
            continue
        await conn.execute(
            instruction_events.insert().values(
                **event_row(
                    instruction_id,
                    row.event_count + 1,
                    current,
                    requested,
                    decision,
                    source=source,
                    occurred_at=now,
                    adapter=adapter or row.adapter,
                    partner_reference=partner_reference or row.partner_reference,
                    partner_status=partner_status,
                    reason_code=reason_code,
                    reason=reason,
                )
            )
        )
        change = (
            StatusChange(
                instruction_id=instruction_id,
                business_unit_id=row.business_unit_id,
                previous=current,
                current=requested,
                source=source,
                occurred_at=now,
                reason_code=reason_code,
            )
            if decision.applied
            else None
        )
        return StatusRecord(decision, current, change)
    raise ConflictError(f"instruction {instruction_id} is changing too fast; retry")


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


async def finish_outbox(conn: AsyncConnection, job_id: int, owner: str) -> bool:
    """Delete a job this owner still holds; False if the lease was lost meanwhile."""
    result = await conn.execute(delete(outbox).where(outbox.c.id == job_id, outbox.c.lease_owner == owner))
    return result.rowcount == 1


async def retry_outbox(conn: AsyncConnection, job_id: int, owner: str, available_at: datetime, error: str) -> None:
    await conn.execute(
        update(outbox)
        .where(outbox.c.id == job_id, outbox.c.lease_owner == owner)
        .values(
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
