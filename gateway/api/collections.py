"""``/v1/collections``: money the enterprise pulls in — intake, read, list, cancel, capture, refund.

The same intake rules as ``/v1/instructions``: an ``Idempotency-Key`` on every POST
that creates something (same key and same request → the first answer again, with
``Idempotent-Replayed: true``; same key, another request → 409), problem+json
with the JSON pointer of every failing field, and durable before 202 (the
collection, its first event, its outbox job and the key's record commit together).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from aiohttp import web
from sqlalchemy import Select, select
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.api.appkeys import SERVICES
from gateway.api.auth import authenticate
from gateway.api.bodies import idempotency_key, read_json
from gateway.api.paging import PAGE_PARAMETERS, allow_only, date_bound, page_cursor, page_limit, path_id
from gateway.contracts.versions import VERSION_HEADER, negotiate, parse_as_latest, requested_version
from gateway.domain.collection import COLLECTION_KINDS, parse_collection
from gateway.domain.collection_status import CANCELLABLE, CollectionStatus
from gateway.domain.errors import MoneyError
from gateway.domain.ids import new_id
from gateway.domain.money import Money
from gateway.errors import (
    BadRequestError,
    ConflictError,
    ContractError,
    DuplicateReferenceError,
    FieldError,
    IdempotencyConflictError,
    NotFoundError,
    ServiceUnavailableError,
)
from gateway.store import collections as store
from gateway.store.collections import CollectionTransition, KeyOutcome
from gateway.store.tables import collection_events, collections

__all__ = ["COLLECTION_ID_RE", "LIST_PARAMETERS", "routes"]

routes = web.RouteTableDef()

COLLECTION_ID_RE = re.compile(r"^col_[0-9A-Z]{26}$")
EVENTS_INLINE = 100
#: the query parameters of ``GET /v1/collections`` (the OpenAPI document lists the same)
LIST_PARAMETERS = ("reference", "status", "kind", "created_from", "created_to", *PAGE_PARAMETERS)
_AMOUNT_RE = re.compile(r"^(0|[1-9][0-9]{0,14})(\.[0-9]{1,3})?$")


def _request_hash(request: web.Request, doc: Any, version: str) -> str:
    """The hash a key is bound to: method, path, contract version and canonical body (a key serves one request)."""
    canon = json.dumps(
        [request.method, request.path, version, doc], sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )
    return hashlib.sha256(canon.encode()).hexdigest()


def _answer(result: store.KeyResult, headers: dict[str, str], reference: str | None = None) -> web.Response:
    if result.outcome is KeyOutcome.KEY_CONFLICT:
        raise IdempotencyConflictError("this Idempotency-Key was used before with a different request; use a new key")
    if result.outcome is KeyOutcome.DUPLICATE_REFERENCE:
        raise DuplicateReferenceError(
            f"reference {reference!r} was already sent by this business unit",
            errors=[FieldError("/reference", "duplicate reference")],
        )
    if result.outcome is KeyOutcome.REPLAYED:
        headers["Idempotent-Replayed"] = "true"
    return web.json_response(result.response, status=result.status_code, headers=headers)


@routes.post("/v1/collections")
async def create_collection(request: web.Request) -> web.Response:
    """Accept one collection: validate, store durably, answer 202; the dispatcher takes it from there."""
    rt = request.app[SERVICES]
    principal = await authenticate(request, "instructions")
    key = idempotency_key(request)
    doc = await read_json(request)
    now = rt.clock()
    contract = negotiate(
        rt.contracts,
        "collection",
        requested=requested_version(request.headers.get(VERSION_HEADER), request.headers.get("Content-Type")),
        pinned=None,
        now=now,
    )
    version = contract.version
    rt.contracts.validate("collection", doc, version)
    data = parse_as_latest(rt.contracts, "collection", version, doc, parse_collection)
    collection_id = new_id("col")
    row = store.new_collection_row(
        rt.cipher, collection_id, principal.business_unit_id, data, version, now, submitted_by=principal.key_id
    )
    response = {
        "id": collection_id,
        "reference": data.reference,
        "kind": data.kind,
        "status": CollectionStatus.RECEIVED.value,
        "created_at": now.isoformat(),
    }
    request_hash = _request_hash(request, doc, version)
    for attempt in range(2):
        try:
            async with rt.engine.begin() as conn:
                result = await store.store_collection(
                    conn, row=row, key=key, request_hash=request_hash, response=response, now=now
                )
            break
        except IntegrityError:
            # another request with this key or reference committed between our look-up and our insert:
            # the next look-up sees it (a replay or a conflict)
            if attempt:
                raise ServiceUnavailableError("the store refused the write; nothing was accepted") from None
        except (DBAPIError, OSError):
            raise ServiceUnavailableError("the store refused the write; nothing was accepted") from None
    if result.outcome is KeyOutcome.CREATED:
        rt.wake_collections()
        rt.wake_webhooks()
    body_id = (result.response or response)["id"] if result.response else collection_id
    headers = {"Location": f"/v1/collections/{body_id}", VERSION_HEADER: version, **contract.lifecycle_headers()}
    return _answer(result, headers, data.reference)


def _collection_id(request: web.Request) -> str:
    value = request.match_info["id"]
    return path_id(value, COLLECTION_ID_RE, f"no collection {value!r}")


async def _row(conn: AsyncConnection, business_unit_id: str, collection_id: str) -> dict[str, Any]:
    row = (
        (
            await conn.execute(
                select(collections).where(
                    collections.c.id == collection_id, collections.c.business_unit_id == business_unit_id
                )
            )
        )
        .mappings()
        .first()
    )
    if row is None:
        raise NotFoundError(f"no collection {collection_id!r}")  # another unit's collection is "not found" too
    return dict(row)


async def _load(request: web.Request, business_unit_id: str, collection_id: str) -> dict[str, Any]:
    """The collection with its events (oldest first) and refunds."""
    rt = request.app[SERVICES]
    async with rt.engine.connect() as conn:
        row = await _row(conn, business_unit_id, collection_id)
        events = (
            (
                await conn.execute(
                    select(collection_events)
                    .where(collection_events.c.collection_id == collection_id)
                    .order_by(collection_events.c.sequence)
                    .limit(EVENTS_INLINE)
                )
            )
            .mappings()
            .all()
        )
        refunds = await store.refunds_of(conn, collection_id)
    view = store.collection_view(row)
    view["events"] = [store.collection_event_view(e, row["reference"]) for e in events]
    view["refunds"] = refunds
    view["ledger_entries"] = f"/v1/ledger/entries?instruction_id={collection_id}"
    return view


@routes.get("/v1/collections/{id}")
async def get_collection(request: web.Request) -> web.Response:
    """One collection with its event history and refunds."""
    principal = await authenticate(request, "instructions")
    return web.json_response(await _load(request, principal.business_unit_id, _collection_id(request)))


def list_query(business_unit_id: str, query: Mapping[str, str]) -> tuple[Select[Any], int]:
    """The statement listing a business unit's collections for ``query``'s filters, newest first, and the page size."""
    allow_only(query, *LIST_PARAMETERS)
    stmt = select(collections).where(collections.c.business_unit_id == business_unit_id)
    if "reference" in query:
        reference = query["reference"]
        if not 1 <= len(reference) <= 35:
            raise BadRequestError("reference must be 1-35 characters, as sent in the collection")
        stmt = stmt.where(collections.c.reference == reference)
    if "status" in query:
        statuses = [s for s in query["status"].split(",") if s]
        known = {s.value for s in CollectionStatus}
        if not statuses or any(s not in known for s in statuses):
            raise BadRequestError(
                f"status must be among {', '.join(s.value for s in CollectionStatus)} (comma-separated)"
            )
        stmt = stmt.where(collections.c.status.in_(statuses))
    if "kind" in query:
        if query["kind"] not in COLLECTION_KINDS:
            raise BadRequestError(f"kind must be one of {', '.join(COLLECTION_KINDS)}")
        stmt = stmt.where(collections.c.kind == query["kind"])
    if "created_from" in query:
        stmt = stmt.where(collections.c.created_at >= date_bound("created_from", query["created_from"], False))
    if "created_to" in query:
        stmt = stmt.where(collections.c.created_at <= date_bound("created_to", query["created_to"], True))
    limit = page_limit(query)
    cursor = page_cursor(query, COLLECTION_ID_RE)
    if cursor:
        stmt = stmt.where(collections.c.id < cursor)
    return stmt.order_by(collections.c.id.desc()).limit(limit + 1), limit


@routes.get("/v1/collections")
async def list_collections(request: web.Request) -> web.Response:
    """This business unit's collections, newest first, filtered, cursor-paginated."""
    rt = request.app[SERVICES]
    principal = await authenticate(request, "instructions")
    stmt, limit = list_query(principal.business_unit_id, request.query)
    async with rt.engine.connect() as conn:
        rows = (await conn.execute(stmt)).mappings().all()
    items = [store.collection_view(r) for r in rows[:limit]]
    return web.json_response({"items": items, "next_cursor": items[-1]["id"] if len(rows) > limit else None})


@routes.post("/v1/collections/{id}/cancel")
async def cancel_collection(request: web.Request) -> web.Response:
    """Cancel before the dispatcher has taken it; afterwards 409 and nothing changes."""
    rt = request.app[SERVICES]
    principal = await authenticate(request, "instructions")
    collection_id = _collection_id(request)
    async with rt.engine.begin() as conn:
        row = await _row(conn, principal.business_unit_id, collection_id)
        status = CollectionStatus(row["status"])
        if status is CollectionStatus.CANCELLED:
            pass  # cancelling twice answers the same, and records nothing more
        elif status not in CANCELLABLE:
            raise ConflictError(f"a collection in status {status.value!r} can no longer be cancelled")
        else:
            (record,) = await store.record_collection_transitions(
                conn,
                [
                    CollectionTransition(
                        collection_id,
                        CollectionStatus.CANCELLED,
                        "api",
                        reason=f"cancelled by {principal.business_unit}",
                        actor=principal.key_id,
                    )
                ],
                rt.clock(),
            )
            if not record.decision:  # taken by the dispatcher since our read
                raise ConflictError(f"a collection in status {record.previous.value!r} can no longer be cancelled")
    rt.wake_webhooks()
    return web.json_response(await _load(request, principal.business_unit_id, collection_id))


@routes.post("/v1/collections/{id}/capture")
async def capture_collection(request: web.Request) -> web.Response:
    """Capture an authorised manual-capture card charge (202; the capture goes to the acquirer)."""
    rt = request.app[SERVICES]
    principal = await authenticate(request, "instructions")
    collection_id = _collection_id(request)
    async with rt.engine.begin() as conn:
        row = await _row(conn, principal.business_unit_id, collection_id)
        if row["kind"] != "card_charge" or row["capture"] != "manual":
            raise ConflictError("only a card_charge sent with capture manual is captured through this endpoint")
        if row["status"] != CollectionStatus.SUBMITTED.value and row["captured_at"] is None:
            raise ConflictError(
                f"a charge in status {row['status']!r} cannot be captured; it is captured once authorised (submitted)"
            )
        await store.mark_captured(conn, collection_id, rt.clock())
    rt.wake_collections()
    return web.json_response(await _load(request, principal.business_unit_id, collection_id), status=202)


def _refund_amount(doc: Any, row: Mapping[str, Any]) -> Money:
    """The amount of a refund request: ``{"amount": {"value", "currency"}}``, or the whole refundable rest."""
    if not isinstance(doc, dict):
        raise BadRequestError('send a JSON object: {} to refund the rest, or {"amount": {"value", "currency"}}')
    unknown = sorted(set(doc) - {"amount"})
    if unknown:
        raise BadRequestError(
            f"unknown field {unknown[0]!r}",
            errors=[FieldError(f"/{unknown[0]}", "unknown field (not in the contract)")],
        )
    currency = row["currency"]
    if "amount" not in doc:
        return Money.from_minor(int(row["amount_minor"]) - int(row["refunded_minor"]), currency)
    amount = doc["amount"]
    if not isinstance(amount, dict) or set(amount) != {"value", "currency"}:
        raise ContractError(
            "amount must be an object with value and currency",
            errors=[FieldError("/amount", "an object with exactly value and currency")],
        )
    value = amount["value"]
    if not isinstance(value, str) or not _AMOUNT_RE.fullmatch(value):
        raise ContractError(
            "amount value must be a decimal string such as 10.50",
            errors=[FieldError("/amount/value", "a decimal string such as 10.50")],
        )
    if amount["currency"] != currency:
        raise ContractError(
            f"a refund is in the collection's currency, {currency}",
            errors=[FieldError("/amount/currency", f"must be {currency}")],
        )
    try:
        money = Money(Decimal(value), currency)
    except (MoneyError, InvalidOperation) as exc:
        raise ContractError(str(exc), errors=[FieldError("/amount/value", str(exc))]) from None
    if money.minor <= 0:
        raise ContractError(
            "a refund must be greater than zero", errors=[FieldError("/amount/value", "must be greater than zero")]
        )
    return money


@routes.post("/v1/collections/{id}/refund")
async def refund_collection(request: web.Request) -> web.Response:
    """Refund part or all of a collected card or wallet charge (202; never more than was collected)."""
    rt = request.app[SERVICES]
    principal = await authenticate(request, "instructions")
    collection_id = _collection_id(request)
    key = idempotency_key(request)
    doc = await read_json(request)
    request_hash = _request_hash(request, doc, "1.0")
    now = rt.clock()
    async with rt.engine.begin() as conn:
        row = await _row(conn, principal.business_unit_id, collection_id)
        prior = await store.prior_request(conn, principal.business_unit_id, key, request_hash)
        if prior is not None:
            return _answer(prior, {})
        if row["kind"] not in ("card_charge", "wallet_charge"):
            raise ConflictError("only card and wallet charges are refunded through this endpoint")
        if row["status"] != CollectionStatus.COLLECTED.value:
            raise ConflictError(f"a collection in status {row['status']!r} cannot be refunded; only a collected one")
        money = _refund_amount(doc, row)
        if money.minor <= 0:
            raise ConflictError("nothing is left to refund: the whole amount was refunded already")
        refund = await store.request_refund(conn, row, new_id("crf"), money.minor, now)
        if refund is None:
            left = Money.from_minor(int(row["amount_minor"]) - int(row["refunded_minor"]), row["currency"])
            raise ConflictError(
                f"a refund of {money} exceeds what is left to refund ({left})",
                errors=[FieldError("/amount/value", f"at most {left.amount}")],
            )
        response = store.refund_view(refund)
        await store.remember_key(conn, principal.business_unit_id, key, request_hash, 202, response, collection_id, now)
    rt.wake_collections()
    return web.json_response(response, status=202)
