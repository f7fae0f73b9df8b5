"""``/v1/instruction-batches``: up to 10,000 instructions in one request, one transaction, one answer per item."""

from __future__ import annotations

import hashlib
import re
from typing import Any

from aiohttp import web
from sqlalchemy import func, select

from gateway.api.appkeys import SERVICES, SETTINGS
from gateway.api.auth import authenticate
from gateway.api.bodies import idempotency_key, read_body
from gateway.api.paging import allow_only, path_id
from gateway.api.problems import PROBLEM_BASE
from gateway.collector import collector_paused
from gateway.config import default_settings
from gateway.contracts.safejson import DEFAULT_LIMITS, decode_json, plain_text
from gateway.contracts.versions import VERSION_HEADER, negotiate, requested_version
from gateway.domain.ids import new_id
from gateway.errors import (
    BadRequestError,
    ContractError,
    DuplicateReferenceError,
    FieldError,
    GatewayError,
    IdempotencyConflictError,
    NotFoundError,
    ServiceUnavailableError,
    UnsupportedMediaTypeError,
)
from gateway.intake.batch import MAX_ITEMS, prepare
from gateway.store.intake import GroupResult, IntakeGroup, IntakeOutcome, IntakeResult
from gateway.store.repo import Principal
from gateway.store.tables import instruction_batches, instructions

__all__ = ["BATCH_ID_RE", "problem_body", "routes", "submit_group"]

routes = web.RouteTableDef()

BATCH_ID_RE = re.compile(r"^bat_[0-9A-Z]{26}$")
_FLAG = {"true": True, "false": False}


def problem_body(exc: GatewayError) -> dict[str, Any]:
    """``exc`` as the problem+json document the problem middleware would answer (for one item of many)."""
    body: dict[str, Any] = {"type": PROBLEM_BASE + exc.slug, "title": exc.title, "status": exc.status}
    body["detail"] = exc.message
    if exc.errors:
        body["errors"] = [e.as_dict() for e in exc.errors]
    return body


def _duplicate(pointer: str, reference: str) -> DuplicateReferenceError:
    return DuplicateReferenceError(
        f"reference {reference!r} was already sent by this business unit",
        errors=[FieldError(f"{pointer}/reference", "duplicate reference")],
    )


async def submit_group(request: web.Request, group: IntakeGroup) -> GroupResult:
    """Hand a group to the writer; a store that refuses is a 503 with nothing accepted."""
    try:
        return await request.app[SERVICES].writer.submit_group(group)
    except RuntimeError as exc:
        raise ServiceUnavailableError(str(exc)) from None
    except Exception:
        raise ServiceUnavailableError("the store refused the write; nothing was accepted") from None


def _all_or_nothing(request: web.Request, doc: dict[str, Any]) -> bool:
    allow_only(request.query, "all_or_nothing")
    query = request.query.get("all_or_nothing")
    if query is not None and query not in _FLAG:
        raise BadRequestError("all_or_nothing must be true or false")
    body = doc.get("all_or_nothing")
    if body is not None and not isinstance(body, bool):
        raise ContractError(
            "all_or_nothing must be a boolean", errors=[FieldError("/all_or_nothing", "expected true or false")]
        )
    return bool(body) or _FLAG.get(query or "false", False)


def _instructions(doc: Any) -> list[Any]:
    if not isinstance(doc, dict):
        raise ContractError('send an object {"instructions": [...]}', errors=[FieldError("", "expected an object")])
    unknown = sorted(set(doc) - {"instructions", "all_or_nothing"})
    if unknown:
        raise ContractError(
            f"unknown member {unknown[0]!r}", errors=[FieldError(f"/{unknown[0]}", "not allowed in a batch")]
        )
    items = doc.get("instructions")
    if not isinstance(items, list):
        raise ContractError(
            "instructions must be an array of instruction documents",
            errors=[FieldError("/instructions", "expected an array")],
        )
    if not items:
        raise ContractError("a batch needs at least one instruction", errors=[FieldError("/instructions", "empty")])
    if len(items) > MAX_ITEMS:
        raise ContractError(
            f"a batch holds at most {MAX_ITEMS} instructions, this one has {len(items)}; split it",
            errors=[FieldError("/instructions", f"more than {MAX_ITEMS} items ({len(items)})")],
        )
    return items


@routes.post("/v1/instruction-batches")
async def create_batch(request: web.Request) -> web.Response:
    """Accept up to 10,000 instructions: each validated on its own, all stored in ONE transaction, 202."""
    principal = await authenticate(request, "instructions")
    key = idempotency_key(request)
    if request.content_type != "application/json":
        raise UnsupportedMediaTypeError(f"send the body as application/json, not {request.content_type or 'nothing'}")
    settings = request.app.get(SETTINGS) or default_settings()
    raw = await read_body(request.clone(client_max_size=settings.intake.batch_max_body_bytes))
    with collector_paused():
        return await _take_in(request, principal, key, raw)


async def _take_in(request: web.Request, principal: Principal, key: str, raw: bytes) -> web.Response:
    """The batch ``raw``: decoded, each item prepared, the group written; the answer."""
    rt = request.app[SERVICES]
    doc = decode_json(raw, DEFAULT_LIMITS)
    docs = _instructions(doc)
    all_or_nothing = _all_or_nothing(request, doc)
    now = rt.clock()
    contract = negotiate(
        rt.contracts,
        "instruction",
        requested=requested_version(request.headers.get(VERSION_HEADER), request.headers.get("Content-Type")),
        pinned=principal.default_contract_version,
        now=now,
    )
    version = contract.version
    batch_id = new_id("bat")
    prepared = await prepare(
        rt.contracts,
        rt.codec,
        docs,
        version=version,
        business_unit_id=principal.business_unit_id,
        submitted_by=principal.key_id,
        group_id=batch_id,
        now=now,
        plain_text=plain_text(raw),
    )
    refused_early = bool(prepared.problems)
    if all_or_nothing and refused_early:
        raise _refusal(prepared.problems)

    def answer(results: list[IntakeResult]) -> tuple[int, dict[str, Any]]:
        items: list[dict[str, Any]] = [{"index": i, "problem": problem_body(p)} for i, p in prepared.problems.items()]
        for item, index, result in zip(prepared.items, prepared.index, results, strict=True):
            if result.outcome is IntakeOutcome.CREATED:
                items.append({"index": index, **item.response})
            else:
                reference = item.instruction["reference"]
                items.append({"index": index, "problem": problem_body(_duplicate(f"/instructions/{index}", reference))})
        items.sort(key=lambda entry: entry["index"])
        accepted = sum("id" in entry for entry in items)
        body = {
            "id": batch_id,
            "created_at": now.isoformat(),
            "accepted": accepted,
            "refused": len(items) - accepted,
            "all_or_nothing": all_or_nothing,
            "items": items,
        }
        return 202, body

    hash_source = b"%s\n%d\n" % (version.encode(), all_or_nothing) + raw
    group = IntakeGroup(
        id=batch_id,
        business_unit_id=principal.business_unit_id,
        idempotency_key=key,
        request_hash=hashlib.sha256(hash_source).hexdigest(),
        items=prepared.items,
        answer=answer,
        now=now,
        all_or_nothing=all_or_nothing,
    )
    result = await submit_group(request, group)
    if result.outcome is IntakeOutcome.KEY_CONFLICT:
        raise IdempotencyConflictError("this Idempotency-Key was used before with a different body; use a new key")
    if result.outcome is IntakeOutcome.REFUSED:
        problems = dict(prepared.problems)
        for item, index, item_result in zip(prepared.items, prepared.index, result.items, strict=True):
            if item_result.outcome is not IntakeOutcome.CREATED:
                problems[index] = _duplicate(f"/instructions/{index}", item.instruction["reference"])
        raise _refusal(problems)
    body = result.response or {}
    if result.outcome is IntakeOutcome.CREATED:
        for outcome in ("created", "refused"):
            count = body["accepted"] if outcome == "created" else body["refused"]
            if count:
                rt.metrics.intake.labels(f"batch_{outcome}").inc(count)
    headers = {"Location": f"/v1/instruction-batches/{body['id']}", VERSION_HEADER: version}
    headers.update(contract.lifecycle_headers())
    if result.outcome is IntakeOutcome.REPLAYED:
        headers["Idempotent-Replayed"] = "true"
    if result.response_text is not None:  # the text stored with the batch: the same bytes, not encoded twice
        return web.json_response(text=result.response_text, status=result.status_code, headers=headers)
    return web.json_response(body, status=result.status_code, headers=headers)


def _refusal(problems: dict[int, GatewayError]) -> ContractError:
    """The 422 of an all-or-nothing batch with refused items: every item's failing fields, nothing stored."""
    errors = [e for _, p in sorted(problems.items()) for e in p.errors]
    first = errors[0] if errors else FieldError("/instructions", "refused")
    return ContractError(
        f"{len(problems)} instruction(s) refused and all_or_nothing was asked: nothing was stored; "
        f"first: {first.pointer}: {first.message}",
        errors=errors,
    )


@routes.get("/v1/instruction-batches/{id}")
async def get_batch(request: web.Request) -> web.Response:
    """A batch: when it came, how many instructions it holds, and how many are in each status now."""
    rt = request.app[SERVICES]
    principal = await authenticate(request, "instructions")
    allow_only(request.query)
    value = request.match_info["id"]
    batch_id = path_id(value, BATCH_ID_RE, f"no batch {value!r}")
    async with rt.engine.connect() as conn:
        row = (
            await conn.execute(
                select(instruction_batches.c.id, instruction_batches.c.created_at, instruction_batches.c.count).where(
                    instruction_batches.c.id == batch_id,
                    instruction_batches.c.business_unit_id == principal.business_unit_id,
                )
            )
        ).first()
        if row is None:
            raise NotFoundError(f"no batch {batch_id!r}")
        counts = (
            await conn.execute(
                select(instructions.c.status, func.count())
                .where(instructions.c.batch_id == batch_id)
                .group_by(instructions.c.status)
            )
        ).all()
    body = {
        "id": row.id,
        "created_at": row.created_at.isoformat(),
        "count": row.count,
        "by_status": {status: n for status, n in sorted(counts)},
    }
    return web.json_response(body)
