"""Rollout (admin): the staged rollout mode of every business unit and enabled partner, a change with its
reason, and the audit history (docs/go-live.md, "Staged rollout").

A change goes through the API's own ``change_mode`` (the same checks, the same audited
``set_mode`` transaction); the console adds the reason it requires, and records who as
``console:<key id>`` (the API records ``api:<key id>``, the CLI ``cli:<os user>``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from aiohttp import web
from sqlalchemy import select

from gateway.api.rollout import change_mode
from gateway.console.web import PREFIX, Page, page, redirect
from gateway.errors import BadRequestError
from gateway.store.rollout import DEFAULT, MODES, RolloutMode, changes, parse_mode, table_modes
from gateway.store.tables import business_units

__all__ = ["routes"]

log = logging.getLogger(__name__)
routes = web.RouteTableDef()

#: business units shown in the grid, and rows of history
MAX_UNITS = 200
HISTORY = 200


def _change_view(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        **row,
        "changed_at": row["changed_at"].isoformat(),
        "from": str(RolloutMode(row["from_mode"], row["from_percent"])),
        "to": str(RolloutMode(row["to_mode"], row["to_percent"])),
    }


@routes.get(PREFIX + "/admin/rollout")
@page("admin")
async def rollout(p: Page) -> web.StreamResponse:
    """Every business unit and enabled partner with its mode (none stored: live), the change form, the history."""
    partners = sorted(p.rt.adapters)
    async with p.rt.engine.connect() as conn:
        units = list(await conn.scalars(select(business_units.c.name).order_by(business_units.c.name).limit(MAX_UNITS)))
        stored = await table_modes(conn)
        history = await changes(conn, newest=HISTORY)
    grid = [
        {
            "unit": unit,
            "cells": [
                {"partner": partner, "mode": str(stored[(unit, partner)][0]), "stored": True}
                if (unit, partner) in stored
                else {"partner": partner, "mode": str(DEFAULT), "stored": False}
                for partner in partners
            ],
        }
        for unit in units
    ]
    others = [  # modes stored for a partner that is not enabled here (kept, shown, not changeable from here)
        {"unit": unit, "partner": partner, "mode": str(mode), "at": at.isoformat(), "by": who}
        for (unit, partner), (mode, at, who) in stored.items()
        if partner not in p.rt.adapters
    ]
    return p.render(
        "rollout.html",
        partners=partners,
        units=units,
        grid=grid,
        others=others,
        modes=MODES,
        history=[_change_view(h) for h in history],
        notice=p.request.query.get("n", "")[:200],
        default=str(DEFAULT),
    )


@routes.post(PREFIX + "/admin/rollout")
@page("admin")
async def change(p: Page) -> web.StreamResponse:
    """Change one business unit and partner's mode; a reason is required and kept with the change."""
    form = await p.form()
    unit = form.get("business_unit", "").strip()
    partner = form.get("partner", "").strip()
    reason = " ".join(form.get("reason", "").split())
    if not reason:
        raise BadRequestError("reason: say why the mode changes (it is kept in the history)")
    if len(reason) > 500:
        raise BadRequestError("reason: at most 500 characters")
    text = form.get("percent", "").strip()
    if text and not text.isdigit():
        raise BadRequestError("percent: a whole number from 1 to 99")
    mode_name = form.get("mode", "")
    try:
        mode = parse_mode(mode_name, int(text) if text and mode_name == "canary" else None)
    except ValueError as exc:
        raise BadRequestError(str(exc).replace("--percent", "percent")) from None
    who = f"console:{p.session.principal.key_id}"
    view = await change_mode(p.rt, unit, partner, mode, who, reason)
    log.info(
        "rollout of %s for %s: %s -> %s in the console by key %s",
        partner,
        unit,
        view["from"],
        mode,
        p.session.principal.key_id,
        extra={"business_unit": unit, "partner": partner, "actor": p.session.principal.key_id},
    )
    return redirect(f"{PREFIX}/admin/rollout?" + urlencode({"n": f"{unit}/{partner}: {view['from']} to {mode}"}))
