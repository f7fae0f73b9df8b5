"""Payments: search, and one payment with its timeline, ledger entries, webhook deliveries and partner messages;
cancel, redeliver.

A business-unit key sees its own unit's payments only: another unit's payment is "not
found" (404), also when its URL is typed in. Finance and admin keys see every unit's.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from aiohttp import web
from sqlalchemy import select

from gateway.api.instructions import INSTRUCTION_ID_RE
from gateway.api.paging import date_bound
from gateway.api.webhooks import DELIVERY_ID_RE
from gateway.console.web import PREFIX, Page, can, page, redirect, unit_filter
from gateway.domain.errors import DomainError
from gateway.domain.money import Money, amount_text
from gateway.domain.status import Status
from gateway.errors import BadRequestError, ConflictError, NotFoundError
from gateway.finance import books
from gateway.store import repo
from gateway.store import webhooks as hooks
from gateway.store.codec import event_view, public_view
from gateway.store.partner_messages import messages_for
from gateway.store.tables import business_units, instruction_events, instructions

__all__ = ["routes"]

routes = web.RouteTableDef()

#: rows on one search page
PAGE_SIZE = 50
_FILTERS = ("q", "status", "partner", "business_unit", "currency", "amount_from", "amount_to", "from", "to")


def _scoped(query: Any, unit: str | None) -> Any:
    return query if unit is None else query.where(instructions.c.business_unit_id == unit)


@routes.get(PREFIX + "/payments")
@page("instructions", "finance", "admin")
async def search(p: Page) -> web.StreamResponse:
    """Newest first: reference or id, status, partner, business unit, currency and amount range, dates."""
    f = {name: p.request.query.get(name, "").strip()[:64] for name in _FILTERS}
    unit = unit_filter(p.session)
    query = _scoped(
        select(instructions, business_units.c.name.label("business_unit")).join(
            business_units, business_units.c.id == instructions.c.business_unit_id
        ),
        unit,
    )
    if f["q"]:
        column = instructions.c.id if INSTRUCTION_ID_RE.fullmatch(f["q"]) else instructions.c.reference
        query = query.where(column == f["q"])
    if f["status"]:
        if f["status"] not in Status.__members__.values():
            raise BadRequestError("status: choose one from the list")
        query = query.where(instructions.c.status == f["status"])
    if f["partner"]:
        query = query.where(instructions.c.adapter == f["partner"])
    if f["business_unit"] and unit is None:
        query = query.where(business_units.c.name == f["business_unit"])
    if f["currency"]:
        query = query.where(instructions.c.currency == f["currency"].upper())
    for name, op in (("amount_from", "__ge__"), ("amount_to", "__le__")):
        if f[name]:
            if not f["currency"]:
                raise BadRequestError("amount: choose a currency too (amounts compare within one currency)")
            try:
                minor = Money(Decimal(f[name]), f["currency"].upper()).minor
            except (InvalidOperation, DomainError):
                raise BadRequestError(f"{name.replace('_', ' ')}: a decimal amount like 1250.00") from None
            query = query.where(getattr(instructions.c.amount_minor, op)(minor))
    if f["from"]:
        query = query.where(instructions.c.created_at >= date_bound("from", f["from"], False))
    if f["to"]:
        query = query.where(instructions.c.created_at <= date_bound("to", f["to"], True))
    async with p.rt.engine.connect() as conn:
        rows = (await conn.execute(query.order_by(instructions.c.id.desc()).limit(PAGE_SIZE))).mappings().all()
    items = [{**public_view(r), "business_unit": r["business_unit"]} for r in rows]
    return p.render(
        "payments.html",
        items=items,
        f=f,
        all_units=unit is None,
        partners=sorted(p.rt.adapters),
        statuses=[s.value for s in Status],
    )


async def _load(p: Page, instruction_id: str) -> dict[str, Any]:
    if not INSTRUCTION_ID_RE.fullmatch(instruction_id):
        raise NotFoundError(f"no payment {instruction_id!r}")
    unit = unit_filter(p.session)
    async with p.rt.engine.connect() as conn:
        row = (
            (
                await conn.execute(
                    _scoped(
                        select(instructions, business_units.c.name.label("business_unit")).join(
                            business_units, business_units.c.id == instructions.c.business_unit_id
                        ),
                        unit,
                    ).where(instructions.c.id == instruction_id)
                )
            )
            .mappings()
            .first()
        )
        if row is None:  # another unit's payment is "not found", never "forbidden"
            raise NotFoundError(f"no payment {instruction_id!r}")
        events = (
            await conn.execute(
                select(instruction_events)
                .where(instruction_events.c.instruction_id == instruction_id)
                .order_by(instruction_events.c.sequence)
                .limit(200)
            )
        ).mappings()
        timeline = [event_view(e, row["reference"]) for e in events]
        entries = await books.entries(conn, instruction_id=instruction_id, limit=100)
        deliveries = await hooks.list_deliveries(conn, row["business_unit_id"], instruction_id=instruction_id)
        messages = await messages_for(conn, instruction_id)
    return {
        "payment": {**public_view(row), "business_unit": row["business_unit"], "bu_id": row["business_unit_id"]},
        "timeline": timeline,
        "entries": [
            {**e.as_dict(), "lines": [(x.account, x.currency, amount_text(x.amount, x.currency)) for x in e.postings]}
            for e in entries
        ],
        "deliveries": [d.as_dict() for d in deliveries],
        "messages": messages,
    }


@routes.get(PREFIX + "/payments/{id}")
@page("instructions", "finance", "admin")
async def payment(p: Page) -> web.StreamResponse:
    """One payment; its status follows live (``/console/live?payment=ID``)."""
    data = await _load(p, p.request.match_info["id"])
    return p.render(
        "payment.html", can_cancel=can(p.session, "instructions"), notice=p.request.query.get("n", ""), **data
    )


@routes.post(PREFIX + "/payments/{id}/cancel")
@page("instructions")
async def cancel(p: Page) -> web.StreamResponse:
    """Cancel before submission; afterwards the page says why not and nothing changes."""
    await p.form()
    data = await _load(p, p.request.match_info["id"])
    instruction_id = data["payment"]["id"]
    async with p.rt.engine.begin() as conn:
        rec = await repo.record_status(
            conn,
            instruction_id,
            Status.CANCELLED,
            source="api",
            now=p.rt.clock(),
            reason=f"cancelled by {p.session.principal.business_unit} in the console",
        )
    p.rt.announce([rec.change])
    if not rec.decision:
        raise ConflictError(f"a payment in status {rec.previous.value!r} can no longer be cancelled")
    return redirect(f"{PREFIX}/payments/{instruction_id}?n=cancelled")


@routes.post(PREFIX + "/payments/{id}/deliveries/{delivery}/redeliver")
@page("instructions", "finance", "admin")
async def redeliver(p: Page) -> web.StreamResponse:
    """Send a webhook delivery of this payment again now (same event id, same body)."""
    await p.form()
    data = await _load(p, p.request.match_info["id"])
    delivery_id = p.request.match_info["delivery"]
    if not DELIVERY_ID_RE.fullmatch(delivery_id):
        raise NotFoundError(f"no webhook delivery {delivery_id!r}")
    async with p.rt.engine.begin() as conn:
        found = await hooks.get_delivery(conn, delivery_id, data["payment"]["bu_id"])
        if found.instruction_id != data["payment"]["id"]:
            raise NotFoundError(f"no webhook delivery {delivery_id!r} for this payment")
        await hooks.redeliver(conn, delivery_id, p.rt.clock(), data["payment"]["bu_id"])
    p.rt.wake_webhooks()
    return redirect(f"{PREFIX}/payments/{data['payment']['id']}?n=redelivered")
