"""``/v1/credit-lines/{distributor}``: the credit the enterprise gives a distributor, and reservations on it.

``PUT`` sets a line's limit in one currency (scope finance or admin); ``GET``
shows every line of the distributor with its used and available amounts.
``POST …/reservations`` asks before shipping on credit and always answers 200
with a ``decision``: ``approved`` (with the reservation, which expires unless a
receivable is registered with its id) or ``declined`` with the ``reason``
(``limit``, ``overdue``, ``no_credit_line``) and the amount ``available``. A
decline is an answer, not an error: the request was valid. See
docs/credit-and-rebates.md.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from aiohttp import web
from jsonschema import Draft202012Validator
from sqlalchemy.exc import IntegrityError

from gateway.api.appkeys import SERVICES, SETTINGS
from gateway.api.auth import authenticate
from gateway.api.bodies import idempotency_key, read_json
from gateway.api.paging import allow_only
from gateway.api.receivables import money_of, request_hash
from gateway.contracts.registry import check_body
from gateway.contracts.safejson import TEXT_PATTERN
from gateway.domain.ids import new_id
from gateway.domain.money import Money
from gateway.domain.receivables import DISTRIBUTOR_RE
from gateway.errors import ConflictError, ContractError, CurrencyError, DomainError, FieldError, NotFoundError
from gateway.store import creditlines
from gateway.store import receivables as receivables_store

__all__ = ["LINE_SCHEMA", "RESERVATION_SCHEMA", "routes"]

routes = web.RouteTableDef()

LINE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["currency", "limit"],
    "properties": {
        "currency": {"type": "string", "pattern": "^[A-Z]{3}$", "description": "ISO 4217 code"},
        "limit": {"type": "string", "pattern": r"^[0-9]{1,15}(\.[0-9]{1,4})?$", "description": "decimal amount"},
    },
}
RESERVATION_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["amount"],
    "properties": {
        "amount": {
            "type": "object",
            "additionalProperties": False,
            "required": ["value", "currency"],
            "properties": {
                "value": {"type": "string", "pattern": r"^[0-9]{1,15}(\.[0-9]{1,4})?$"},
                "currency": {"type": "string", "pattern": "^[A-Z]{3}$"},
            },
        },
        "order_reference": {
            "type": "string",
            "minLength": 1,
            "maxLength": 35,
            "pattern": TEXT_PATTERN,
            "description": "the order it is for",
        },
    },
}
_LINE = Draft202012Validator(LINE_SCHEMA)
_RESERVATION = Draft202012Validator(RESERVATION_SCHEMA)


def _distributor(request: web.Request) -> str:
    value = request.match_info["distributor"]
    if not DISTRIBUTOR_RE.fullmatch(value):
        raise NotFoundError(f"no distributor {value[:64]!r} (1-64 characters [A-Za-z0-9._-])")
    return value


@routes.put("/v1/credit-lines/{distributor}")
async def put_credit_line(request: web.Request) -> web.Response:
    """Create or change the distributor's limit in one currency; what is used stays."""
    rt = request.app[SERVICES]
    await authenticate(request, "finance")
    distributor = _distributor(request)
    allow_only(request.query)
    body = await read_json(request)
    check_body(_LINE, body)
    try:
        limit = Money(body["limit"], body["currency"])
    except CurrencyError as exc:
        raise ContractError(f"/currency: {exc.message}", errors=[FieldError("/currency", exc.message)]) from None
    except DomainError as exc:
        raise ContractError(f"/limit: {exc.message}", errors=[FieldError("/limit", exc.message)]) from None
    for attempt in (1, 2):
        try:
            async with rt.engine.begin() as conn:
                line = await creditlines.set_line(conn, distributor, limit.currency, limit.minor, rt.clock())
            return web.json_response(line.view())
        except IntegrityError:  # two PUTs creating the same line at once: the second one updates
            if attempt == 2:
                raise ConflictError("the credit line changed concurrently; send the PUT again") from None
    raise ConflictError("the credit line changed concurrently; send the PUT again")  # pragma: no cover


@routes.get("/v1/credit-lines/{distributor}")
async def get_credit_line(request: web.Request) -> web.Response:
    """The distributor's lines (one per currency): limit, open receivables, reserved, used, available."""
    rt = request.app[SERVICES]
    await authenticate(request, "finance", "instructions")
    distributor = _distributor(request)
    allow_only(request.query)
    async with rt.engine.connect() as conn:
        lines = await creditlines.lines_of(conn, distributor)
        overdue = await _overdue(request, conn, distributor)
    if not lines:
        raise NotFoundError(f"distributor {distributor!r} has no credit line")
    return web.json_response(
        {"distributor": distributor, "lines": [line.view() for line in lines], "blocked_by_overdue": overdue}
    )


async def _overdue(request: web.Request, conn: Any, distributor: str) -> dict[str, Any] | None:
    """The receivable that blocks new reservations (past due by more than the grace), if any."""
    rt = request.app[SERVICES]
    grace = request.app[SETTINGS].credit_lines.overdue_grace_days
    found = await creditlines.oldest_overdue(conn, distributor, rt.clock().date() - timedelta(days=grace))
    if found is None:
        return None
    return {"receivable_id": found.id, "invoice_number": found.invoice_number, "due_date": found.due_date.isoformat()}


@routes.post("/v1/credit-lines/{distributor}/reservations")
async def reserve_credit(request: web.Request) -> web.Response:
    """Approve (reserve) or decline credit for an order; 200 either way, with the decision."""
    rt = request.app[SERVICES]
    principal = await authenticate(request, "instructions", "finance")
    distributor = _distributor(request)
    allow_only(request.query)
    key = idempotency_key(request)
    body = await read_json(request)
    check_body(_RESERVATION, body)
    money = money_of(body["amount"], "/amount")
    digest = request_hash(request, body)
    ttl = request.app[SETTINGS].credit_lines.reservation_ttl_seconds
    for attempt in (1, 2):
        try:
            async with rt.engine.begin() as conn:
                replay = await receivables_store.replayed_response(conn, principal.business_unit_id, key, digest)
                if replay is not None:
                    return web.json_response(replay[1], status=replay[0], headers={"Idempotent-Replayed": "true"})
                now = rt.clock()
                decision = await _decide(request, conn, principal.business_unit_id, distributor, money, body, ttl)
                await receivables_store.remember_response(
                    conn, principal.business_unit_id, key, digest, 200, decision, now
                )
            return web.json_response(decision)
        except IntegrityError:
            if attempt == 2:
                raise ConflictError("a concurrent request used this Idempotency-Key; retry") from None
    raise ConflictError("a concurrent request used this Idempotency-Key; retry")  # pragma: no cover


async def _decide(
    request: web.Request,
    conn: Any,
    business_unit_id: str,
    distributor: str,
    money: Money,
    body: dict[str, Any],
    ttl: int,
) -> dict[str, Any]:
    rt = request.app[SERVICES]
    now = rt.clock()
    lines = await creditlines.lines_of(conn, distributor, money.currency)
    if not lines:
        return _declined("no_credit_line", f"{distributor} has no credit line in {money.currency}", 0, money.currency)
    overdue = await _overdue(request, conn, distributor)
    if overdue is not None:
        declined = _declined(
            "overdue",
            f"invoice {overdue['invoice_number']} was due on {overdue['due_date']} and is still open",
            lines[0].available_minor,
            money.currency,
        )
        declined["overdue"] = overdue
        return declined
    reservation_id = new_id("crr")
    approved = await creditlines.reserve(
        conn,
        reservation_id=reservation_id,
        distributor=distributor,
        currency=money.currency,
        amount_minor=money.minor,
        business_unit_id=business_unit_id,
        order_reference=body.get("order_reference"),
        expires_at=now + timedelta(seconds=ttl),
        now=now,
    )
    line = (await creditlines.lines_of(conn, distributor, money.currency))[0]
    if not approved:
        return _declined(
            "limit",
            f"only {creditlines.money_view(line.available_minor, money.currency)['value']} available",
            line.available_minor,
            money.currency,
        )
    row = await creditlines.get_reservation(conn, reservation_id)
    return {
        "decision": "approved",
        "reservation": creditlines.reservation_view(row),
        "available": creditlines.money_view(line.available_minor, money.currency),
    }


def _declined(reason: str, detail: str, available: int, currency: str) -> dict[str, Any]:
    return {
        "decision": "declined",
        "reason": reason,
        "detail": detail,
        "available": creditlines.money_view(available, currency),
    }
