"""The ledger API on a live gateway: finance reads every account, a business unit only its own."""

from __future__ import annotations

from typing import Any

from tests.support import LiveGateway, example_instruction


async def _get(gw: LiveGateway, path: str, key: str, status: int = 200) -> Any:
    async with gw.session.get(gw.url + path, headers=gw.headers(key)) as resp:
        assert resp.status == status, await resp.text()
        return await resp.json()


async def test_a_settled_payment_is_in_the_books_and_its_view_links_its_entries(gateway: LiveGateway) -> None:
    async with await gateway.post_instruction(example_instruction()) as resp:
        assert resp.status == 202
        instruction_id = (await resp.json())["id"]
    view = await gateway.wait_for(instruction_id)
    assert view["status"] == "settled"
    adapter = view["adapter"]
    finance = await gateway.new_key("treasury", ("finance",))

    entries = await _get(gateway, view["ledger_entries"], finance)
    assert [e["memo"] for e in entries["items"]] == ["received → accepted", "routed → submitted", "submitted → settled"]
    for entry in entries["items"]:
        assert sum(p["amount_minor"] for p in entry["postings"]) == 0
    assert await _get(gateway, view["ledger_entries"], gateway.key) == entries  # the business unit's own payment

    accounts = await _get(gateway, "/v1/ledger/accounts", finance)
    names = {a["name"]: a for a in accounts["items"]}
    assert names["bu:erp-europe:receivable"]["balances"][0]["balance"] == "1250.00"
    assert names[f"partner:{adapter}:in_transit"]["balances"][0]["balance_minor"] == 0
    own = await _get(gateway, "/v1/ledger/accounts", gateway.key)
    assert {a["name"] for a in own["items"]} == {"bu:erp-europe:payables", "bu:erp-europe:receivable"}

    bank = await _get(gateway, f"/v1/ledger/accounts/partner:{adapter}:bank", finance)
    assert bank["type"] == "asset" and bank["balances"][0]["balance"] == "-1250.00"
    before = await _get(gateway, "/v1/ledger/accounts/bu:erp-europe:receivable?as_of=2000-01-01", finance)
    assert before["balances"][0]["balance_minor"] == 0 and before["as_of"].startswith("2000-01-01T23:59:59")
    problem = await _get(gateway, f"/v1/ledger/accounts/partner:{adapter}:bank", gateway.key, 404)
    assert problem["status"] == 404  # another unit's (or the treasury's) account is not found, never forbidden


async def test_entries_page_with_a_cursor_and_bad_parameters_are_400(gateway: LiveGateway) -> None:
    for _ in range(2):
        async with await gateway.post_instruction(example_instruction()) as resp:
            await gateway.wait_for((await resp.json())["id"])
    finance = await gateway.new_key("treasury", ("finance",))
    first = await _get(gateway, "/v1/ledger/entries?limit=4", finance)
    rest = await _get(gateway, f"/v1/ledger/entries?limit=200&cursor={first['next_cursor']}", finance)
    ids = [e["id"] for e in first["items"] + rest["items"]]
    assert ids == list(range(1, 7)) and rest["next_cursor"] is None
    account = await _get(gateway, "/v1/ledger/entries?account=bu:erp-europe:payables&from=2000-01-01", finance)
    assert len(account["items"]) == 4  # accepted and submitted, twice
    assert (await _get(gateway, "/v1/ledger/entries?to=2000-01-01", finance))["items"] == []
    bad = await _get(gateway, "/v1/ledger/entries?cursor=abc", finance, 400)
    assert bad["detail"] == "cursor is not one this API returned"
    bad = await _get(gateway, "/v1/ledger/accounts/suspense?as_of=last-week", finance, 400)
    assert bad["detail"] == "as_of must be an ISO 8601 date or date-time, e.g. 2026-01-31"
