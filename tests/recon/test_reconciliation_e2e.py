"""Reconciliation end to end: payments settled by the bank simulator, its camt.053 with injected breaks imported,
matched, posted to the ledger, and the breaks worked through the API (four eyes on large write-offs)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from gateway.recon.rules import DEFAULT_RECON_FILE
from gateway.store.tables import ledger_entries, ledger_postings
from tests.support import Database, LiveGateway, example_instruction, start_gateway, stop_gateway


@pytest.fixture
async def recon_gateway(database: Database, tmp_path: Path) -> AsyncIterator[LiveGateway]:
    """A gateway whose rules call a settled payment missing as soon as a statement leaves it out."""
    rules = tmp_path / "reconciliation.yaml"
    text = DEFAULT_RECON_FILE.read_text(encoding="utf-8").replace("missing_after_days: 2", "missing_after_days: 0")
    rules.write_text(text.replace('default: "100.00"', 'default: "10.00"'), encoding="utf-8")
    gw = await start_gateway(database, reconciliation__file=str(rules))
    try:
        yield gw
    finally:
        await stop_gateway(gw)


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


async def _balances(gw: LiveGateway, instruction_ids: list[str], *accounts: str) -> dict[str, int]:
    """Each account's balance from the entries of these payments."""
    async with gw.runtime.engine.connect() as conn:
        rows = await conn.execute(
            select(ledger_postings.c.account, ledger_postings.c.amount)
            .join(ledger_entries, ledger_entries.c.id == ledger_postings.c.entry_id)
            .where(ledger_entries.c.instruction_id.in_(instruction_ids), ledger_postings.c.account.in_(accounts))
        )
        out = dict.fromkeys(accounts, 0)
        for account, amount in rows.all():
            out[account] += amount
        return out


def _minor(amount: str) -> int:
    return int(amount.replace(".", ""))


async def _account(gw: LiveGateway, account: str) -> int:
    async with gw.runtime.engine.connect() as conn:
        rows = await conn.scalars(select(ledger_postings.c.amount).where(ledger_postings.c.account == account))
        return sum(rows.all())


async def test_a_day_with_every_injected_break_finds_them_all_and_nothing_else(recon_gateway: LiveGateway) -> None:
    gw = recon_gateway
    views = await _settle(gw, 6)
    finance = await gw.new_key("treasury", ("finance",))
    injected = [
        {"kind": "missing_entry", "match": {"reference": views[0]["reference"]}},
        {"kind": "wrong_amount", "amount_delta": "40.00", "match": {"reference": views[1]["reference"]}},
        {"kind": "duplicate_entry", "match": {"reference": views[2]["reference"]}},
        {"kind": "unknown_entry", "count": 1},
    ]
    await _call(gw, "POST", "/v1/statements", finance, 201, data=await _bank_statement(gw, injected))

    run = await _call(gw, "POST", "/v1/recon/run", finance)
    again = await _call(gw, "POST", "/v1/recon/run?source=iso20022_bank", finance)
    found = (await _call(gw, "GET", "/v1/recon/breaks", finance))["items"]
    summary = await _call(gw, "GET", "/v1/recon/summary", finance)

    matched = [v["id"] for v in views[2:]]
    assert run == {
        "lines": 7,
        "confirmed": 4,
        "suggested": 1,
        "unmatched": 2,
        "breaks_opened": 4,
        "breaks_closed": 0,
    }
    assert (again["breaks_opened"], again["breaks_closed"]) == (0, 0), again
    assert sorted((b["kind"], b["instruction_id"]) for b in found) == sorted(
        [
            ("missing_on_statement", views[0]["id"]),
            ("amount_mismatch", None),
            ("duplicate", views[2]["id"]),
            ("unexpected_line", None),
        ]
    )
    assert summary["by_kind"]["duplicate"] == 1 and summary["open_breaks"] == 4
    assert summary["matched_lines"] == 5 and summary["statement_lines"] == 7
    # the matched day: nothing of those payments is in transit, nor waiting between callback and statement
    books = await _balances(gw, matched, "partner:iso20022_bank:in_transit", "partner:iso20022_bank:bank")
    assert books == {"partner:iso20022_bank:in_transit": 0, "partner:iso20022_bank:bank": 0}
    # the two unexplained lines (duplicate, unknown) sit in suspense; the bank account as the statement says
    suspense = sum(_minor(b["amount"]) for b in found if b["kind"] in ("duplicate", "unexpected_line"))
    assert await _account(gw, "suspense") == suspense
    reconciled = await _account(gw, "partner:iso20022_bank:bank_reconciled")
    assert reconciled == -sum(_minor(v["amount"]) for v in views[2:]) - suspense


async def test_breaks_are_worked_through_and_large_write_offs_need_a_second_person(
    recon_gateway: LiveGateway,
) -> None:
    gw = recon_gateway
    views = await _settle(gw, 2)
    first = await gw.new_key("treasury", ("finance",))
    second = await gw.new_key("treasury", ("finance",))
    injected = [
        {"kind": "missing_entry", "match": {"reference": views[0]["reference"]}},
        {"kind": "unknown_entry", "count": 2},
    ]
    await _call(gw, "POST", "/v1/statements", first, 201, data=await _bank_statement(gw, injected))
    await _call(gw, "POST", "/v1/recon/run", first)
    found = (await _call(gw, "GET", "/v1/recon/breaks?kind=unexpected_line", first))["items"]
    big, other = sorted(found, key=lambda b: -abs(float(b["amount"])))
    assert abs(float(big["amount"])) > 10

    owned = await _call(gw, "POST", f"/v1/recon/breaks/{big['id']}/assign", first, json={"owner": "ana"})
    noted = await _call(gw, "POST", f"/v1/recon/breaks/{big['id']}/comments", first, json={"text": "asked the bank"})
    refused = await _call(gw, "POST", f"/v1/recon/breaks/{big['id']}/resolve", first, 409, json={"reason": "x"})
    asked = await _call(gw, "POST", f"/v1/recon/breaks/{big['id']}/write-off", first, json={"reason": "bank error"})
    self_ok = await _call(gw, "POST", f"/v1/recon/breaks/{big['id']}/write-off", first, 403, json={"reason": "me"})
    done = await _call(gw, "POST", f"/v1/recon/breaks/{big['id']}/write-off", second, json={"reason": "agreed"})
    after = await _call(gw, "POST", f"/v1/recon/breaks/{big['id']}/write-off", second, 409, json={"reason": "again"})
    by_hand = await _call(
        gw, "POST", f"/v1/recon/breaks/{other['id']}/match", first, json={"instruction_ids": [views[0]["id"]]}
    )
    rerun = await _call(gw, "POST", "/v1/recon/run", first)
    left = (await _call(gw, "GET", "/v1/recon/breaks", first))["items"]
    missing = await _call(gw, "GET", "/v1/recon/breaks/brk_999999", first, 404)
    empty = await _call(gw, "POST", f"/v1/recon/breaks/{big['id']}/comments", first, 422, json={"text": ""})

    assert owned["owner"] == "ana" and [c["text"] for c in noted["comments"]] == ["owner: ana", "asked the bank"]
    assert refused["status"] == 409 and "suspense" in refused["detail"]
    assert (asked["state"], asked["write_off_requested_by"]) == ("pending_write_off", asked["write_off_requested_by"])
    assert self_ok["type"].endswith("four-eyes")
    assert done["state"] == "written_off" and after["status"] == 409
    assert by_hand["state"] == "matched"
    # the missing payment's break closed when the line was matched to it by hand; nothing is open
    assert rerun["breaks_closed"] == 1 and left == [] and missing["status"] == 404 and empty["status"] == 422
    assert await _account(gw, "suspense") == 0
    assert await _account(gw, "write_off:iso20022_bank") == _minor(big["amount"])


async def test_upstream_control_totals_that_differ_are_a_break_until_they_agree(recon_gateway: LiveGateway) -> None:
    gw = recon_gateway
    views = await _settle(gw, 2)
    finance = await gw.new_key("treasury", ("finance",))
    today = datetime.now(UTC).date().isoformat()
    total = sum(int(v["amount"].replace(".", "")) for v in views)
    right = {"currency": "EUR", "count": 2, "amount": f"{total // 100}.{total % 100:02d}"}

    wrong = await _call(
        gw, "POST", "/v1/control-totals", gw.key, json={"date": today, "totals": [{**right, "count": 3}]}
    )
    opened = await _call(gw, "POST", "/v1/recon/run", finance)
    (brk,) = (await _call(gw, "GET", "/v1/recon/breaks", finance))["items"]
    await _call(gw, "POST", "/v1/control-totals", gw.key, json={"date": today, "totals": [right]})
    closed = await _call(gw, "POST", "/v1/recon/run", finance)
    bad = await _call(
        gw, "POST", "/v1/control-totals", gw.key, 422, json={"date": today, "totals": [{**right, "amount": "1.001"}]}
    )
    other = await _call(
        gw, "POST", "/v1/control-totals", gw.key, 422, json={"business_unit": "x", "date": today, "totals": [right]}
    )

    assert wrong["business_unit"] == "erp-europe" and opened["breaks_opened"] == 1
    assert (brk["kind"], brk["source"], brk["subject"]) == (
        "upstream_total_mismatch",
        "bu:erp-europe",
        f"erp-europe/{today}/EUR",
    )
    assert closed["breaks_closed"] == 1
    assert "/totals/0/amount" in bad["detail"] and "/business_unit" in other["detail"]
