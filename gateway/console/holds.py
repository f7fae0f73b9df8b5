"""The holds queue (finance): pending holds oldest first; approve or reject with a comment (four eyes)."""

from __future__ import annotations

from aiohttp import web

from gateway.api.instructions import INSTRUCTION_ID_RE
from gateway.console.web import PREFIX, Page, page, redirect
from gateway.domain.status import Status
from gateway.errors import BadRequestError, NotFoundError
from gateway.risk.holds import hold_query, hold_view
from gateway.store.tables import holds, instructions

__all__ = ["routes"]

routes = web.RouteTableDef()


@routes.get(PREFIX + "/holds")
@page("finance")
async def queue(p: Page) -> web.StreamResponse:
    """Pending holds, oldest first, and the last decided ones."""
    async with p.rt.engine.connect() as conn:
        pending = (
            await conn.execute(
                hold_query()
                .where(holds.c.decision.is_(None), instructions.c.status == Status.HELD.value)
                .order_by(holds.c.instruction_id)
                .limit(200)
            )
        ).all()
        decided = (
            await conn.execute(
                hold_query().where(holds.c.decision.is_not(None)).order_by(holds.c.decided_at.desc()).limit(20)
            )
        ).all()
    return p.render(
        "holds.html",
        pending=[hold_view(r) for r in pending],
        decided=[hold_view(r) for r in decided],
        notice=p.request.query.get("n", ""),
    )


@routes.post(PREFIX + "/holds/{id}/decide")
@page("finance")
async def decide(p: Page) -> web.StreamResponse:
    """Approve or reject; the key that submitted the payment cannot (four eyes), nor decide twice."""
    form = await p.form()
    instruction_id = p.request.match_info["id"]
    if not INSTRUCTION_ID_RE.fullmatch(instruction_id):
        raise NotFoundError(f"no hold for payment {instruction_id!r}")
    decision = form.get("decision")
    if decision not in ("approve", "reject"):
        raise BadRequestError("choose approve or reject")
    comment = form.get("comment", "").strip()
    if not 1 <= len(comment) <= 400:
        raise BadRequestError("write why (1-400 characters): the comment is kept with the decision")
    await p.rt.holds.decide(p.session.principal, instruction_id, decision == "approve", comment)
    return redirect(f"{PREFIX}/holds?n={decision}d")
