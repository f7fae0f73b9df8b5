"""``/v1/receivables`` (business units register invoices to distributors) and ``/v1/receipts`` (finance's queue).

A receivable is registered once per invoice number and business unit (a second
one is 409); ``Idempotency-Key`` replays the first answer, as for instructions.
Receipts are made from the booked credits of imported statements
(``gateway.store.receivables``); what the matching rules could not place waits
for finance: assign it to invoices, leave it on a distributor's account, or
refund it through a payout instruction that goes through normal intake (a
deterministic reference and idempotency key, so a retried refund pays once).
See docs/credit-and-rebates.md.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import date
from decimal import Decimal
from typing import Any

from aiohttp import web
from jsonschema import Draft202012Validator
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from gateway.api.appkeys import SERVICES
from gateway.api.auth import authenticate
from gateway.api.bodies import idempotency_key, read_json
from gateway.api.paging import PAGE_PARAMETERS, allow_only, page_cursor, page_limit, path_id
from gateway.contracts.registry import check_body
from gateway.contracts.versions import parse_as_latest
from gateway.domain.accounts import IbanAccount, mask
from gateway.domain.ids import new_id
from gateway.domain.instruction import parse_instruction
from gateway.domain.money import Money
from gateway.domain.receivables import DISTRIBUTOR_RE, ReceiptState, ReceivableStatus, structured_reference
from gateway.errors import (
    BadRequestError,
    ConflictError,
    ContractError,
    CurrencyError,
    DomainError,
    FieldError,
    IdempotencyConflictError,
    NotFoundError,
    ServiceUnavailableError,
)
from gateway.store import receivables as store
from gateway.store.creditlines import OPEN_STATUSES, convert_reservation, get_reservation
from gateway.store.intake import IntakeItem, IntakeOutcome
from gateway.store.repo import Principal
from gateway.store.tables import receipts, receivables

__all__ = [
    "ASSIGN_SCHEMA",
    "ON_ACCOUNT_SCHEMA",
    "RECEIPT_ID_RE",
    "RECEIVABLE_ID_RE",
    "RECEIVABLE_SCHEMA",
    "REFUND_SCHEMA",
    "money_of",
    "request_hash",
    "routes",
]

routes = web.RouteTableDef()

RECEIVABLE_ID_RE = re.compile(r"^rcv_[0-9A-Z]{26}$")
RECEIPT_ID_RE = re.compile(r"^rct_[0-9A-Z]{26}$")
_INVOICE = r"^[A-Za-z0-9][A-Za-z0-9/._-]{0,34}$"
_AMOUNT = {
    "type": "object",
    "additionalProperties": False,
    "required": ["value", "currency"],
    "properties": {
        "value": {"type": "string", "pattern": r"^[0-9]{1,15}(\.[0-9]{1,4})?$", "description": "decimal amount"},
        "currency": {"type": "string", "pattern": "^[A-Z]{3}$", "description": "ISO 4217 code"},
    },
}
RECEIVABLE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["invoice_number", "distributor", "amount", "due_date"],
    "properties": {
        "invoice_number": {"type": "string", "pattern": _INVOICE, "description": "unique per business unit"},
        "distributor": {"type": "string", "pattern": DISTRIBUTOR_RE.pattern},
        "amount": _AMOUNT,
        "due_date": {"type": "string", "pattern": r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$", "description": "YYYY-MM-DD"},
        "structured_reference": {
            "type": "string",
            "minLength": 5,
            "maxLength": 35,
            "description": "ISO 11649 creditor reference (RF + check digits), spaces allowed",
        },
        "payer_iban": {
            "type": "string",
            "minLength": 15,
            "maxLength": 42,
            "description": "the account it will come from",
        },
        "reservation_id": {"type": "string", "pattern": "^crr_[0-9A-Z]{26}$", "description": "the credit reservation"},
    },
}
ASSIGN_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["allocations"],
    "properties": {
        "allocations": {
            "type": "array",
            "minItems": 1,
            "maxItems": 50,
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["receivable_id", "amount"],
                "properties": {
                    "receivable_id": {"type": "string", "pattern": RECEIVABLE_ID_RE.pattern},
                    "amount": _AMOUNT,
                },
            },
        }
    },
}
ON_ACCOUNT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["distributor"],
    "properties": {"distributor": {"type": "string", "pattern": DISTRIBUTOR_RE.pattern}},
}
REFUND_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["debtor", "creditor"],
    "properties": {
        "debtor": {"type": "object", "description": "the enterprise's account it is paid from (instruction `debtor`)"},
        "creditor": {"type": "object", "description": "the payer to pay back (instruction `creditor`)"},
    },
}
_RECEIVABLE = Draft202012Validator(RECEIVABLE_SCHEMA)
_ASSIGN = Draft202012Validator(ASSIGN_SCHEMA)
_ON_ACCOUNT = Draft202012Validator(ON_ACCOUNT_SCHEMA)
_REFUND = Draft202012Validator(REFUND_SCHEMA)
_FINANCE_SCOPES = frozenset({"finance", "admin"})


def request_hash(request: web.Request, body: Any) -> str:
    """What makes two requests with one key the same request: the path and the body."""
    canon = json.dumps([request.path, body], sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canon.encode()).hexdigest()


def money_of(amount: dict[str, str], pointer: str) -> Money:
    """An ``{value, currency}`` body field as ``Money``; 422 at ``pointer`` for a bad currency or too many decimals."""
    try:
        money = Money(Decimal(amount["value"]), amount["currency"])
    except CurrencyError as exc:
        at = f"{pointer}/currency"
        raise ContractError(f"{at}: {exc.message}", errors=[FieldError(at, exc.message)]) from None
    except DomainError as exc:
        at = f"{pointer}/value"
        raise ContractError(f"{at}: {exc.message}", errors=[FieldError(at, exc.message)]) from None
    if money.minor <= 0:
        raise ContractError(f"{pointer}/value: must be more than zero", errors=[FieldError(f"{pointer}/value", "zero")])
    return money


def _due_date(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ContractError(
            f"/due_date: {value!r} is not a date", errors=[FieldError("/due_date", "not a date (YYYY-MM-DD)")]
        ) from None


def _field_error(pointer: str, message: str) -> ContractError:
    return ContractError(f"{pointer}: {message}", errors=[FieldError(pointer, message)])


async def _check_reservation(conn: Any, principal: Principal, body: dict[str, Any], money: Money) -> Any:
    """The pending reservation a receivable turns; 409 at ``/reservation_id`` if it cannot."""
    pointer = [FieldError("/reservation_id", "not a pending reservation for this receivable")]
    row = await get_reservation(conn, body["reservation_id"])
    if row is None or row["business_unit_id"] != principal.business_unit_id:
        raise ConflictError(f"no credit reservation {body['reservation_id']!r} of this business unit", errors=pointer)
    if row["distributor"] != body["distributor"] or row["currency"] != money.currency:
        raise ConflictError(
            f"the reservation is for {row['distributor']} in {row['currency']}, not this receivable", errors=pointer
        )
    if row["state"] != "pending":
        raise ConflictError(f"credit reservation {row['id']} is {row['state']}; reserve again", errors=pointer)
    return row


@routes.post("/v1/receivables")
async def create_receivable(request: web.Request) -> web.Response:
    """Register one invoice to a distributor: stored, booked and counted on the credit line in one transaction."""
    rt = request.app[SERVICES]
    principal = await authenticate(request, "instructions", "finance")
    key = idempotency_key(request)
    body = await read_json(request)
    check_body(_RECEIVABLE, body)
    money = money_of(body["amount"], "/amount")
    due = _due_date(body["due_date"])
    reference = None
    if "structured_reference" in body:
        try:
            reference = structured_reference(body["structured_reference"])
        except DomainError as exc:
            raise _field_error("/structured_reference", exc.message) from None
    payer = None
    if "payer_iban" in body:
        payer = mask(IbanAccount.parse(body["payer_iban"], "/payer_iban").iban)
    digest = request_hash(request, body)
    now = rt.clock()
    row = {
        "id": new_id("rcv"),
        "business_unit_id": principal.business_unit_id,
        "business_unit": principal.business_unit,
        "invoice_number": body["invoice_number"],
        "distributor": body["distributor"],
        "currency": money.currency,
        "amount_minor": money.minor,
        "paid_minor": 0,
        "status": ReceivableStatus.OPEN.value,
        "due_date": due,
        "structured_reference": reference,
        "payer_account": payer,
        "reservation_id": body.get("reservation_id"),
        "created_at": now,
        "updated_at": now,
    }
    for attempt in (1, 2):
        try:
            async with rt.engine.begin() as conn:
                replay = await store.replayed_response(conn, principal.business_unit_id, key, digest)
                if replay is not None:
                    return web.json_response(replay[1], status=replay[0], headers={"Idempotent-Replayed": "true"})
                reservation = None
                if row["reservation_id"]:
                    reservation = await _check_reservation(conn, principal, body, money)
                await store.insert_receivable(conn, row, now)
                if reservation is not None and not await convert_reservation(conn, reservation, row["id"], now):
                    raise ConflictError(f"credit reservation {reservation['id']} changed meanwhile; reserve again")
                view = store.receivable_view(row, now.date())
                await store.remember_response(conn, principal.business_unit_id, key, digest, 201, view, now)
            return web.json_response(view, status=201, headers={"Location": f"/v1/receivables/{row['id']}"})
        except IntegrityError:
            if attempt == 2:  # a concurrent request with the same key or invoice number committed first
                raise ConflictError("a concurrent request registered this invoice or used this key; retry") from None
    raise ServiceUnavailableError("the receivable could not be stored; nothing was accepted")  # pragma: no cover


def _scope_filter(principal: Principal) -> str | None:
    """The business unit whose receivables a key sees: finance and admin see every one."""
    return None if _FINANCE_SCOPES & principal.scopes else principal.business_unit_id


@routes.get("/v1/receivables/{id}")
async def get_receivable(request: web.Request) -> web.Response:
    """One receivable (another business unit's is 404)."""
    rt = request.app[SERVICES]
    principal = await authenticate(request, "instructions", "finance")
    value = request.match_info["id"]
    receivable_id = path_id(value, RECEIVABLE_ID_RE, f"no receivable {value!r}")
    stmt = select(receivables).where(receivables.c.id == receivable_id)
    bu = _scope_filter(principal)
    if bu is not None:
        stmt = stmt.where(receivables.c.business_unit_id == bu)
    async with rt.engine.connect() as conn:
        row = (await conn.execute(stmt)).mappings().first()
    if row is None:
        raise NotFoundError(f"no receivable {receivable_id!r}")
    return web.json_response(store.receivable_view(row, rt.clock().date()))


RECEIVABLE_FILTERS = ("distributor", "status", "overdue", *PAGE_PARAMETERS)


@routes.get("/v1/receivables")
async def list_receivables(request: web.Request) -> web.Response:
    """Receivables, newest first, filtered by distributor, status and overdue; cursor-paginated."""
    rt = request.app[SERVICES]
    principal = await authenticate(request, "instructions", "finance")
    query = request.query
    allow_only(query, *RECEIVABLE_FILTERS)
    stmt = select(receivables)
    bu = _scope_filter(principal)
    if bu is not None:
        stmt = stmt.where(receivables.c.business_unit_id == bu)
    if "distributor" in query:
        if not DISTRIBUTOR_RE.fullmatch(query["distributor"]):
            raise BadRequestError("distributor must be 1-64 characters [A-Za-z0-9._-]")
        stmt = stmt.where(receivables.c.distributor == query["distributor"])
    if "status" in query:
        statuses = [s for s in query["status"].split(",") if s]
        known = [s.value for s in ReceivableStatus]
        if not statuses or any(s not in known for s in statuses):
            raise BadRequestError(f"status must be among {', '.join(known)} (comma-separated)")
        stmt = stmt.where(receivables.c.status.in_(statuses))
    today = rt.clock().date()
    if "overdue" in query:
        if query["overdue"] not in ("true", "false"):
            raise BadRequestError("overdue must be true or false")
        late = (receivables.c.status.in_(OPEN_STATUSES)) & (receivables.c.due_date < today)
        stmt = stmt.where(late if query["overdue"] == "true" else ~late)
    limit = page_limit(query)
    cursor = page_cursor(query, RECEIVABLE_ID_RE)
    if cursor:
        stmt = stmt.where(receivables.c.id < cursor)
    async with rt.engine.connect() as conn:
        rows = (await conn.execute(stmt.order_by(receivables.c.id.desc()).limit(limit + 1))).mappings().all()
    items = [store.receivable_view(r, today) for r in rows[:limit]]
    return web.json_response({"items": items, "next_cursor": items[-1]["id"] if len(rows) > limit else None})


# -- receipts (scope finance) ------------------------------------------------------------------

RECEIPT_FILTERS = ("state", "distributor", *PAGE_PARAMETERS)


def _receipt_id(request: web.Request) -> str:
    value = request.match_info["id"]
    return path_id(value, RECEIPT_ID_RE, f"no receipt {value!r}")


async def _receipt(request: web.Request, receipt_id: str) -> dict[str, Any]:
    rt = request.app[SERVICES]
    async with rt.engine.connect() as conn:
        row = (await conn.execute(select(receipts).where(receipts.c.id == receipt_id))).mappings().first()
        if row is None:
            raise NotFoundError(f"no receipt {receipt_id!r}")
        return (await store.receipt_view(conn, [row]))[0]


@routes.get("/v1/receipts")
async def list_receipts(request: web.Request) -> web.Response:
    """Receipts, oldest first (a queue), by state (``unmatched``: what waits for finance) and distributor."""
    rt = request.app[SERVICES]
    await authenticate(request, "finance")
    query = request.query
    allow_only(query, *RECEIPT_FILTERS)
    stmt = select(receipts)
    if "state" in query:
        known = [s.value for s in ReceiptState]
        if query["state"] not in known:
            raise BadRequestError(f"state must be one of {', '.join(known)}")
        stmt = stmt.where(receipts.c.state == query["state"])
    if "distributor" in query:
        if not DISTRIBUTOR_RE.fullmatch(query["distributor"]):
            raise BadRequestError("distributor must be 1-64 characters [A-Za-z0-9._-]")
        stmt = stmt.where(receipts.c.distributor == query["distributor"])
    limit = page_limit(query)
    cursor = page_cursor(query, RECEIPT_ID_RE)
    if cursor:
        stmt = stmt.where(receipts.c.id > cursor)
    async with rt.engine.connect() as conn:
        rows = (await conn.execute(stmt.order_by(receipts.c.id).limit(limit + 1))).mappings().all()
        items = await store.receipt_view(conn, rows[:limit])
    return web.json_response({"items": items, "next_cursor": items[-1]["id"] if len(rows) > limit else None})


@routes.get("/v1/receipts/{id}")
async def get_receipt(request: web.Request) -> web.Response:
    """One receipt with what it was applied to."""
    await authenticate(request, "finance")
    return web.json_response(await _receipt(request, _receipt_id(request)))


@routes.post("/v1/receipts/{id}/assign")
async def assign_receipt(request: web.Request) -> web.Response:
    """Apply (what is left of) a receipt to receivables, with amounts; the rest stays on account."""
    rt = request.app[SERVICES]
    await authenticate(request, "finance")
    receipt_id = _receipt_id(request)
    body = await read_json(request)
    check_body(_ASSIGN, body)
    parts = []
    for i, part in enumerate(body["allocations"]):
        money = money_of(part["amount"], f"/allocations/{i}/amount")
        parts.append((part["receivable_id"], money.minor, money.currency))
    async with rt.engine.begin() as conn:
        receipt = (await conn.execute(select(receipts.c.currency).where(receipts.c.id == receipt_id))).first()
        if receipt is None:
            raise NotFoundError(f"no receipt {receipt_id!r}")
        for i, (_, _, currency) in enumerate(parts):
            if currency != receipt.currency:
                raise _field_error(f"/allocations/{i}/amount/currency", f"the receipt is in {receipt.currency}")
        await store.assign(conn, receipt_id, [(r, m) for r, m, _ in parts], rt.clock())
    return web.json_response(await _receipt(request, receipt_id))


@routes.post("/v1/receipts/{id}/on-account")
async def receipt_on_account(request: web.Request) -> web.Response:
    """Leave (what is left of) a receipt on a distributor's account."""
    rt = request.app[SERVICES]
    await authenticate(request, "finance")
    receipt_id = _receipt_id(request)
    body = await read_json(request)
    check_body(_ON_ACCOUNT, body)
    async with rt.engine.begin() as conn:
        await store.put_on_account(conn, receipt_id, body["distributor"], rt.clock())
    return web.json_response(await _receipt(request, receipt_id))


def refund_reference(receipt_id: str) -> str:
    """The payout instruction's reference for a receipt's refund (deterministic: one per receipt)."""
    return f"RFD-{receipt_id[4:]}"


@routes.post("/v1/receipts/{id}/refund")
async def refund_receipt(request: web.Request) -> web.Response:
    """Pay (what is left of) a receipt back: a ``refund`` instruction through normal intake, then booked.

    The instruction's reference and idempotency key derive from the receipt, so a
    retry (after a timeout, a crash between the two steps) finds the instruction
    already accepted and completes the booking; it never pays twice.
    """
    rt = request.app[SERVICES]
    principal = await authenticate(request, "finance")
    receipt_id = _receipt_id(request)
    body = await read_json(request)
    check_body(_REFUND, body)
    async with rt.engine.connect() as conn:
        row = (await conn.execute(select(receipts).where(receipts.c.id == receipt_id))).mappings().first()
    if row is None:
        raise NotFoundError(f"no receipt {receipt_id!r}")
    if row["state"] == ReceiptState.REFUNDED.value:
        return web.json_response(await _receipt(request, receipt_id), headers={"Idempotent-Replayed": "true"})
    if row["state"] not in (ReceiptState.UNMATCHED.value, ReceiptState.ON_ACCOUNT.value) or not row["unapplied_minor"]:
        raise ConflictError(f"receipt {receipt_id} is {row['state']} with nothing left to refund")
    amount = Money.from_minor(row["unapplied_minor"], row["currency"])
    doc = {
        "reference": refund_reference(receipt_id),
        "type": "refund",
        "amount": str(amount.amount),
        "currency": amount.currency,
        "debtor": body["debtor"],
        "creditor": body["creditor"],
        "remittance_information": {"unstructured": f"Refund of payment {receipt_id}"},
    }
    version = rt.contracts.versions("instruction")[-1]
    rt.contracts.validate("instruction", doc, version)
    data = parse_as_latest(rt.contracts, "instruction", version, doc, parse_instruction)
    now = rt.clock()
    instruction_id = new_id("ins")
    response = {"id": instruction_id, "reference": data.reference, "status": "received", "created_at": now.isoformat()}
    canon = json.dumps([version, doc], sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    item = IntakeItem.received(
        business_unit_id=principal.business_unit_id,
        idempotency_key=f"receipt-refund:{receipt_id}",
        request_hash=hashlib.sha256(canon.encode()).hexdigest(),
        instruction=rt.codec.new_row(
            instruction_id, principal.business_unit_id, data, version, now, submitted_by=principal.key_id
        ),
        response=response,
        now=now,
    )
    try:
        result = await rt.writer.submit(item)
    except Exception:
        raise ServiceUnavailableError("the store refused the refund instruction; nothing was accepted") from None
    if result.outcome is IntakeOutcome.KEY_CONFLICT:
        raise IdempotencyConflictError(
            f"receipt {receipt_id} was already being refunded to another account; use the same debtor and creditor"
        )
    if result.outcome is IntakeOutcome.DUPLICATE_REFERENCE:
        raise ConflictError(f"reference {data.reference!r} is already used by another instruction")
    accepted = (result.response or response)["id"]
    async with rt.engine.begin() as conn:
        await store.mark_refunded(conn, receipt_id, principal.business_unit, accepted, amount.minor, now)
    return web.json_response(await _receipt(request, receipt_id))
