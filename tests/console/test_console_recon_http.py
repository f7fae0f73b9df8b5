"""The console's reconciliation page over plain HTTP: scopes, filters, CSRF, escaping, and a break's workflow.

A real gateway with the ISO 20022 bank simulator: payments settle, the simulator's camt.053 with
injected breaks is imported and reconciled, and finance users work the breaks through the console.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from gateway.recon.rules import DEFAULT_RECON_FILE
from gateway.store.tables import ledger_postings, recon_break_comments
from tests.console.support import ConsoleUser
from tests.support import Database, LiveGateway, example_instruction, start_gateway, stop_gateway


@pytest.fixture
async def gw(database: Database, tmp_path: Path) -> AsyncIterator[LiveGateway]:
    """Missing after 0 days, four eyes above 10.00: every kind of break shows up at once."""
    rules = tmp_path / "reconciliation.yaml"
    text = DEFAULT_RECON_FILE.read_text(encoding="utf-8").replace("missing_after_days: 2", "missing_after_days: 0")
    rules.write_text(text.replace('default: "100.00"', 'default: "10.00"'), encoding="utf-8")
    gateway = await start_gateway(database, reconciliation__file=str(rules))
    try:
        yield gateway
    finally:
        await stop_gateway(gateway)


async def _call(gw: LiveGateway, method: str, path: str, key: str, status: int = 200, **kw: Any) -> Any:
    async with gw.session.request(method, gw.url + path, headers=gw.headers(key), **kw) as resp:
        assert resp.status == status, await resp.text()
        return await resp.json(content_type=None)


async def reconciled_day(gw: LiveGateway, finance: str, settled: int, breaks: list[dict[str, Any]]) -> list[str]:
    """Settle ``settled`` payments, import the bank's statement with ``breaks`` (their references as ``{n}``), run."""
    ids, refs = [], []
    for _ in range(settled):
        async with await gw.post_instruction(example_instruction()) as resp:
            assert resp.status == 202
            view = await gw.wait_for((await resp.json())["id"])
        assert view["status"] == "settled"
        ids.append(view["id"])
        refs.append(view["reference"])
    for b in breaks:
        if "match" in b:
            b["match"] = {"reference": refs[b["match"]]}
    sim = gw.simulators["iso20022_bank"].url
    async with gw.session.get(f"{sim}/_sim/scenario") as resp:
        scenario = (await resp.json())["document"] or {"name": "recon"}
    scenario["statement"] = {"opening_balance": "1000000.00", "breaks": breaks}
    async with gw.session.put(f"{sim}/_sim/scenario", json=scenario) as resp:
        assert resp.status == 200, await resp.text()
    async with gw.session.get(f"{sim}/_sim/statements/{datetime.now(UTC).date().isoformat()}") as resp:
        statement = await resp.read()
    await _call(gw, "POST", "/v1/statements", finance, 201, data=statement)
    await _call(gw, "POST", "/v1/recon/run", finance)
    return ids


async def signed_in(gw: LiveGateway, key: str) -> ConsoleUser:
    user = ConsoleUser.open(gw.url)
    assert (await user.sign_in(key)).status == 303
    return user


def break_ids(html: str) -> list[str]:
    return sorted(set(re.findall(r'href="/console/recon/breaks/(brk_[0-9]+)"', html)))


async def test_the_summary_and_the_breaks_are_finances_with_filters(gw: LiveGateway) -> None:
    finance = await gw.new_key("treasury", ("finance",))
    await reconciled_day(gw, finance, 2, [{"kind": "missing_entry", "match": 0}, {"kind": "unknown_entry", "count": 1}])
    unit = await signed_in(gw, gw.key)
    user = await signed_in(gw, finance)
    try:
        status, denied = await unit.page("/console/recon")
        assert "scopes do not open" in denied
        _, unit_home = await unit.page("/console/")
        status_break, _ = await unit.page("/console/recon/breaks/brk_1")
        ok, html = await user.page("/console/recon")
        _, lines_only = await user.page("/console/recon?kind=unexpected_line")
        _, closed = await user.page("/console/recon?state=resolved")
        bad_kind, bad_html = await user.page("/console/recon?kind=%3Cscript%3E")
        bad_source = (await user.page("/console/recon?source=a%20b"))[0]
        missing = (await user.page("/console/recon/breaks/brk_999"))[0]
        nonsense = (await user.page("/console/recon/breaks/nonsense"))[0]
    finally:
        await unit.close()
        await user.close()

    assert (status, status_break) == (403, 403) and 'href="/console/recon"' not in unit_home
    assert ok == 200 and 'href="/console/recon" aria-current="page"' in html
    assert "<svg" in html and "Open breaks by kind" in html and "Open breaks by age (days)" in html
    assert "<strong>2</strong> open breaks" in html and len(break_ids(html)) == 2
    assert "missing_on_statement" in html and "unexpected_line" in html
    assert len(break_ids(lines_only)) == 1 and "no break" in closed
    assert bad_kind == 400 and "<script>" not in bad_html
    assert (bad_source, missing, nonsense) == (400, 404, 404)


async def test_a_break_is_assigned_commented_and_resolved_and_every_post_needs_the_token(gw: LiveGateway) -> None:
    finance = await gw.new_key("treasury", ("finance",))
    await reconciled_day(gw, finance, 2, [{"kind": "missing_entry", "match": 0}])
    user = await signed_in(gw, finance)
    try:
        _, listing = await user.page("/console/recon")
        (brk,) = break_ids(listing)
        page = f"/console/recon/breaks/{brk}"
        async with user.http.post(f"{gw.url}{page}/resolve", data={"reason": "x"}, allow_redirects=False) as r:
            forged = r.status
        assigned = await user.post(page, f"{page}/assign", owner="ana")
        commented = await user.post(page, f"{page}/comment", text="<script>alert(1)</script> asked the bank")
        empty = await user.post(page, f"{page}/comment", text="  ")
        _, before = await user.page(page)
        resolved = await user.post(page, f"{page}/resolve", reason="paid on the next statement")
        _, after = await user.page(resolved.headers["Location"])
        again = await user.post(page, f"{page}/assign", owner="bo")
        unknown = await user.post(page, f"{page}/explode", reason="x")
    finally:
        await user.close()
    view = await _call(gw, "GET", f"/v1/recon/breaks/{brk}", finance)

    assert forged == 403
    assert (assigned.status, commented.status, empty.status, resolved.status) == (303, 303, 400, 303)
    assert "&lt;script&gt;alert(1)&lt;/script&gt; asked the bank" in before and "<script>alert" not in before
    assert "Resolve" in before and "Write off" not in before  # nothing in suspense: resolved with a reason
    assert "Done: resolved" in after and 'id="break-state">resolved' in after and "Work on it" not in after
    assert again.status == 409 and unknown.status == 404
    assert view["state"] == "resolved" and view["owner"] == "ana" and view["reason"] == "paid on the next statement"
    assert [c["text"] for c in view["comments"]] == ["owner: ana", "<script>alert(1)</script> asked the bank"]
    async with gw.runtime.engine.connect() as conn:
        assert len((await conn.execute(select(recon_break_comments))).all()) == 2  # the refused posts wrote nothing


async def test_a_large_write_off_needs_a_second_person_and_a_line_is_matched_by_hand(gw: LiveGateway) -> None:
    finance = await gw.new_key("treasury", ("finance",))
    second_key = await gw.new_key("treasury", ("finance",))
    ids = await reconciled_day(
        gw, finance, 1, [{"kind": "missing_entry", "match": 0}, {"kind": "unknown_entry", "count": 2}]
    )
    lines = (await _call(gw, "GET", "/v1/recon/breaks?kind=unexpected_line", finance))["items"]
    big, other = sorted(lines, key=lambda b: -abs(float(b["amount"])))
    assert abs(float(big["amount"])) > 10
    first = await signed_in(gw, finance)
    second = await signed_in(gw, second_key)
    page = f"/console/recon/breaks/{big['id']}"
    try:
        _, offer = await first.page(page)
        asked = await first.post(page, f"{page}/write-off", reason="bank error")
        _, pending_mine = await first.page(page)
        myself = await first.post(page, f"{page}/write-off", reason="me again")
        _, pending_theirs = await second.page(page)
        approved = await second.post(page, f"{page}/write-off", reason="agreed")
        _, done = await second.page(page)
        other_page = f"/console/recon/breaks/{other['id']}"
        unknown_payment = await first.post(other_page, f"{other_page}/match", instruction_ids="ins_01NOTAPAYMENT")
        matched = await first.post(other_page, f"{other_page}/match", instruction_ids=ids[0])
    finally:
        await first.close()
        await second.close()

    assert "Write off" in offer and "four eyes" in offer and "Match by hand" in offer
    assert asked.status == 303
    assert "another finance person must approve it" in pending_mine and "That is you" in pending_mine
    assert re.search(r'<button type="submit" class="danger" disabled>', pending_mine)
    assert myself.status == 403 and "four eyes" in await myself.text()
    assert "Approve the write-off" in pending_theirs and "That is you" not in pending_theirs
    assert approved.status == 303 and 'id="break-state">written_off' in done
    assert unknown_payment.status == 404 and matched.status == 303
    assert (await _call(gw, "GET", f"/v1/recon/breaks/{other['id']}", finance))["state"] == "matched"
    async with gw.runtime.engine.connect() as conn:
        suspense = await conn.scalars(select(ledger_postings.c.amount).where(ledger_postings.c.account == "suspense"))
        assert sum(suspense.all()) == 0  # one line written off, the other matched: nothing left in suspense


async def test_a_suggested_match_is_confirmed_from_its_break(gw: LiveGateway) -> None:
    finance = await gw.new_key("treasury", ("finance",))
    await reconciled_day(gw, finance, 2, [{"kind": "wrong_amount", "amount_delta": "4.00", "match": 0}])
    (suggested,) = (await _call(gw, "GET", "/v1/recon/breaks?kind=amount_mismatch", finance))["items"]
    user = await signed_in(gw, finance)
    page = f"/console/recon/breaks/{suggested['id']}"
    try:
        _, offer = await user.page(page)
        confirmed = await user.post(page, f"{page}/confirm")
        _, after = await user.page(confirmed.headers["Location"])
        twice = await user.post("/console/recon", f"{page}/confirm")
    finally:
        await user.close()

    assert "Confirm the suggested match" in offer and "its amounts differ" in offer
    assert confirmed.status == 303 and "Done: match confirmed" in after and 'id="break-state">matched' in after
    assert twice.status == 409  # already confirmed: refused, nothing posted twice
