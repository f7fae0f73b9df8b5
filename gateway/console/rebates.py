"""Rebates (finance): the programs, a period's accruals per distributor, its settlements, and the
``rebates`` report of the period when one was written (docs/credit-and-rebates.md).

The rows are ``gateway.finance.rebates.lines``, what ``GET /v1/rebates`` answers: a row not
settled yet shows the final amount and true-up the settlement would post now. Settling stays
with ``gateway rebates settle`` and ``POST /v1/rebates/settle``.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import Any

from aiohttp import web

from gateway.api.appkeys import SETTINGS
from gateway.console.web import PREFIX, Page, page
from gateway.domain.rebates import Program, period_of
from gateway.errors import BadRequestError
from gateway.finance.rebates import check_period, lines
from gateway.reports.folder import ReportFolder
from gateway.reports.render import FORMATS
from gateway.store.rebates import accrual_periods

__all__ = ["routes"]

routes = web.RouteTableDef()


def _program_view(program: Program) -> dict[str, Any]:
    return {
        "id": program.id,
        "distributors": ", ".join(program.distributors),
        "period": program.period,
        "basis": program.basis,
        "kind": program.kind,
        "settlement": program.settlement,
        "tiers": [f"from {t.start:f}: {(t.rate * 100).normalize():f}%" for t in program.tiers],
        "caps": [f"{amount:f} {currency}" for currency, amount in sorted(program.caps.items())],
    }


@routes.get(PREFIX + "/rebates")
@page("finance")
async def rebates(p: Page) -> web.StreamResponse:
    """A period's rebate rows per distributor (``period=2026-Q4`` or ``2026-11``; the current quarter by default)."""
    period = p.request.query.get("period", "").strip()[:10] or period_of("quarter", p.rt.clock())
    try:
        check_period(period)
    except ValueError as exc:
        raise BadRequestError(str(exc)) from None
    async with p.rt.engine.connect() as conn:
        periods = await accrual_periods(conn)
    rows = await lines(p.rt.engine, p.rt.rebate_programs, period)
    by_distributor: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_distributor[row["distributor"]].append(row)
    report_id = f"rebates.{period}"
    folder = ReportFolder(p.request.app[SETTINGS].reports_folder)
    report = await asyncio.to_thread(folder.summary, report_id)
    return p.render(
        "rebates.html",
        period=period,
        periods=periods if period in periods else [period, *periods],
        programs=[_program_view(program) for _, program in sorted(p.rt.rebate_programs.items())],
        distributors=sorted(by_distributor.items()),
        settlements=[r for r in rows if r["settled"]],
        report=report,
        formats=FORMATS,
    )
