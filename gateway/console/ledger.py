"""The ledger (finance): accounts with their balances, now or as of a date; the trial balance per currency."""

from __future__ import annotations

from datetime import UTC, datetime, time

from aiohttp import web

from gateway.console.web import PREFIX, Page, page
from gateway.domain.money import amount_text
from gateway.errors import BadRequestError
from gateway.finance import books

__all__ = ["routes"]

routes = web.RouteTableDef()


@routes.get(PREFIX + "/ledger")
@page("finance")
async def trial_balance(p: Page) -> web.StreamResponse:
    """Every account's balance per currency (``as_of=YYYY-MM-DD``: at the end of that day, UTC)."""
    as_of_text = p.request.query.get("as_of", "").strip()
    as_of = None
    if as_of_text:
        try:
            day = datetime.strptime(as_of_text, "%Y-%m-%d").date()
        except ValueError:
            raise BadRequestError("as of: a date like 2026-12-31") from None
        as_of = datetime.combine(day, time.max, tzinfo=UTC)
    async with p.rt.engine.connect() as conn:
        groups = await books.trial_balance(conn, as_of)
    currencies = []
    for currency, balances in groups.items():
        rows = [
            {
                "account": b.account,
                "type": b.type,
                "business_unit": b.business_unit or "",
                "debits": amount_text(b.debits, currency),
                "credits": amount_text(b.credits, currency),
                "balance": amount_text(b.balance, currency),
            }
            for b in balances
        ]
        total = sum(b.balance for b in balances)
        currencies.append({"currency": currency, "rows": rows, "total": amount_text(total, currency)})
    return p.render("ledger.html", currencies=currencies, as_of=as_of_text)
