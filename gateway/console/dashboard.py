"""The dashboard: volumes by status, partner and currency over time, the backlog, open alerts; live by SSE."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from aiohttp import web
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.api.appkeys import SETTINGS, ApiServices
from gateway.api.instructions import INSTRUCTION_ID_RE
from gateway.console import sessions
from gateway.console.web import PREFIX, Page, can, page, unit_filter
from gateway.domain.status import TERMINAL, Status
from gateway.store.tables import holds, instructions, risk_alerts

__all__ = ["Bar", "bars", "figures", "routes"]

routes = web.RouteTableDef()

#: the dashboard's window, in hourly buckets
HOURS = 24
_WAITING = [s.value for s in Status if s not in TERMINAL]


@dataclass(frozen=True)
class Bar:
    """One bar of a server-rendered SVG chart (coordinates in the chart's viewBox)."""

    label: str
    value: int
    x: float
    y: float
    width: float
    height: float


def bars(values: list[tuple[str, int]], width: float = 480, height: float = 120) -> list[Bar]:
    """Bars for ``(label, value)`` pairs scaled into ``width`` by ``height``."""
    if not values:
        return []
    top = max(v for _, v in values) or 1
    slot = width / len(values)
    out = []
    for i, (label, value) in enumerate(values):
        h = height * value / top
        out.append(Bar(label, value, round(i * slot + 1, 2), round(height - h, 2), round(slot - 2, 2), round(h, 2)))
    return out


async def figures(conn: AsyncConnection, business_unit_id: str | None, now: datetime, finance: bool) -> dict[str, Any]:
    """The dashboard's numbers, for one business unit or (``None``) all."""
    scope: list[Any] = [] if business_unit_id is None else [instructions.c.business_unit_id == business_unit_id]
    by_status: dict[str, int] = {
        status: int(count)
        for status, count in await conn.execute(
            select(instructions.c.status, func.count()).where(*scope).group_by(instructions.c.status)
        )
    }
    waiting = [*scope, instructions.c.status.in_(_WAITING)]
    backlog = int(await conn.scalar(select(func.count()).select_from(instructions).where(*waiting)) or 0)
    oldest = await conn.scalar(select(func.min(instructions.c.created_at)).where(*waiting))
    since = now - timedelta(hours=HOURS)
    recent = (
        await conn.execute(
            select(instructions.c.created_at, instructions.c.adapter, instructions.c.currency)
            .where(*scope, instructions.c.created_at >= since)
            .limit(100_000)
        )
    ).all()
    hourly: Counter[int] = Counter()
    partners: Counter[str] = Counter()
    currencies: Counter[str] = Counter()
    for created_at, adapter, currency in recent:
        hourly[int((created_at - since).total_seconds() // 3600)] += 1
        partners[adapter or "(not routed)"] += 1
        currencies[currency] += 1
    out: dict[str, Any] = {
        "by_status": {s.value: int(by_status.get(s.value, 0)) for s in Status},
        "backlog": backlog,
        "oldest_age_seconds": int((now - oldest).total_seconds()) if oldest else None,
        "hourly": [((since + timedelta(hours=h)).strftime("%H:00"), hourly.get(h, 0)) for h in range(HOURS)],
        "by_partner": sorted(partners.items()),
        "by_currency": sorted(currencies.items()),
    }
    if finance:
        out["pending_holds"] = int(
            await conn.scalar(
                select(func.count())
                .select_from(holds.join(instructions, instructions.c.id == holds.c.instruction_id))
                .where(holds.c.decision.is_(None), instructions.c.status == Status.HELD.value)
            )
            or 0
        )
        out["alerts_24h"] = int(
            await conn.scalar(select(func.count()).select_from(risk_alerts).where(risk_alerts.c.created_at >= since))
            or 0
        )
    return out


def partner_states(rt: ApiServices) -> list[tuple[str, str]]:
    """Every enabled partner with its circuit breaker's state: closed, open or half-open."""
    health = rt.partner_health()
    return [(name, health.get(name, "closed")) for name in sorted(rt.adapters)]


def age_text(seconds: int | None) -> str:
    if seconds is None:
        return "none waiting"
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h"


@routes.get(PREFIX + "/")
@page("instructions", "finance", "admin")
async def dashboard(p: Page) -> web.StreamResponse:
    """Volumes, backlog, partners, alerts; the page subscribes to ``/console/live`` for fresh figures."""
    finance = can(p.session, "finance")
    async with p.rt.engine.connect() as conn:
        fig = await figures(conn, unit_filter(p.session), p.rt.clock(), finance)
    return p.render(
        "dashboard.html",
        fig=fig,
        oldest=age_text(fig["oldest_age_seconds"]),
        hourly=bars(fig["hourly"]),
        partners=partner_states(p.rt),
        finance=finance,
    )


@routes.get(PREFIX + "/live")
async def live(request: web.Request) -> web.StreamResponse:
    """Server-sent events: the dashboard's figures (and one payment's status, ``?payment=ID``) every few seconds."""
    session = await sessions.current(request)
    if session is None:
        return web.Response(status=401, text="sign in first")
    payment = request.query.get("payment")
    if payment is not None and not INSTRUCTION_ID_RE.fullmatch(payment):
        return web.Response(status=404, text="no such payment")
    rt_interval = request.app[SETTINGS].console.live_interval_seconds
    page_ = Page(request, session)
    finance = can(session, "finance")
    unit = unit_filter(session)
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store"})
    await response.prepare(request)
    while True:
        if await sessions.current(request) is None:  # signed out, idle or revoked: the stream ends too
            await response.write(b"event: ended\ndata: {}\n\n")
            break
        async with page_.rt.engine.connect() as conn:
            fig = await figures(conn, unit, page_.rt.clock(), finance)
            data: dict[str, Any] = {
                "backlog": fig["backlog"],
                "oldest": age_text(fig["oldest_age_seconds"]),
                **{f"status-{k}": v for k, v in fig["by_status"].items()},
            }
            data.update({f"partner-{name}": state for name, state in partner_states(page_.rt)})
            if finance:
                data["pending-holds"] = fig["pending_holds"]
                data["alerts-24h"] = fig["alerts_24h"]
            if payment is not None:
                query = select(instructions.c.status).where(instructions.c.id == payment)
                if unit is not None:
                    query = query.where(instructions.c.business_unit_id == unit)
                data["payment-status"] = await conn.scalar(query)
        try:
            await response.write(f"event: figures\ndata: {json.dumps(data)}\n\n".encode())
        except ConnectionResetError:  # the page was closed
            break
        await asyncio.sleep(rt_interval)
    return response
