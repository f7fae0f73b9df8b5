"""Collections in the store: intake, the status transitions (with their ledger entries and webhook
deliveries, in one transaction), refunds, and the collections outbox the dispatcher leases from.

The same rules as instructions (``gateway.store.intake``, ``gateway.store.repo``):
accepted means durable (collection + first event + outbox job + idempotency
record in one transaction before the 202); a status changes only through
:func:`record_collection_transitions`, which appends an event for every request,
applies only what the state machine allows (``gateway.domain.collection_status``),
and posts the ledger entries of applied changes in the same transaction. The
outbox is leased like the instructions' one (``SKIP LOCKED`` on PostgreSQL), so
a crashed dispatcher's job is retried after its lease expires, with the
collection id as the partner's idempotency key.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import Enum
from typing import Any

from sqlalchemy import and_, delete, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.domain.accounts import IbanAccount
from gateway.domain.collection import CollectionData, CollectionOrder, Mandate, Payer
from gateway.domain.collection_status import CollectionStatus, decide_collection
from gateway.domain.money import Money, amount_text
from gateway.domain.status import Decision
from gateway.errors import NotFoundError
from gateway.ledger.model import Entry
from gateway.store.audit import COLLECTIONS, seal_events
from gateway.store.encryption import FieldCipher
from gateway.store.journal import post, rules_for
from gateway.store.repo import event_row
from gateway.store.tables import (
    business_units,
    collection_events,
    collection_keys,
    collection_outbox,
    collection_refunds,
    collections,
    webhook_deliveries,
)
from gateway.store.webhooks import enabled_endpoints, new_delivery_row

__all__ = [
    "LEDGER_KINDS",
    "CollectionJob",
    "CollectionRecord",
    "CollectionTransition",
    "KeyOutcome",
    "KeyResult",
    "claim_collection_jobs",
    "collection_event_view",
    "collection_order",
    "collection_outbox_depth",
    "collection_view",
    "due_for_collection_poll",
    "find_collection_by_partner",
    "finish_collection_job",
    "finish_refund",
    "load_collection",
    "mark_captured",
    "new_collection_row",
    "prior_request",
    "record_collection_transitions",
    "refund_view",
    "refunds_of",
    "remember_key",
    "request_refund",
    "retry_collection_job",
    "store_collection",
    "touch_collection",
]

#: the ledger event kind an applied transition into a status posts (config/ledger.yaml ``events``)
LEDGER_KINDS: Mapping[CollectionStatus, str] = {
    CollectionStatus.COLLECTED: "collection_collected",
    CollectionStatus.CHARGED_BACK: "collection_charged_back",
    CollectionStatus.RETURNED: "collection_returned",
}

#: how long after its creation a collected direct debit is still asked about (the 13-month refund window, and some)
DIRECT_DEBIT_RETURN_HORIZON = timedelta(days=426)


def _instrument_context(collection_id: str) -> str:
    # AAD binds the ciphertext to its row: copied to another collection, it will not decrypt
    return f"collections:{collection_id}:payer_instrument"


def new_collection_row(
    cipher: FieldCipher,
    collection_id: str,
    business_unit_id: str,
    data: CollectionData,
    contract_version: str,
    now: datetime,
    *,
    submitted_by: str | None = None,
) -> dict[str, Any]:
    """The ``collections`` row for a new collection, its payer's instrument encrypted."""
    return {
        "id": collection_id,
        "business_unit_id": business_unit_id,
        "reference": data.reference,
        "kind": data.kind,
        "amount": str(data.money.amount),
        "amount_minor": data.money.minor,
        "currency": data.money.currency,
        "status": CollectionStatus.RECEIVED.value,
        "payer_name": data.payer.name,
        "payer_instrument": cipher.encrypt(data.payer.instrument, _instrument_context(collection_id)),
        "masked": data.payer.masked(),
        "mandate": data.mandate.as_dict() if data.mandate else None,
        "due_date": data.due_date,
        "bic": data.payer.bic,
        "description": data.description,
        "capture": data.capture,
        "captured_at": None,
        "channel": data.channel,
        "metadata": dict(data.metadata),
        "contract_version": contract_version,
        "adapter": None,
        "partner_reference": None,
        "refunded_minor": 0,
        "event_count": 1,
        "created_at": now,
        "updated_at": now,
        "submitted_by": submitted_by,
    }


def collection_order(cipher: FieldCipher, row: Mapping[str, Any], business_unit: str) -> CollectionOrder:
    """What an adapter sees of a stored collection: the payer's instrument decrypted."""
    instrument = cipher.decrypt(row["payer_instrument"], _instrument_context(row["id"]))
    kind = row["kind"]
    payer = Payer(
        name=row["payer_name"],
        card_token=instrument if kind == "card_charge" else None,
        wallet=instrument if kind == "wallet_charge" else None,
        iban=IbanAccount.parse(instrument, "/payer/iban") if kind == "direct_debit" else None,
        bic=row["bic"],
    )
    mandate = row["mandate"]
    return CollectionOrder(
        id=row["id"],
        business_unit=business_unit,
        reference=row["reference"],
        kind=kind,
        money=Money.from_minor(row["amount_minor"], row["currency"]),
        payer=payer,
        description=row["description"],
        capture=row["capture"],
        mandate=Mandate(mandate["id"], date.fromisoformat(mandate["signature_date"]), mandate["sequence_type"])
        if mandate
        else None,
        due_date=row["due_date"],
        metadata=dict(row["metadata"] or {}),
    )


# -- views ----------------------------------------------------------------------------------------


def collection_view(row: Mapping[str, Any]) -> dict[str, Any]:
    """The API representation of a collection row: the payer's instrument masked, never decrypted."""
    return {
        "id": row["id"],
        "reference": row["reference"],
        "kind": row["kind"],
        "amount": {"value": row["amount"], "currency": row["currency"]},
        "status": row["status"],
        "payer": row["masked"],
        "mandate": row["mandate"],
        "due_date": row["due_date"].isoformat() if row["due_date"] else None,
        "description": row["description"],
        "capture": row["capture"],
        "captured_at": row["captured_at"].isoformat() if row["captured_at"] else None,
        "refunded": amount_text(row["refunded_minor"], row["currency"]),
        "channel": row["channel"],
        "metadata": row["metadata"] or {},
        "contract_version": row["contract_version"],
        "adapter": row["adapter"],
        "partner_reference": row["partner_reference"],
        "created_at": row["created_at"].isoformat(),
        "updated_at": row["updated_at"].isoformat(),
    }


def collection_event_view(row: Mapping[str, Any], reference: str) -> dict[str, Any]:
    """One collection event row, in the ``status-event`` 1.1 shape with subject ``collection``."""
    return {
        "subject": "collection",
        "collection_id": row["collection_id"],
        "reference": reference,
        "sequence": row["sequence"],
        "status": row["status"],
        "previous_status": row["previous_status"],
        "applied": bool(row["applied"]),
        "outcome": row["outcome"],
        "source": row["source"],
        "adapter": row["adapter"],
        "partner_reference": row["partner_reference"],
        "partner_status": row["partner_status"],
        "reason_code": row["reason_code"],
        "reason": row["reason"],
        "occurred_at": row["occurred_at"].isoformat(),
    }


def refund_view(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "collection_id": row["collection_id"],
        "amount": {"value": row["amount"], "currency": row["currency"]},
        "status": row["status"],
        "partner_reference": row["partner_reference"],
        "reason_code": row["reason_code"],
        "reason": row["reason"],
        "created_at": row["created_at"].isoformat(),
        "updated_at": row["updated_at"].isoformat(),
    }


def _event_row(
    collection_id: str,
    sequence: int,
    previous: CollectionStatus | None,
    status: CollectionStatus,
    decision: Decision,
    *,
    partner_status: str | None = None,
    reason_code: str | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """``repo.event_row`` keyed by ``collection_id``; partner status and reason code cut to their 32 columns."""
    row = event_row(
        collection_id,
        sequence,
        previous,
        status,
        decision,
        partner_status=(partner_status or None) and partner_status[:32],
        reason_code=(reason_code or None) and reason_code[:32],
        **fields,
    )
    row["collection_id"] = row.pop("instruction_id")
    return row


# -- intake ---------------------------------------------------------------------------------------


class KeyOutcome(Enum):
    CREATED = "created"
    REPLAYED = "replayed"  # same key, same request: the first answer again
    KEY_CONFLICT = "key_conflict"  # same key, another request
    DUPLICATE_REFERENCE = "duplicate_reference"


@dataclass(frozen=True, slots=True)
class KeyResult:
    outcome: KeyOutcome
    status_code: int = 202
    response: dict[str, Any] | None = None


async def prior_request(conn: AsyncConnection, business_unit_id: str, key: str, request_hash: str) -> KeyResult | None:
    """What an Idempotency-Key already answered (a replay or a conflict), or ``None`` if it is new."""
    row = (
        await conn.execute(
            select(collection_keys.c.request_hash, collection_keys.c.status_code, collection_keys.c.response).where(
                collection_keys.c.business_unit_id == business_unit_id, collection_keys.c.key == key
            )
        )
    ).first()
    if row is None:
        return None
    if row.request_hash != request_hash:
        return KeyResult(KeyOutcome.KEY_CONFLICT, 409)
    return KeyResult(KeyOutcome.REPLAYED, row.status_code, row.response)


async def remember_key(
    conn: AsyncConnection,
    business_unit_id: str,
    key: str,
    request_hash: str,
    status_code: int,
    response: dict[str, Any],
    collection_id: str,
    now: datetime,
) -> None:
    await conn.execute(
        insert(collection_keys).values(
            business_unit_id=business_unit_id,
            key=key,
            request_hash=request_hash,
            status_code=status_code,
            response=response,
            collection_id=collection_id,
            created_at=now,
        )
    )


async def store_collection(
    conn: AsyncConnection,
    *,
    row: dict[str, Any],
    key: str,
    request_hash: str,
    response: dict[str, Any],
    now: datetime,
) -> KeyResult:
    """Write a new collection (row, ``received`` event, dispatch job, idempotency record) in the caller's
    transaction, or say why not (a replay, a key conflict, a duplicate reference): nothing is written then.

    A concurrent writer of the same key or reference makes the insert fail with ``IntegrityError``; the
    caller rolls back and asks again, and this look-up then sees the winner's rows.
    """
    bu = row["business_unit_id"]
    prior = await prior_request(conn, bu, key, request_hash)
    if prior is not None:
        return prior
    taken = await conn.scalar(
        select(collections.c.id).where(
            collections.c.business_unit_id == bu, collections.c.reference == row["reference"]
        )
    )
    if taken is not None:
        return KeyResult(KeyOutcome.DUPLICATE_REFERENCE, 409)
    event = _event_row(
        row["id"], 1, None, CollectionStatus.RECEIVED, Decision(True, "applied"), source="api", occurred_at=now
    )
    await conn.execute(insert(collections).values(**row))
    await seal_events(conn, [event], COLLECTIONS)
    await conn.execute(insert(collection_events).values(**event))
    await _enqueue(conn, row["id"], "dispatch", now)
    await remember_key(conn, bu, key, request_hash, 202, response, row["id"], now)
    await _insert_deliveries(conn, [event], {row["id"]: (bu, row["reference"])}, now)
    return KeyResult(KeyOutcome.CREATED, 202, response)


# -- transitions ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CollectionTransition:
    """A requested status change for one collection, with what its event should say."""

    collection_id: str
    status: CollectionStatus
    source: str
    adapter: str | None = None
    partner_reference: str | None = None
    partner_status: str | None = None
    reason_code: str | None = None
    reason: str | None = None
    actor: str | None = None


@dataclass(frozen=True, slots=True)
class CollectionRecord:
    """What one transition did: the decision and the status it was decided against."""

    decision: Decision
    previous: CollectionStatus
    status: CollectionStatus


async def _locked_rows(conn: AsyncConnection, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    query = (
        select(
            collections,
            select(business_units.c.name)
            .where(business_units.c.id == collections.c.business_unit_id)
            .scalar_subquery()
            .label("business_unit"),
        )
        .where(collections.c.id.in_(sorted(set(ids))))
        .order_by(collections.c.id)
    )
    if conn.dialect.name == "postgresql":
        query = query.with_for_update(of=collections)
    return {r.id: dict(r._mapping) for r in await conn.execute(query)}


async def record_collection_transitions(
    conn: AsyncConnection, transitions: Sequence[CollectionTransition], now: datetime
) -> list[CollectionRecord]:
    """Append one event per transition and apply those the state machine allows, in the caller's transaction.

    Rows are locked in id order (``FOR UPDATE`` on PostgreSQL; SQLite has one writer). Applied changes
    post their ledger entries (``LEDGER_KINDS``) and write their webhook deliveries in the same
    transaction. ``NotFoundError`` if a collection does not exist.
    """
    if not transitions:
        return []
    state = await _locked_rows(conn, [t.collection_id for t in transitions])
    missing = sorted({t.collection_id for t in transitions} - set(state))
    if missing:
        raise NotFoundError(f"collection {missing[0]} not found")
    events: list[dict[str, Any]] = []
    records: list[CollectionRecord] = []
    entries: list[Entry] = []
    rules = rules_for(conn)
    for t in transitions:
        row = state[t.collection_id]
        current = CollectionStatus(row["status"])
        decision = decide_collection(current, t.status)
        row["event_count"] += 1
        if decision.applied:
            row["status"] = t.status.value
            if t.adapter is not None:
                row["adapter"] = t.adapter
            kind = LEDGER_KINDS.get(t.status)
            if kind is not None and rules is not None:
                entries.append(
                    rules.event(
                        kind,
                        currency=row["currency"],
                        amounts={"amount": _ledger_amount(kind, row)},
                        business_unit=row["business_unit"],
                        adapter=row["adapter"],
                        instruction_id=t.collection_id,
                        memo=f"{row['kind']} {current.value} → {t.status.value}",
                    )
                )
        if t.partner_reference and not row["partner_reference"]:
            row["partner_reference"] = t.partner_reference
        events.append(
            _event_row(
                t.collection_id,
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
        records.append(CollectionRecord(decision, current, t.status))
    for collection_id, row in state.items():
        await conn.execute(
            update(collections)
            .where(collections.c.id == collection_id)
            .values(
                status=row["status"],
                adapter=row["adapter"],
                partner_reference=row["partner_reference"],
                event_count=row["event_count"],
                updated_at=now,
            )
        )
    await seal_events(conn, events, COLLECTIONS)  # before the postings: heads lock collections, then journal
    await conn.execute(insert(collection_events), events)
    await _insert_deliveries(
        conn, events, {i: (row["business_unit_id"], row["reference"]) for i, row in state.items()}, now
    )
    # an amount already refunded is not taken back a second time by a chargeback or a return
    await post(conn, [e for e in entries if e.postings and any(p.amount for p in e.postings)], now, rules)
    return records


def _ledger_amount(kind: str, row: Mapping[str, Any]) -> int:
    """What an entry of ``kind`` moves: the amount; a reversal only what was not refunded already."""
    if kind == "collection_collected":
        return int(row["amount_minor"])
    return int(row["amount_minor"]) - int(row["refunded_minor"])


async def _insert_deliveries(
    conn: AsyncConnection, events: Sequence[Mapping[str, Any]], context: Mapping[str, tuple[str, str]], now: datetime
) -> None:
    """The status webhooks of the applied events, to every listening endpoint of their business unit."""
    applied = [e for e in events if e["applied"]]
    if not applied:
        return
    endpoints = await enabled_endpoints(conn, {context[e["collection_id"]][0] for e in applied})
    rows = []
    for event in applied:
        unit, reference = context[event["collection_id"]]
        body = json.dumps(collection_event_view(event, reference), separators=(",", ":"), ensure_ascii=False)
        rows += new_delivery_row(
            endpoints.get(unit, ()), unit, event["collection_id"], event["sequence"], body, now, event["status"]
        )
    if rows:
        await conn.execute(insert(webhook_deliveries), rows)


async def load_collection(conn: AsyncConnection, collection_id: str) -> dict[str, Any] | None:
    row = (await conn.execute(select(collections).where(collections.c.id == collection_id))).mappings().first()
    return dict(row) if row else None


async def find_collection_by_partner(
    conn: AsyncConnection, adapter: str, collection_id: str | None, partner_reference: str | None
) -> str | None:
    """The id of the collection a partner report is about, only if it went to that adapter."""
    conds = []
    if collection_id:
        conds.append(collections.c.id == collection_id)
    if partner_reference:
        conds.append(collections.c.partner_reference == partner_reference)
    if not conds:
        return None
    found = await conn.scalar(select(collections.c.id).where(collections.c.adapter == adapter, or_(*conds)).limit(1))
    return str(found) if found else None


async def due_for_collection_poll(conn: AsyncConnection, older_than: datetime, limit: int) -> list[str]:
    """Collections at a partner with no outcome since ``older_than`` (a lost webhook); not those waiting for
    their business unit's capture. Collected direct debits too, for 14 months after their creation: their
    R-transactions (returns, refunds within 8 weeks / 13 months) are learnt by polling the bank's camt.054."""
    rows = await conn.execute(
        select(collections.c.id)
        .where(
            or_(
                collections.c.status.in_([CollectionStatus.ACCEPTED.value, CollectionStatus.SUBMITTED.value]),
                and_(
                    collections.c.status == CollectionStatus.COLLECTED.value,
                    collections.c.kind == "direct_debit",
                    collections.c.created_at > older_than - DIRECT_DEBIT_RETURN_HORIZON,
                ),
            ),
            collections.c.adapter.is_not(None),
            collections.c.updated_at < older_than,
            or_(collections.c.capture != "manual", collections.c.captured_at.is_not(None)),
        )
        .order_by(collections.c.updated_at)
        .limit(limit)
    )
    return [r.id for r in rows]


async def touch_collection(conn: AsyncConnection, collection_id: str, now: datetime) -> None:
    """Note that the partner was asked (the next poll waits its interval again)."""
    await conn.execute(update(collections).where(collections.c.id == collection_id).values(updated_at=now))


async def mark_captured(conn: AsyncConnection, collection_id: str, now: datetime) -> bool:
    """Note the business unit's capture request and queue it; ``False`` when it was asked for already."""
    result = await conn.execute(
        update(collections)
        .where(collections.c.id == collection_id, collections.c.captured_at.is_(None))
        .values(captured_at=now, updated_at=now)
    )
    if result.rowcount != 1:
        return False
    await _enqueue(conn, collection_id, "capture", now)
    return True


# -- refunds --------------------------------------------------------------------------------------------


async def request_refund(
    conn: AsyncConnection, row: Mapping[str, Any], refund_id: str, minor: int, now: datetime
) -> dict[str, Any] | None:
    """Reserve ``minor`` of the collected amount for a refund and queue it; ``None`` if that would exceed it.

    The check and the reservation are one conditional update, so concurrent refunds can never
    together exceed the collected amount.
    """
    result = await conn.execute(
        update(collections)
        .where(
            collections.c.id == row["id"],
            collections.c.status == CollectionStatus.COLLECTED.value,
            collections.c.refunded_minor + minor <= collections.c.amount_minor,
        )
        .values(refunded_minor=collections.c.refunded_minor + minor, updated_at=now)
    )
    if result.rowcount != 1:
        return None
    refund = {
        "id": refund_id,
        "collection_id": row["id"],
        "amount": amount_text(minor, row["currency"]),
        "amount_minor": minor,
        "currency": row["currency"],
        "status": "pending",
        "partner_reference": None,
        "reason_code": None,
        "reason": None,
        "created_at": now,
        "updated_at": now,
    }
    await conn.execute(insert(collection_refunds).values(**refund))
    await _enqueue(conn, row["id"], "refund", now, refund_id=refund_id)
    return refund


async def finish_refund(
    conn: AsyncConnection,
    refund_id: str,
    *,
    succeeded: bool,
    now: datetime,
    partner_reference: str | None = None,
    reason_code: str | None = None,
    reason: str | None = None,
) -> bool:
    """Record a pending refund's outcome: a success posts its ledger entry, a failure releases the reserved
    amount; both in the caller's transaction. ``False`` when the refund was not pending any more."""
    refund = (
        (await conn.execute(select(collection_refunds).where(collection_refunds.c.id == refund_id))).mappings().first()
    )
    if refund is None or refund["status"] != "pending":
        return False
    await conn.execute(
        update(collection_refunds)
        .where(collection_refunds.c.id == refund_id)
        .values(
            status="succeeded" if succeeded else "failed",
            partner_reference=partner_reference,
            reason_code=reason_code,
            reason=(reason or None) and reason[:500],
            updated_at=now,
        )
    )
    state = await _locked_rows(conn, [refund["collection_id"]])
    row = state[refund["collection_id"]]
    if not succeeded:
        await conn.execute(
            update(collections)
            .where(collections.c.id == row["id"])
            .values(refunded_minor=collections.c.refunded_minor - refund["amount_minor"], updated_at=now)
        )
        return True
    rules = rules_for(conn)
    if rules is not None:
        entry = rules.event(
            "collection_refunded",
            currency=row["currency"],
            amounts={"amount": refund["amount_minor"]},
            business_unit=row["business_unit"],
            adapter=row["adapter"],
            instruction_id=row["id"],
            memo=f"refund {refund_id} of {row['kind']}",
        )
        await post(conn, [entry], now, rules)
    return True


async def refunds_of(conn: AsyncConnection, collection_id: str) -> list[dict[str, Any]]:
    rows = await conn.execute(
        select(collection_refunds)
        .where(collection_refunds.c.collection_id == collection_id)
        .order_by(collection_refunds.c.created_at, collection_refunds.c.id)
    )
    return [refund_view(r) for r in rows.mappings()]


# -- the outbox ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CollectionJob:
    id: int
    collection_id: str
    kind: str  # dispatch | capture | refund
    refund_id: str | None
    attempts: int


async def _enqueue(
    conn: AsyncConnection, collection_id: str, kind: str, now: datetime, *, refund_id: str | None = None
) -> None:
    await conn.execute(
        insert(collection_outbox).values(
            collection_id=collection_id,
            kind=kind,
            refund_id=refund_id,
            available_at=now,
            attempts=0,
            created_at=now,
        )
    )


async def claim_collection_jobs(
    conn: AsyncConnection, owner: str, now: datetime, lease_until: datetime, limit: int
) -> list[CollectionJob]:
    """Lease up to ``limit`` due jobs to ``owner`` (SKIP LOCKED on PostgreSQL); an expired lease is due again."""
    due = (
        select(collection_outbox.c.id)
        .where(
            collection_outbox.c.available_at <= now,
            or_(collection_outbox.c.lease_until.is_(None), collection_outbox.c.lease_until < now),
        )
        .order_by(collection_outbox.c.available_at, collection_outbox.c.id)
        .limit(limit)
    )
    if conn.dialect.name == "postgresql":
        due = due.with_for_update(skip_locked=True)
    result = await conn.execute(
        update(collection_outbox)
        .where(collection_outbox.c.id.in_(due.scalar_subquery()))
        .values(lease_owner=owner, lease_until=lease_until)
        .returning(
            collection_outbox.c.id,
            collection_outbox.c.collection_id,
            collection_outbox.c.kind,
            collection_outbox.c.refund_id,
            collection_outbox.c.attempts,
        )
    )
    return sorted(
        (CollectionJob(r.id, r.collection_id, r.kind, r.refund_id, r.attempts) for r in result), key=lambda j: j.id
    )


async def finish_collection_job(conn: AsyncConnection, job_id: int, owner: str) -> bool:
    """Delete a job this owner still holds; ``False`` if its lease was lost (another worker has it)."""
    result = await conn.execute(
        delete(collection_outbox).where(collection_outbox.c.id == job_id, collection_outbox.c.lease_owner == owner)
    )
    return result.rowcount == 1


async def retry_collection_job(
    conn: AsyncConnection, job_id: int, owner: str, available_at: datetime, error: str
) -> None:
    """Release a job to run again at ``available_at``."""
    await conn.execute(
        update(collection_outbox)
        .where(collection_outbox.c.id == job_id, collection_outbox.c.lease_owner == owner)
        .values(
            attempts=collection_outbox.c.attempts + 1,
            available_at=available_at,
            lease_owner=None,
            lease_until=None,
            last_error=error[:500],
        )
    )


async def collection_outbox_depth(conn: AsyncConnection) -> int:
    return int(await conn.scalar(select(func.count()).select_from(collection_outbox)) or 0)
