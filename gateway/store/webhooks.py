"""Status webhooks in the store: endpoints per business unit and the deliveries outbox.

Every applied status change of an instruction whose business unit has an enabled
endpoint listening for that status gets one ``webhook_deliveries`` row per such
endpoint, inserted in the transaction that records the change (``record_transitions``
and intake call :func:`delivery_rows`): a committed change always has its
deliveries, a rolled-back one never does. The row keeps the ``status-event``
document it sends, so every attempt and every redelivery sends the same bytes
with the same event id. The delivery worker (``gateway.webhooks``) claims due
rows under a lease, like the dispatcher claims outbox jobs.

Signing secrets are stored encrypted (AES-GCM, ``gateway.store.encryption``) and
shown once, when created or rotated.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, delete, exists, func, insert, or_, select, update
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.domain.ids import new_id
from gateway.domain.status import Status
from gateway.errors import ConfigError, ConflictError, NotFoundError
from gateway.store.bulk import placeholders
from gateway.store.codec import event_view
from gateway.store.encryption import FieldCipher
from gateway.store.tables import business_units, webhook_deliveries, webhook_endpoints

__all__ = [
    "ALL_EVENTS",
    "DELIVERY_STATES",
    "MAX_SECRET_OVERLAP",
    "ClaimedDelivery",
    "Delivery",
    "Endpoint",
    "claim_deliveries",
    "create_endpoint",
    "delete_endpoint",
    "delivery_rows",
    "enabled_endpoints",
    "enabled_endpoints_in_thread",
    "event_id",
    "get_delivery",
    "get_endpoint",
    "insert_deliveries",
    "list_deliveries",
    "list_endpoints",
    "new_delivery_row",
    "record_attempt_failure",
    "record_delivered",
    "redeliver",
    "rotate_secret",
    "update_endpoint",
]

#: an endpoint's event filter that takes every status
ALL_EVENTS = "*"
DELIVERY_STATES = ("pending", "delivered", "failed")
#: the longest the previous secret may keep signing after a rotation
MAX_SECRET_OVERLAP = timedelta(days=7)
SECRET_PREFIX = "whsec_"


def event_id(instruction_id: str, sequence: int) -> str:
    """The id of an instruction's ``sequence``-th event: the same in every delivery of it (de-duplication)."""
    return f"evt_{instruction_id.removeprefix('ins_')}_{sequence}"


def _secret_context(endpoint_id: str, column: str) -> str:
    # AAD binds a ciphertext to its endpoint and column: copied elsewhere, it won't decrypt
    return f"webhook_endpoints:{endpoint_id}:{column}"


def _events_text(events: Sequence[str]) -> str:
    if not events:
        raise ConfigError("an endpoint needs at least one event (a status, or * for every status)")
    if ALL_EVENTS in events:
        return ALL_EVENTS
    known = {s.value for s in Status}
    unknown = sorted(set(events) - known)
    if unknown:
        raise ConfigError(f"unknown event {unknown[0]!r}; choose statuses ({', '.join(s.value for s in Status)}) or *")
    return ",".join(s.value for s in Status if s.value in set(events))


def _listens(events: str, status: str) -> bool:
    return events == ALL_EVENTS or status in events.split(",")


@dataclass(frozen=True, slots=True)
class Endpoint:
    """What a business unit may see of an endpoint: never its secrets."""

    id: str
    business_unit: str
    url: str
    events: tuple[str, ...]
    enabled: bool
    disabled_reason: str | None
    consecutive_failures: int
    previous_secret_until: datetime | None
    created_at: datetime
    updated_at: datetime

    def as_dict(self, now: datetime) -> dict[str, Any]:
        overlap = (
            self.previous_secret_until if self.previous_secret_until and self.previous_secret_until > now else None
        )
        return {
            "id": self.id,
            "business_unit": self.business_unit,
            "url": self.url,
            "events": list(self.events),
            "enabled": self.enabled,
            "disabled_reason": self.disabled_reason,
            "consecutive_failures": self.consecutive_failures,
            "previous_secret_valid_until": overlap.isoformat() if overlap else None,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
        }


def _endpoint_query() -> Any:
    return select(
        webhook_endpoints.c.id,
        webhook_endpoints.c.url,
        webhook_endpoints.c.events,
        webhook_endpoints.c.enabled,
        webhook_endpoints.c.disabled_reason,
        webhook_endpoints.c.consecutive_failures,
        webhook_endpoints.c.previous_secret_until,
        webhook_endpoints.c.created_at,
        webhook_endpoints.c.updated_at,
        business_units.c.name.label("business_unit"),
    ).join(business_units, business_units.c.id == webhook_endpoints.c.business_unit_id)


def _endpoint(row: Any) -> Endpoint:
    return Endpoint(
        id=row.id,
        business_unit=row.business_unit,
        url=row.url,
        events=tuple(row.events.split(",")),
        enabled=bool(row.enabled),
        disabled_reason=row.disabled_reason,
        consecutive_failures=row.consecutive_failures,
        previous_secret_until=row.previous_secret_until,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


async def create_endpoint(
    conn: AsyncConnection,
    cipher: FieldCipher,
    business_unit_id: str,
    url: str,
    events: Sequence[str],
    now: datetime,
    *,
    enabled: bool = True,
) -> tuple[Endpoint, str]:
    """A new endpoint (check ``url`` first: ``gateway.webhooks.urls``); returns it and its secret, shown once."""
    endpoint_id = new_id("whe")
    secret = _new_secret()
    await conn.execute(
        insert(webhook_endpoints).values(
            id=endpoint_id,
            business_unit_id=business_unit_id,
            url=url,
            events=_events_text(events),
            enabled=enabled,
            secret=cipher.encrypt(secret, _secret_context(endpoint_id, "secret")),
            consecutive_failures=0,
            created_at=now,
            updated_at=now,
        )
    )
    return await get_endpoint(conn, endpoint_id, business_unit_id), secret


async def list_endpoints(
    conn: AsyncConnection,
    *,
    business_unit_id: str | None = None,
    business_unit: str | None = None,
    before: str | None = None,
    limit: int | None = None,
) -> list[Endpoint]:
    """Endpoints, newest first, of one business unit (by id or name) or of all."""
    query = _endpoint_query()
    if business_unit_id is not None:
        query = query.where(webhook_endpoints.c.business_unit_id == business_unit_id)
    if business_unit is not None:
        query = query.where(business_units.c.name == business_unit)
    if before is not None:
        query = query.where(webhook_endpoints.c.id < before)
    query = query.order_by(webhook_endpoints.c.id.desc())
    if limit is not None:
        query = query.limit(limit)
    return [_endpoint(row) for row in await conn.execute(query)]


async def get_endpoint(conn: AsyncConnection, endpoint_id: str, business_unit_id: str | None = None) -> Endpoint:
    """One endpoint (of that business unit, if given); ``NotFoundError`` otherwise."""
    query = _endpoint_query().where(webhook_endpoints.c.id == endpoint_id)
    if business_unit_id is not None:
        query = query.where(webhook_endpoints.c.business_unit_id == business_unit_id)
    row = (await conn.execute(query)).first()
    if row is None:
        raise NotFoundError(f"no webhook endpoint {endpoint_id!r}")
    return _endpoint(row)


async def update_endpoint(
    conn: AsyncConnection,
    endpoint_id: str,
    now: datetime,
    *,
    business_unit_id: str | None = None,
    url: str | None = None,
    events: Sequence[str] | None = None,
    enabled: bool | None = None,
    reason: str | None = None,
) -> Endpoint:
    """Change an endpoint; enabling it clears its failure count, disabling notes ``reason``."""
    before = await get_endpoint(conn, endpoint_id, business_unit_id)
    values: dict[str, Any] = {"updated_at": now}
    if url is not None:
        values["url"] = url
    if events is not None:
        values["events"] = _events_text(events)
    if enabled is True and not before.enabled:
        values.update(enabled=True, disabled_reason=None, consecutive_failures=0)
    elif enabled is False and before.enabled:
        values.update(enabled=False, disabled_reason=(reason or "disabled by the business unit")[:200])
    await conn.execute(update(webhook_endpoints).where(webhook_endpoints.c.id == endpoint_id).values(**values))
    return await get_endpoint(conn, endpoint_id)


async def delete_endpoint(conn: AsyncConnection, endpoint_id: str, business_unit_id: str | None = None) -> None:
    """Delete an endpoint and its deliveries (history included)."""
    await get_endpoint(conn, endpoint_id, business_unit_id)
    await conn.execute(delete(webhook_deliveries).where(webhook_deliveries.c.endpoint_id == endpoint_id))
    await conn.execute(delete(webhook_endpoints).where(webhook_endpoints.c.id == endpoint_id))


async def rotate_secret(
    conn: AsyncConnection,
    cipher: FieldCipher,
    endpoint_id: str,
    now: datetime,
    overlap: timedelta,
    *,
    business_unit_id: str | None = None,
) -> tuple[Endpoint, str]:
    """A new signing secret; the current one keeps signing beside it for ``overlap``. Returns the new secret once.

    A secret still in its overlap when the next rotation comes stops at once: two secrets at most sign.
    """
    if not timedelta(0) <= overlap <= MAX_SECRET_OVERLAP:
        raise ConfigError(f"the overlap must be from 0 to {MAX_SECRET_OVERLAP.days} days")
    await get_endpoint(conn, endpoint_id, business_unit_id)
    current = await conn.scalar(select(webhook_endpoints.c.secret).where(webhook_endpoints.c.id == endpoint_id))
    plain_current = cipher.decrypt(str(current), _secret_context(endpoint_id, "secret"))
    secret = _new_secret()
    await conn.execute(
        update(webhook_endpoints)
        .where(webhook_endpoints.c.id == endpoint_id)
        .values(
            secret=cipher.encrypt(secret, _secret_context(endpoint_id, "secret")),
            previous_secret=cipher.encrypt(plain_current, _secret_context(endpoint_id, "previous_secret"))
            if overlap
            else None,
            previous_secret_until=now + overlap if overlap else None,
            updated_at=now,
        )
    )
    return await get_endpoint(conn, endpoint_id), secret


# -- deliveries written with the transitions -------------------------------------------------------


async def enabled_endpoints(
    conn: AsyncConnection, business_unit_ids: Iterable[str]
) -> dict[str, list[tuple[str, str]]]:
    """Business unit id → its enabled endpoints as ``(id, events)``, for the units given."""
    units = sorted(set(business_unit_ids))
    if not units:
        return {}
    rows = await conn.execute(
        select(webhook_endpoints.c.id, webhook_endpoints.c.business_unit_id, webhook_endpoints.c.events)
        .where(webhook_endpoints.c.business_unit_id.in_(units), webhook_endpoints.c.enabled.is_(True))
        .order_by(webhook_endpoints.c.id)
    )
    out: dict[str, list[tuple[str, str]]] = {}
    for row in rows:
        out.setdefault(row.business_unit_id, []).append((row.id, row.events))
    return out


def enabled_endpoints_in_thread(
    db: sqlite3.Connection, dialect: Dialect, business_unit_ids: Iterable[str]
) -> dict[str, list[tuple[str, str]]]:
    """:func:`enabled_endpoints` as a plain ``sqlite3`` call (intake's one-hop batch)."""
    units = sorted(set(business_unit_ids))
    if not units:
        return {}
    rows = db.execute(
        "SELECT id, business_unit_id, events FROM webhook_endpoints "
        f"WHERE enabled = 1 AND business_unit_id IN ({placeholders(dialect, len(units))}) ORDER BY id",
        units,
    ).fetchall()
    out: dict[str, list[tuple[str, str]]] = {}
    for endpoint_id, unit, events in rows:
        out.setdefault(unit, []).append((endpoint_id, events))
    return out


def delivery_rows(
    events: Iterable[Mapping[str, Any]],
    context: Mapping[str, tuple[str, str]],
    endpoints: Mapping[str, Sequence[tuple[str, str]]],
    now: datetime,
) -> list[dict[str, Any]]:
    """The delivery rows for event rows (``instruction_events`` shape): applied ones, to each listening endpoint.

    ``context`` maps an instruction id to its ``(business unit id, reference)``.
    """
    rows: list[dict[str, Any]] = []
    if not endpoints:
        return rows
    for event in events:
        if not event["applied"]:
            continue
        unit, reference = context[event["instruction_id"]]
        listening = [(e, filt) for e, filt in endpoints.get(unit, ()) if _listens(filt, event["status"])]
        if not listening:
            continue
        body = json.dumps(event_view(event, reference), separators=(",", ":"), ensure_ascii=False)
        rows += new_delivery_row(listening, unit, event["instruction_id"], event["sequence"], body, now)
    return rows


def new_delivery_row(
    endpoints: Iterable[tuple[str, str]],
    business_unit_id: str,
    subject_id: str,
    sequence: int,
    body: str,
    now: datetime,
    status: str | None = None,
) -> list[dict[str, Any]]:
    """One pending delivery of the ``sequence``-th event of ``subject_id`` (an instruction or a collection id)
    to each endpoint (``(id, events filter)``) that listens for ``status`` (every one given when ``None``)."""
    eid = event_id(subject_id, sequence)
    return [
        {
            "id": new_id("whd"),
            "endpoint_id": endpoint_id,
            "business_unit_id": business_unit_id,
            "instruction_id": subject_id,
            "sequence": sequence,
            "event_id": eid,
            "body": body,
            "status": "pending",
            "attempts": 0,
            "available_at": now,
            "lease_owner": None,
            "lease_until": None,
            "last_error": None,
            "last_status_code": None,
            "created_at": now,
            "delivered_at": None,
        }
        for endpoint_id, filt in endpoints
        if status is None or _listens(filt, status)
    ]


async def insert_deliveries(
    conn: AsyncConnection, events: Sequence[Mapping[str, Any]], context: Mapping[str, tuple[str, str]], now: datetime
) -> int:
    """Write the deliveries of ``events`` in the caller's transaction; returns how many."""
    units = {context[e["instruction_id"]][0] for e in events if e["applied"]}
    rows = delivery_rows(events, context, await enabled_endpoints(conn, units), now)
    if rows:
        await conn.execute(insert(webhook_deliveries), rows)
    return len(rows)


# -- the worker's side --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ClaimedDelivery:
    """A delivery leased to a worker, with what it needs to send it."""

    id: str
    endpoint_id: str
    event_id: str
    instruction_id: str
    sequence: int
    body: str
    attempts: int
    created_at: datetime
    url: str
    #: the secrets that sign it: the current one, then the previous one during a rotation's overlap
    secrets: tuple[bytes, ...]


async def claim_deliveries(
    conn: AsyncConnection, cipher: FieldCipher, owner: str, now: datetime, lease_until: datetime, limit: int
) -> list[ClaimedDelivery]:
    """Lease up to ``limit`` due deliveries of enabled endpoints (SKIP LOCKED on PostgreSQL).

    A delivery waits while an earlier event of the same instruction is still pending
    for the same endpoint, so each endpoint gets an instruction's events in order.
    """
    earlier = webhook_deliveries.alias("earlier")
    due = (
        select(webhook_deliveries.c.id)
        .join(webhook_endpoints, webhook_endpoints.c.id == webhook_deliveries.c.endpoint_id)
        .where(
            webhook_deliveries.c.status == "pending",
            webhook_deliveries.c.available_at <= now,
            or_(webhook_deliveries.c.lease_until.is_(None), webhook_deliveries.c.lease_until < now),
            webhook_endpoints.c.enabled.is_(True),
            ~exists().where(
                and_(
                    earlier.c.endpoint_id == webhook_deliveries.c.endpoint_id,
                    earlier.c.instruction_id == webhook_deliveries.c.instruction_id,
                    earlier.c.sequence < webhook_deliveries.c.sequence,
                    earlier.c.status == "pending",
                )
            ),
        )
        .order_by(webhook_deliveries.c.available_at, webhook_deliveries.c.created_at, webhook_deliveries.c.sequence)
        .limit(limit)
    )
    if conn.dialect.name == "postgresql":
        due = due.with_for_update(skip_locked=True, of=webhook_deliveries)
    # read first: an idle worker's round then writes nothing (on SQLite a write takes the one writer's lock)
    due_ids = list((await conn.execute(due)).scalars())
    if not due_ids:
        return []
    claimed = [
        r.id
        for r in await conn.execute(
            update(webhook_deliveries)
            .where(
                webhook_deliveries.c.id.in_(due_ids),
                webhook_deliveries.c.status == "pending",
                or_(webhook_deliveries.c.lease_until.is_(None), webhook_deliveries.c.lease_until < now),
            )
            .values(lease_owner=owner, lease_until=lease_until)
            .returning(webhook_deliveries.c.id)
        )
    ]
    if not claimed:
        return []
    rows = await conn.execute(
        select(
            webhook_deliveries.c.id,
            webhook_deliveries.c.endpoint_id,
            webhook_deliveries.c.event_id,
            webhook_deliveries.c.instruction_id,
            webhook_deliveries.c.sequence,
            webhook_deliveries.c.body,
            webhook_deliveries.c.attempts,
            webhook_deliveries.c.created_at,
            webhook_endpoints.c.url,
            webhook_endpoints.c.secret,
            webhook_endpoints.c.previous_secret,
            webhook_endpoints.c.previous_secret_until,
        )
        .join(webhook_endpoints, webhook_endpoints.c.id == webhook_deliveries.c.endpoint_id)
        .where(webhook_deliveries.c.id.in_(claimed))
        .order_by(webhook_deliveries.c.created_at, webhook_deliveries.c.sequence)
    )
    out = []
    for r in rows:
        keys = [cipher.decrypt(r.secret, _secret_context(r.endpoint_id, "secret"))]
        if r.previous_secret and r.previous_secret_until and r.previous_secret_until > now:
            keys.append(cipher.decrypt(r.previous_secret, _secret_context(r.endpoint_id, "previous_secret")))
        out.append(
            ClaimedDelivery(
                id=r.id,
                endpoint_id=r.endpoint_id,
                event_id=r.event_id,
                instruction_id=r.instruction_id,
                sequence=r.sequence,
                body=r.body,
                attempts=r.attempts,
                created_at=r.created_at,
                url=r.url,
                secrets=tuple(k.encode() for k in keys),
            )
        )
    return out


async def record_delivered(
    conn: AsyncConnection, delivery_id: str, endpoint_id: str, owner: str, now: datetime, status_code: int
) -> bool:
    """Mark a delivery this owner holds as delivered and reset its endpoint's failure count."""
    result = await conn.execute(
        update(webhook_deliveries)
        .where(webhook_deliveries.c.id == delivery_id, webhook_deliveries.c.lease_owner == owner)
        .values(
            status="delivered",
            attempts=webhook_deliveries.c.attempts + 1,
            delivered_at=now,
            last_status_code=status_code,
            last_error=None,
            lease_owner=None,
            lease_until=None,
        )
    )
    if result.rowcount != 1:
        return False
    await conn.execute(
        update(webhook_endpoints)
        .where(webhook_endpoints.c.id == endpoint_id, webhook_endpoints.c.consecutive_failures != 0)
        .values(consecutive_failures=0)
    )
    return True


async def record_attempt_failure(
    conn: AsyncConnection,
    delivery_id: str,
    endpoint_id: str,
    owner: str,
    now: datetime,
    *,
    retry_at: datetime | None,
    error: str,
    status_code: int | None,
    disable_after: int,
) -> bool:
    """Note a failed attempt: retry at ``retry_at`` (``None``: give up, ``failed``). Returns whether the endpoint
    was disabled by it (its ``disable_after``-th failure in a row)."""
    result = await conn.execute(
        update(webhook_deliveries)
        .where(webhook_deliveries.c.id == delivery_id, webhook_deliveries.c.lease_owner == owner)
        .values(
            status="pending" if retry_at is not None else "failed",
            attempts=webhook_deliveries.c.attempts + 1,
            available_at=retry_at if retry_at is not None else webhook_deliveries.c.available_at,
            last_status_code=status_code,
            last_error=error[:500],
            lease_owner=None,
            lease_until=None,
        )
    )
    if result.rowcount != 1:
        return False
    failures = (
        await conn.execute(
            update(webhook_endpoints)
            .where(webhook_endpoints.c.id == endpoint_id)
            .values(consecutive_failures=webhook_endpoints.c.consecutive_failures + 1)
            .returning(webhook_endpoints.c.consecutive_failures, webhook_endpoints.c.enabled)
        )
    ).first()
    if failures is None or not failures.enabled or failures.consecutive_failures < disable_after:
        return False
    await conn.execute(
        update(webhook_endpoints)
        .where(webhook_endpoints.c.id == endpoint_id)
        .values(
            enabled=False,
            disabled_reason=f"disabled after {failures.consecutive_failures} failed deliveries in a row",
            updated_at=now,
        )
    )
    return True


# -- deliveries over the API ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Delivery:
    """A delivery as a business unit sees it."""

    id: str
    endpoint_id: str
    event_id: str
    instruction_id: str
    sequence: int
    status: str
    attempts: int
    next_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None

    def as_dict(self) -> dict[str, Any]:
        def iso(value: datetime | None) -> str | None:
            return value.isoformat() if value else None

        return {
            "id": self.id,
            "endpoint_id": self.endpoint_id,
            "event_id": self.event_id,
            "instruction_id": self.instruction_id,
            "sequence": self.sequence,
            "status": self.status,
            "attempts": self.attempts,
            "next_attempt_at": iso(self.next_attempt_at),
            "last_status_code": self.last_status_code,
            "last_error": self.last_error,
            "created_at": self.created_at.isoformat(),
            "delivered_at": iso(self.delivered_at),
        }


def _delivery(row: Any) -> Delivery:
    return Delivery(
        id=row.id,
        endpoint_id=row.endpoint_id,
        event_id=row.event_id,
        instruction_id=row.instruction_id,
        sequence=row.sequence,
        status=row.status,
        attempts=row.attempts,
        next_attempt_at=row.available_at if row.status == "pending" else None,
        last_status_code=row.last_status_code,
        last_error=row.last_error,
        created_at=row.created_at,
        delivered_at=row.delivered_at,
    )


async def list_deliveries(
    conn: AsyncConnection,
    business_unit_id: str,
    *,
    status: str | None = None,
    endpoint_id: str | None = None,
    instruction_id: str | None = None,
    before: str | None = None,
    limit: int = 50,
) -> list[Delivery]:
    """A business unit's deliveries, newest first."""
    query = select(webhook_deliveries).where(webhook_deliveries.c.business_unit_id == business_unit_id)
    if status is not None:
        query = query.where(webhook_deliveries.c.status == status)
    if endpoint_id is not None:
        query = query.where(webhook_deliveries.c.endpoint_id == endpoint_id)
    if instruction_id is not None:
        query = query.where(webhook_deliveries.c.instruction_id == instruction_id)
    if before is not None:
        query = query.where(webhook_deliveries.c.id < before)
    rows = await conn.execute(query.order_by(webhook_deliveries.c.id.desc()).limit(limit))
    return [_delivery(r) for r in rows]


async def get_delivery(conn: AsyncConnection, delivery_id: str, business_unit_id: str | None = None) -> Delivery:
    query = select(webhook_deliveries).where(webhook_deliveries.c.id == delivery_id)
    if business_unit_id is not None:
        query = query.where(webhook_deliveries.c.business_unit_id == business_unit_id)
    row = (await conn.execute(query)).first()
    if row is None:
        raise NotFoundError(f"no webhook delivery {delivery_id!r}")
    return _delivery(row)


async def redeliver(
    conn: AsyncConnection, delivery_id: str, now: datetime, business_unit_id: str | None = None
) -> Delivery:
    """Send a delivery again now (same event id, same body), whatever its state; its endpoint must be enabled."""
    found = await get_delivery(conn, delivery_id, business_unit_id)
    enabled = await conn.scalar(select(webhook_endpoints.c.enabled).where(webhook_endpoints.c.id == found.endpoint_id))
    if not enabled:
        raise ConflictError(f"webhook endpoint {found.endpoint_id} is disabled; enable it first")
    await conn.execute(
        update(webhook_deliveries)
        .where(webhook_deliveries.c.id == delivery_id)
        .values(status="pending", available_at=now, lease_owner=None, lease_until=None, created_at=now)
    )
    return await get_delivery(conn, delivery_id)


async def pending_count(conn: AsyncConnection) -> int:
    """Deliveries waiting (due or not)."""
    return int(
        await conn.scalar(
            select(func.count()).select_from(webhook_deliveries).where(webhook_deliveries.c.status == "pending")
        )
        or 0
    )
