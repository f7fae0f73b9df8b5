"""Reconciliation (finance): the summary, the breaks with filters, and one break's workflow.

The same functions as ``/v1/recon/…`` (gateway.recon.breaks, gateway.recon.service): assign an
owner, comment, resolve with a reason, match a statement line by hand to settled payments,
write off (four eyes above the threshold of ``config/reconciliation.yaml``: the person who
asked cannot complete it) and confirm a suggested match.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlencode

from aiohttp import web

from gateway.api.recon import BREAK_CURSOR, BREAK_ID
from gateway.console.web import PREFIX, Page, page, redirect
from gateway.domain.money import amount_text
from gateway.errors import BadRequestError, NotFoundError
from gateway.recon.breaks import (
    BREAK_KINDS,
    BREAK_STATES,
    OPEN_STATES,
    SUSPENSE_KINDS,
    add_comment,
    assign_break,
    break_view,
    get_break,
    list_breaks,
    resolve_break,
    summary,
    write_off_break,
)
from gateway.recon.rules import ReconRules, load_recon_rules
from gateway.recon.service import confirm_match, match_by_hand

__all__ = ["routes"]

routes = web.RouteTableDef()

#: breaks on one list page
PAGE_SIZE = 100
_SOURCE = re.compile(r"^[a-z0-9_:.-]{1,64}$")
_ACTIONS = ("assign", "comment", "resolve", "match", "write-off", "confirm")


@dataclass(frozen=True)
class HBar:
    """One row of a horizontal bar chart (SVG units: 480 wide, 24 a row, bars from x=180)."""

    label: str
    value: int
    y: int
    width: float


def hbars(values: list[tuple[str, int]], width: float = 260) -> list[HBar]:
    """Rows for ``(label, value)`` pairs, the longest bar ``width`` long (labels left of the bars)."""
    top = max((v for _, v in values), default=0) or 1
    return [HBar(label, value, 4 + 24 * i, round(width * value / top, 2)) for i, (label, value) in enumerate(values)]


def _rules(p: Page) -> ReconRules:
    return p.rt.recon_rules or load_recon_rules()


@routes.get(PREFIX + "/recon")
@page("finance")
async def breaks_page(p: Page) -> web.StreamResponse:
    """The matched share, open breaks by kind and by age (SVG bars), and the breaks with filters."""
    q = p.request.query
    kind, state, source = q.get("kind", ""), q.get("state", "open"), q.get("source", "").strip()
    if kind and kind not in BREAK_KINDS:
        raise BadRequestError("kind: choose one from the list")
    if state not in (*BREAK_STATES, "all"):
        raise BadRequestError("state: choose one from the list")
    if source and not _SOURCE.fullmatch(source):
        raise BadRequestError("source: an adapter's name (e.g. iso20022_bank) or bu:<business unit>")
    after = q.get("after", "")
    if after and not BREAK_CURSOR.fullmatch(after):
        raise BadRequestError("after: a break number")
    states = OPEN_STATES if state == "open" else BREAK_STATES if state == "all" else (state,)
    today = p.rt.clock().date()
    found = await list_breaks(
        p.rt.engine, states=states, kind=kind or None, source=source or None, after=int(after or 0), limit=PAGE_SIZE + 1
    )
    shown = found[:PAGE_SIZE]
    facts = await summary(p.rt.engine, today)
    return p.render(
        "recon.html",
        facts=facts,
        by_kind=hbars([(k.replace("_", " "), n) for k, n in facts["by_kind"].items()]),
        by_age=hbars([(f"{days} days", n) for days, n in facts["by_age_days"].items()]),
        breaks=[break_view(r, today) for r in shown],
        next_after=str(shown[-1]["id"]) if len(found) > PAGE_SIZE else "",
        f={"kind": kind, "state": state, "source": source},
        kinds=BREAK_KINDS,
        states=(*BREAK_STATES, "all"),
    )


def _break_id(p: Page) -> str:
    break_id = p.request.match_info["id"]
    if not BREAK_ID.fullmatch(break_id):
        raise NotFoundError("no such break (ids look like brk_<number>)")
    return break_id


@routes.get(PREFIX + "/recon/breaks/{id}")
@page("finance")
async def one_break(p: Page) -> web.StreamResponse:
    """A break, its comments, and the actions its kind and state allow."""
    break_id = _break_id(p)
    row, comments = await get_break(p.rt.engine, break_id)
    view = break_view(row, p.rt.clock().date(), comments)
    threshold = _rules(p).four_eyes_minor(row["currency"])
    me = p.session.principal.key_id
    return p.render(
        "recon_break.html",
        b=view,
        is_open=row["state"] in OPEN_STATES,
        in_suspense=row["suspense_entry"] is not None,
        can_match=row["statement_pk"] is not None and row["kind"] in SUSPENSE_KINDS,
        match_ref=f"m_{row['match_id']}" if row["match_id"] else "",
        four_eyes=abs(row["amount_minor"]) > threshold,
        threshold=amount_text(threshold, row["currency"]),
        asked_by_me=row["write_off_by"] is not None and row["write_off_by"] == me[:64],
        notice=p.request.query.get("n", ""),
    )


def _text(form: dict[str, str], name: str, label: str, most: int) -> str:
    text = form.get(name, "").strip()
    if not 1 <= len(text) <= most:
        raise BadRequestError(f"{label}: 1 to {most} characters")
    return text


@routes.post(PREFIX + "/recon/breaks/{id}/{action}")
@page("finance")
async def act(p: Page) -> web.StreamResponse:
    """One step of the workflow; back to the break's page with what happened."""
    form = dict(await p.form())
    break_id = _break_id(p)
    action = p.request.match_info["action"]
    if action not in _ACTIONS:
        raise NotFoundError(f"no action {action[:20]!r} on a break")
    by, now, engine = p.session.principal.key_id, p.rt.clock(), p.rt.engine
    notice = action
    if action == "assign":
        await assign_break(engine, break_id, _text(form, "owner", "owner", 64), by=by, now=now)
        notice = "assigned"
    elif action == "comment":
        await add_comment(engine, break_id, _text(form, "text", "comment", 1000), by=by, now=now)
        notice = "commented"
    elif action == "resolve":
        await resolve_break(engine, break_id, _text(form, "reason", "reason", 200), by=by, now=now)
        notice = "resolved"
    elif action == "write-off":
        state = await write_off_break(engine, break_id, _text(form, "reason", "reason", 200), _rules(p), by=by, now=now)
        notice = "written off" if state == "written_off" else "write-off asked: another finance person approves it"
    elif action == "match":
        ids = [i for i in re.split(r"[\s,]+", form.get("instruction_ids", "")) if i]
        if not 1 <= len(ids) <= 1000 or any(len(i) > 40 for i in ids):
            raise BadRequestError("payments: 1 to 1000 instruction ids, separated by spaces or commas")
        await match_by_hand(engine, break_id, ids, by=by, now=now)
        notice = "matched"
    else:
        row, _ = await get_break(engine, break_id)
        if not row["match_id"]:
            raise BadRequestError("this break has no suggested match to confirm")
        await confirm_match(engine, f"m_{row['match_id']}", by=by, now=now)
        notice = "match confirmed"
    return redirect(f"{PREFIX}/recon/breaks/{break_id}?{urlencode({'n': notice})}")
