"""Reconciliation end to end: payments settled by the bank simulator, its camt.053 imported and matched."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from gateway.config import ReconciliationSettings
from gateway.recon.matching import list_breaks
from tests.support import LiveGateway, example_instruction


async def _call(gw: LiveGateway, method: str, path: str, key: str, status: int = 200, **kw: Any) -> Any:
    async with gw.session.request(method, gw.url + path, headers=gw.headers(key), **kw) as resp:
        assert resp.status == status, await resp.text()
        return await resp.json(content_type=None)


async def _settle(gw: LiveGateway, count: int) -> list[dict[str, Any]]:
    views = []
    for _ in range(count):
        async with await gw.post_instruction(example_instruction()) as resp:
            assert resp.status == 202
            views.append(await gw.wait_for((await resp.json())["id"]))
    assert {v["status"] for v in views} == {"settled"} and {v["adapter"] for v in views} == {"iso20022_bank"}
    return views


async def _bank_statement(gw: LiveGateway, breaks: list[dict[str, Any]]) -> bytes:
    sim = gw.simulators["iso20022_bank"].url
    async with gw.session.get(f"{sim}/_sim/scenario") as resp:
        scenario = (await resp.json())["document"] or {"name": "recon"}
    scenario["statement"] = {"opening_balance": "1000000.00", "breaks": breaks}
    async with gw.session.put(f"{sim}/_sim/scenario", json=scenario) as resp:
        assert resp.status == 200, await resp.text()
    today = datetime.now(UTC).date().isoformat()
    async with gw.session.get(f"{sim}/_sim/statements/{today}") as resp:
        assert resp.status == 200
        return await resp.read()


async def test_a_days_statement_matches_every_settled_payment_by_reference(gateway: LiveGateway) -> None:
    views = await _settle(gateway, 3)
    finance = await gateway.new_key("treasury", ("finance",))
    body = await _bank_statement(gateway, [])

    imported = await _call(gateway, "POST", "/v1/statements", finance, 201, data=body)
    run = await _call(gateway, "POST", "/v1/recon/run", finance)
    again = await _call(gateway, "POST", "/v1/recon/run?source=iso20022_bank", finance)
    breaks = await _call(gateway, "GET", "/v1/recon/breaks", finance)

    assert (imported["format"], imported["lines"]) == ("camt.053", 3)
    assert run == {"lines": 3, "confirmed": 3, "suggested": 0, "unmatched": 0}
    assert again == {"lines": 0, "confirmed": 0, "suggested": 0, "unmatched": 0}
    assert breaks == {"items": [], "next_cursor": None}
    assert len({v["id"] for v in views}) == 3


async def test_an_entry_no_payment_explains_is_a_break_and_nothing_else_is(gateway: LiveGateway) -> None:
    await _settle(gateway, 2)
    finance = await gateway.new_key("treasury", ("finance",))
    body = await _bank_statement(gateway, [{"kind": "unknown_entry", "count": 2}])

    await _call(gateway, "POST", "/v1/statements", finance, 201, data=body)
    run = await _call(gateway, "POST", "/v1/recon/run", finance)
    first = await _call(gateway, "GET", "/v1/recon/breaks?limit=1", finance)
    rest = await _call(gateway, "GET", f"/v1/recon/breaks?cursor={first['next_cursor']}", finance)
    wrong = await _call(gateway, "GET", "/v1/recon/breaks?kind=late", finance, 400)

    assert run["confirmed"] == 2 and run["unmatched"] == 2
    found = first["items"] + rest["items"]
    assert [b["kind"] for b in found] == ["unexpected_line", "unexpected_line"]
    assert {b["detail"].split(" UNKNOWN-")[0] for b in found} == {"booked: credit", "booked: debit"}
    assert rest["next_cursor"] is None and wrong["status"] == 400


async def test_a_wrong_amount_is_a_suggested_match_finance_confirms(gateway: LiveGateway) -> None:
    views = await _settle(gateway, 1)
    finance = await gateway.new_key("treasury", ("finance",))
    body = await _bank_statement(gateway, [{"kind": "wrong_amount"}])
    await _call(gateway, "POST", "/v1/statements", finance, 201, data=body)

    run = await _call(gateway, "POST", "/v1/recon/run", finance)
    (suggested,) = (await _call(gateway, "GET", "/v1/recon/breaks?kind=suggested_match", finance))["items"]
    confirmed = await _call(gateway, "POST", f"/v1/recon/matches/{suggested['id']}/confirm", finance)
    twice = await _call(gateway, "POST", f"/v1/recon/matches/{suggested['id']}/confirm", finance, 409)
    unknown = await _call(gateway, "POST", "/v1/recon/matches/ln_99_1/confirm", finance, 404)
    after = await _call(gateway, "GET", "/v1/recon/breaks", finance)

    assert run == {"lines": 1, "confirmed": 0, "suggested": 1, "unmatched": 0}
    assert suggested["instruction_id"] == views[0]["id"]
    assert suggested["detail"].startswith("instruction-id (amount differs): debit INV-")
    assert confirmed == {"line": suggested["id"], "instruction_id": views[0]["id"], "status": "confirmed"}
    assert twice["status"] == 409 and unknown["status"] == 404
    assert after["items"] == []


async def test_a_settled_payment_left_off_the_statement_is_missing(gateway: LiveGateway) -> None:
    views = await _settle(gateway, 2)
    finance = await gateway.new_key("treasury", ("finance",))
    body = await _bank_statement(gateway, [{"kind": "missing_entry", "match": {"reference": views[0]["reference"]}}])
    await _call(gateway, "POST", "/v1/statements", finance, 201, data=body)
    await _call(gateway, "POST", "/v1/recon/run", finance)
    rules = ReconciliationSettings(
        date_window_days=3, amount_tolerance_minor=0, amount_tolerance_bp=0, missing_after_days=0
    )

    found = await list_breaks(gateway.runtime.engine, rules, now=datetime.now(UTC))
    not_yet = await _call(gateway, "GET", "/v1/recon/breaks", finance)  # within missing_after_days (2)

    assert [(b.kind, b.instruction_id) for b in found] == [("missing_on_statement", views[0]["id"])]
    assert not_yet["items"] == []


async def test_a_duplicated_entry_is_a_duplicate_break(gateway: LiveGateway) -> None:
    views = await _settle(gateway, 2)
    finance = await gateway.new_key("treasury", ("finance",))
    twice = {"kind": "duplicate_entry", "match": {"reference": views[1]["reference"]}}
    await _call(gateway, "POST", "/v1/statements", finance, 201, data=await _bank_statement(gateway, [twice]))
    run = await _call(gateway, "POST", "/v1/recon/run", finance)
    found_all = (await _call(gateway, "GET", "/v1/recon/breaks", finance))["items"]
    assert [b["kind"] for b in found_all] == ["duplicate"]
    found = found_all[0]
    assert run == {"lines": 3, "confirmed": 2, "suggested": 0, "unmatched": 1}
    assert (found["kind"], found["instruction_id"]) == ("duplicate", None)
    assert views[1]["reference"] in found["detail"]
