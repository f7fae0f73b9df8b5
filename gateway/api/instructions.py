"""``/v1/instructions``: intake, read, list, cancel."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from functools import partial
from typing import Any

from aiohttp import web
from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.api.appkeys import RATE_LIMITER, SERVICES, SETTINGS
from gateway.api.auth import authenticate
from gateway.api.bodies import idempotency_key, read_json, read_json_and_bytes
from gateway.api.paging import PAGE_PARAMETERS, allow_only, date_bound, page_cursor, page_limit, path_id
from gateway.contracts.safejson import plain_text
from gateway.contracts.versions import VERSION_HEADER, negotiate, parse_as_latest, requested_version
from gateway.domain.ids import new_id
from gateway.domain.instruction import parse_instruction
from gateway.domain.status import Decision, Status
from gateway.errors import (
    BadRequestError,
    ConflictError,
    DuplicateReferenceError,
    FieldError,
    IdempotencyConflictError,
    NotFoundError,
    ServiceUnavailableError,
)
from gateway.store import repo
from gateway.store.codec import event_view, public_view
from gateway.store.intake import IntakeItem, IntakeOutcome
from gateway.store.partner_messages import messages_for
from gateway.store.tables import instruction_events, instructions

__all__ = ["INSTRUCTION_ID_RE", "LIST_PARAMETERS", "list_query", "read_json", "routes"]

routes = web.RouteTableDef()

INSTRUCTION_ID_RE = re.compile(r"^ins_[0-9A-Z]{26}$")
_APPLIED = Decision(True, "applied")
_SEQUENCE_RE = re.compile(r"[0-9]{1,9}")
#: events shown inline in an instruction view; the rest through GET /v1/instructions/{id}/events
EVENTS_INLINE = 100


def _canonical_hash(doc: Any, version: str) -> str:
    canon = json.dumps([version, doc], sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canon.encode()).hexdigest()


@routes.post("/v1/instructions")
async def create_instruction(request: web.Request) -> web.Response:
    """Accept one instruction: validate, store durably (group commit), answer 202."""
    rt = request.app[SERVICES]
    principal = await authenticate(request, "instructions")
    key = idempotency_key(request)
    intake = request.app[SETTINGS].intake
    behind = rt.writer.overloaded(intake.max_queue, intake.max_wait_seconds)
    if behind is not None:
        raise ServiceUnavailableError("intake is overloaded; nothing was accepted, retry later", retry_after=behind)
    request.app[RATE_LIMITER].check(principal.business_unit)
    doc, raw = await read_json_and_bytes(request)
    now = rt.clock()
    contract = negotiate(
        rt.contracts,
        "instruction",
        requested=requested_version(request.headers.get(VERSION_HEADER), request.headers.get("Content-Type")),
        pinned=principal.default_contract_version,
        now=now,
    )
    version = contract.version
    rt.contracts.validate("instruction", doc, version)
    parse = partial(parse_instruction, plain_text=plain_text(raw))
    data = parse_as_latest(rt.contracts, "instruction", version, doc, parse)
    instruction_id = new_id("ins")
    response = {
        "id": instruction_id,
        "reference": data.reference,
        "status": Status.RECEIVED.value,
        "created_at": now.isoformat(),
    }
    item = IntakeItem.received(
        business_unit_id=principal.business_unit_id,
        idempotency_key=key,
        request_hash=_canonical_hash(doc, version),
        instruction=rt.codec.new_row(
            instruction_id, principal.business_unit_id, data, version, now, submitted_by=principal.key_id
        ),
        response=response,
        now=now,
    )
    try:
        result = await rt.writer.submit(item)
    except RuntimeError as exc:
        raise ServiceUnavailableError(str(exc)) from None
    except Exception:
        raise ServiceUnavailableError("the store refused the write; nothing was accepted") from None
    rt.metrics.intake.labels(result.outcome.value).inc()
    if result.outcome is IntakeOutcome.KEY_CONFLICT:
        raise IdempotencyConflictError("this Idempotency-Key was used before with a different body; use a new key")
    if result.outcome is IntakeOutcome.DUPLICATE_REFERENCE:
        raise DuplicateReferenceError(
            f"reference {data.reference!r} was already sent by this business unit",
            errors=[FieldError("/reference", "duplicate reference")],
        )
    body = result.response or response
    headers = {"Location": f"/v1/instructions/{body['id']}", VERSION_HEADER: version, **contract.lifecycle_headers()}
    if result.outcome is IntakeOutcome.REPLAYED:
        headers["Idempotent-Replayed"] = "true"
    return web.json_response(body, status=result.status_code, headers=headers)


def _instruction_id(request: web.Request) -> str:
    value = request.match_info["id"]
    return path_id(value, INSTRUCTION_ID_RE, f"no instruction {value!r}")


async def _events_page(
    conn: AsyncConnection, instruction_id: str, reference: str, after: int, limit: int
) -> tuple[list[dict[str, Any]], str | None]:
    """Events after sequence ``after``, oldest first, at most ``limit``; and the cursor of the next page."""
    rows = (
        (
            await conn.execute(
                select(instruction_events)
                .where(instruction_events.c.instruction_id == instruction_id, instruction_events.c.sequence > after)
                .order_by(instruction_events.c.sequence)
                .limit(limit + 1)
            )
        )
        .mappings()
        .all()
    )
    events = [event_view(e, reference) for e in rows[:limit]]
    return events, (str(events[-1]["sequence"]) if len(rows) > limit else None)


async def _row(conn: AsyncConnection, business_unit_id: str, instruction_id: str) -> Any:
    row = (
        (
            await conn.execute(
                select(instructions).where(
                    instructions.c.id == instruction_id,
                    instructions.c.business_unit_id == business_unit_id,
                )
            )
        )
        .mappings()
        .first()
    )
    if row is None:
        # Another business unit's instruction is "not found", never "forbidden".
        raise NotFoundError(f"no instruction {instruction_id!r}")
    return row


async def _load(request: web.Request, business_unit_id: str, instruction_id: str) -> dict[str, Any]:
    """The instruction with its first ``EVENTS_INLINE`` events (``events_next_cursor`` pages on)."""
    rt = request.app[SERVICES]
    async with rt.engine.connect() as conn:
        row = await _row(conn, business_unit_id, instruction_id)
        events, next_cursor = await _events_page(conn, instruction_id, row["reference"], 0, EVENTS_INLINE)
    view = public_view(row)
    view["events"] = events
    view["events_next_cursor"] = next_cursor
    view["ledger_entries"] = f"/v1/ledger/entries?instruction_id={instruction_id}"
    return view


@routes.get("/v1/instructions/{id}")
async def get_instruction(request: web.Request) -> web.Response:
    """One instruction with its event history (the first 100 events; more through ``/events``)."""
    principal = await authenticate(request, "instructions")
    return web.json_response(await _load(request, principal.business_unit_id, _instruction_id(request)))


@routes.get("/v1/instructions/{id}/events")
async def list_instruction_events(request: web.Request) -> web.Response:
    """One instruction's events, oldest first, cursor-paginated (``cursor`` = a sequence number)."""
    rt = request.app[SERVICES]
    principal = await authenticate(request, "instructions")
    instruction_id = _instruction_id(request)
    limit = page_limit(request.query, default=100)
    cursor = page_cursor(request.query, _SEQUENCE_RE)
    async with rt.engine.connect() as conn:
        row = await _row(conn, principal.business_unit_id, instruction_id)
        items, next_cursor = await _events_page(conn, instruction_id, row["reference"], int(cursor or 0), limit)
    return web.json_response({"items": items, "next_cursor": next_cursor})


#: scopes that read every business unit's payments' partner messages
_ALL_UNITS = frozenset({"finance", "admin"})


@routes.get("/v1/instructions/{id}/partner-messages")
async def list_partner_messages(request: web.Request) -> web.Response:
    """What the gateway sent the payment's partner and what the partner answered, masked, oldest first.

    A business unit reads its own payments' messages (another unit's payment is 404); finance and
    admin keys read every unit's.
    """
    rt = request.app[SERVICES]
    principal = await authenticate(request, "instructions", "finance")
    instruction_id = _instruction_id(request)
    async with rt.engine.connect() as conn:
        query = select(instructions.c.id).where(instructions.c.id == instruction_id)
        if not _ALL_UNITS & principal.scopes:
            query = query.where(instructions.c.business_unit_id == principal.business_unit_id)
        if (await conn.execute(query)).first() is None:
            raise NotFoundError(f"no instruction {instruction_id!r}")
        items = await messages_for(conn, instruction_id)
    return web.json_response({"items": items})


#: the query parameters of ``GET /v1/instructions`` (the OpenAPI document lists the same)
LIST_PARAMETERS = ("reference", "status", "adapter", "created_from", "created_to", *PAGE_PARAMETERS)
_ADAPTER_RE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


def list_query(business_unit_id: str, query: Mapping[str, str]) -> tuple[Select[Any], int]:
    """The statement that lists a business unit's instructions for the filters in ``query``, and the page size.

    Newest first (ids sort by creation time), ``limit + 1`` rows so the caller knows if
    another page follows. Every bad value is a 400 naming its parameter.
    """
    allow_only(query, *LIST_PARAMETERS)
    stmt = select(instructions).where(instructions.c.business_unit_id == business_unit_id)
    if "reference" in query:
        reference = query["reference"]
        if not 1 <= len(reference) <= 35:
            raise BadRequestError("reference must be 1-35 characters, as sent in the instruction")
        stmt = stmt.where(instructions.c.reference == reference)
    if "status" in query:
        statuses = [s for s in query["status"].split(",") if s]
        bad = [s for s in statuses if s not in Status.__members__.values()]
        if bad or not statuses:
            raise BadRequestError(f"status must be among {', '.join(s.value for s in Status)} (comma-separated)")
        stmt = stmt.where(instructions.c.status.in_(statuses))
    if "adapter" in query:
        if not _ADAPTER_RE.match(query["adapter"]):
            raise BadRequestError("adapter must be an adapter name such as iso20022_bank (see `gateway adapters list`)")
        stmt = stmt.where(instructions.c.adapter == query["adapter"])
    start = date_bound("created_from", query["created_from"], False) if "created_from" in query else None
    end = date_bound("created_to", query["created_to"], True) if "created_to" in query else None
    # created_from after created_to is a range with nothing in it: an empty page, as the OpenAPI document
    # (which cannot compare two parameters) lets a client expect
    if start is not None:
        stmt = stmt.where(instructions.c.created_at >= start)
    if end is not None:
        stmt = stmt.where(instructions.c.created_at <= end)
    limit = page_limit(query)
    cursor = page_cursor(query, INSTRUCTION_ID_RE)
    if cursor:
        stmt = stmt.where(instructions.c.id < cursor)
    return stmt.order_by(instructions.c.id.desc()).limit(limit + 1), limit


@routes.get("/v1/instructions")
async def list_instructions(request: web.Request) -> web.Response:
    """This business unit's instructions, newest first, filtered, cursor-paginated."""
    rt = request.app[SERVICES]
    principal = await authenticate(request, "instructions")
    stmt, limit = list_query(principal.business_unit_id, request.query)
    async with rt.engine.connect() as conn:
        rows = (await conn.execute(stmt)).mappings().all()
    items = [public_view(r) for r in rows[:limit]]
    next_cursor = items[-1]["id"] if len(rows) > limit else None
    return web.json_response({"items": items, "next_cursor": next_cursor})


async def _refused_cancel_is_latest(conn: AsyncConnection, instruction_id: str) -> bool:
    """Whether the instruction's newest event is a cancel request that was refused."""
    latest = (
        await conn.execute(
            select(instruction_events.c.status, instruction_events.c.applied)
            .where(instruction_events.c.instruction_id == instruction_id)
            .order_by(instruction_events.c.sequence.desc())
            .limit(1)
        )
    ).first()
    return latest is not None and latest.status == Status.CANCELLED.value and not latest.applied


@routes.post("/v1/instructions/{id}/cancel")
async def cancel_instruction(request: web.Request) -> web.Response:
    """Cancel before submission; afterwards the answer is 409 and nothing changes."""
    rt = request.app[SERVICES]
    principal = await authenticate(request, "instructions")
    instruction_id = _instruction_id(request)
    async with rt.engine.begin() as conn:
        row = await _row(conn, principal.business_unit_id, instruction_id)  # 404 for others' ids
        if await _refused_cancel_is_latest(conn, instruction_id):
            # The refusal is on record already: repeating it must not grow the history (one per status).
            raise ConflictError(f"an instruction in status {row['status']!r} can no longer be cancelled")
        rec = await repo.record_status(
            conn,
            instruction_id,
            Status.CANCELLED,
            source="api",
            now=rt.clock(),
            reason=f"cancelled by {principal.business_unit}",
        )
    rt.announce([rec.change])
    if not rec.decision:
        raise ConflictError(f"an instruction in status {rec.previous.value!r} can no longer be cancelled")
    return web.json_response(await _load(request, principal.business_unit_id, instruction_id))
