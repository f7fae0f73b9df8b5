"""``/v1/instructions``: intake, read, list, cancel."""

from __future__ import annotations

import hashlib
import json
import re
from datetime import UTC, date, datetime, time
from typing import Any

from aiohttp import web
from sqlalchemy import select

from gateway.api.auth import authenticate
from gateway.api.keys import RUNTIME
from gateway.api.paging import page_cursor, page_limit
from gateway.errors import (
    BadRequestError,
    ConflictError,
    DuplicateReferenceError,
    FieldError,
    IdempotencyConflictError,
    NotFoundError,
    ServiceUnavailableError,
    UnsupportedMediaTypeError,
)
from gateway.ids import new_id
from gateway.instruction import parse_instruction
from gateway.status import Decision, Status
from gateway.store import repo
from gateway.store.codec import event_view, public_view
from gateway.store.intake import IntakeItem, IntakeOutcome
from gateway.store.tables import instruction_events, instructions
from gateway.versioning import VERSION_HEADER, negotiate, parse_as_latest, requested_version

__all__ = ["routes"]

routes = web.RouteTableDef()

_KEY_RE = re.compile(r"^[\x21-\x7e]{1,255}$")
INSTRUCTION_ID_RE = re.compile(r"^ins_[0-9A-Z]{26}$")
_APPLIED = Decision(True, "applied")


async def read_json(request: web.Request) -> Any:
    """The JSON body, or a 4xx problem (wrong media type, too large, malformed)."""
    if request.content_type != "application/json":
        raise UnsupportedMediaTypeError(f"send the body as application/json, not {request.content_type or 'nothing'}")
    raw = await request.read()  # aiohttp enforces client_max_size → 413
    try:
        return json.loads(raw)
    except UnicodeDecodeError:
        raise BadRequestError("request body is not UTF-8") from None
    except json.JSONDecodeError as exc:
        raise BadRequestError(f"malformed JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None


def _canonical_hash(doc: Any, version: str) -> str:
    canon = json.dumps([version, doc], sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canon.encode()).hexdigest()


@routes.post("/v1/instructions")
async def create_instruction(request: web.Request) -> web.Response:
    """Accept one instruction: validate, store durably (group commit), answer 202."""
    rt = request.app[RUNTIME]
    principal = await authenticate(request, "instructions")
    key = request.headers.get("Idempotency-Key", "")
    if not _KEY_RE.match(key):
        raise BadRequestError("send an Idempotency-Key header (1-255 printable ASCII characters, e.g. a UUID)")
    doc = await read_json(request)
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
    data = parse_as_latest(rt.contracts, "instruction", version, doc, parse_instruction)
    instruction_id = new_id("ins")
    response = {
        "id": instruction_id,
        "reference": data.reference,
        "status": Status.RECEIVED.value,
        "created_at": now.isoformat(),
    }
    item = IntakeItem(
        business_unit_id=principal.business_unit_id,
        idempotency_key=key,
        request_hash=_canonical_hash(doc, version),
        instruction=rt.codec.new_row(
            instruction_id, principal.business_unit_id, data, version, now, submitted_by=principal.key_id
        ),
        event=repo.event_row(instruction_id, 1, None, Status.RECEIVED, _APPLIED, source="api", occurred_at=now),
        job={
            "instruction_id": instruction_id,
            "kind": "dispatch",
            "available_at": now,
            "attempts": 0,
            "created_at": now,
        },
        response=response,
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
    if not INSTRUCTION_ID_RE.match(value):
        raise NotFoundError(f"no instruction {value!r}")
    return value


async def _load(request: web.Request, business_unit_id: str, instruction_id: str) -> dict[str, Any]:
    rt = request.app[RUNTIME]
    async with rt.engine.connect() as conn:
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
        events = (
            (
                await conn.execute(
                    select(instruction_events)
                    .where(instruction_events.c.instruction_id == instruction_id)
                    .order_by(instruction_events.c.sequence)
                )
            )
            .mappings()
            .all()
        )
    view = public_view(row)
    view["events"] = [event_view(e, row["reference"]) for e in events]
    view["ledger_entries"] = f"/v1/ledger/entries?instruction_id={instruction_id}"
    return view


@routes.get("/v1/instructions/{id}")
async def get_instruction(request: web.Request) -> web.Response:
    """One instruction with its full event history."""
    principal = await authenticate(request, "instructions")
    return web.json_response(await _load(request, principal.business_unit_id, _instruction_id(request)))


def _parse_bound(name: str, value: str, end: bool) -> datetime:
    try:
        if len(value) == 10:
            day = date.fromisoformat(value)
            return datetime.combine(day, time.max if end else time.min, tzinfo=UTC)
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise BadRequestError(f"{name} must be an ISO 8601 date or date-time") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@routes.get("/v1/instructions")
async def list_instructions(request: web.Request) -> web.Response:
    """This business unit's instructions, newest first, filtered, cursor-paginated."""
    rt = request.app[RUNTIME]
    principal = await authenticate(request, "instructions")
    q = request.query
    query = select(instructions).where(instructions.c.business_unit_id == principal.business_unit_id)
    if "status" in q:
        statuses = [s for s in q["status"].split(",") if s]
        bad = [s for s in statuses if s not in Status.__members__.values()]
        if bad or not statuses:
            raise BadRequestError(f"status must be among {', '.join(s.value for s in Status)}")
        query = query.where(instructions.c.status.in_(statuses))
    if "created_from" in q:
        query = query.where(instructions.c.created_at >= _parse_bound("created_from", q["created_from"], False))
    if "created_to" in q:
        query = query.where(instructions.c.created_at <= _parse_bound("created_to", q["created_to"], True))
    limit = page_limit(q)
    cursor = page_cursor(q, INSTRUCTION_ID_RE)
    if cursor:
        query = query.where(instructions.c.id < cursor)
    query = query.order_by(instructions.c.id.desc()).limit(limit + 1)
    async with rt.engine.connect() as conn:
        rows = (await conn.execute(query)).mappings().all()
    items = [public_view(r) for r in rows[:limit]]
    next_cursor = items[-1]["id"] if len(rows) > limit else None
    return web.json_response({"items": items, "next_cursor": next_cursor})


@routes.post("/v1/instructions/{id}/cancel")
async def cancel_instruction(request: web.Request) -> web.Response:
    """Cancel before submission; afterwards the answer is 409 and nothing changes."""
    rt = request.app[RUNTIME]
    principal = await authenticate(request, "instructions")
    instruction_id = _instruction_id(request)
    await _load(request, principal.business_unit_id, instruction_id)  # 404 for others' ids
    async with rt.engine.begin() as conn:
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
