"""Rebates end to end on the live gateway: a quarter's volume crosses a tier, accrues, settles once.

On each backend (SQLite, and PostgreSQL when GATEWAY_TEST_DATABASE_URL is set), with
the bundled bank simulator settling the payout instruction.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from gateway.domain.clock import system_clock
from gateway.domain.rebates import period_of
from gateway.finance import rebates as desk
from gateway.finance.rebates import settle_period
from gateway.reports.folder import build_report
from gateway.reports.render import render
from gateway.store.tables import instructions, ledger_entries, rebate_accruals, receivables
from tests.receivables.support import balances, call, receivable
from tests.support import LiveGateway, start_gateway, stop_gateway

PROGRAMS = """
version: 1
programs:
  - id: nord-q
    distributors: [nord]
    period: quarter
    basis: invoiced
    tier_mode: retroactive
    settlement: payout
    tiers:
      - {from: "0", rate: "1%"}
      - {from: "10000.00", rate: "2%"}
    payout:
      business_unit: erp-europe
      debtor: {name: "HE Appliances Europe GmbH", account: {iban: "DE89370400440532013000"}}
      creditors:
        nord: {name: "Distributor Nord GmbH", account: {iban: "DE44500105175407324931"}}
  - id: sud-q
    distributors: [sud]
    period: quarter
    basis: invoiced
    tier_mode: marginal
    settlement: credit_note
    caps: {EUR: "150.00"}
    tiers:
      - {from: "0", rate: "1%"}
      - {from: "10000.00", rate: "2%"}
"""


@pytest.fixture
async def rebates_gateway(database: Any, tmp_path: Path) -> AsyncIterator[LiveGateway]:
    file = tmp_path / "rebates.yaml"
    file.write_text(PROGRAMS)
    gw = await start_gateway(database, rebates__file=str(file))
    try:
        yield gw
    finally:
        await stop_gateway(gw)


async def _settle(gw: LiveGateway, period: str, dry_run: bool = False) -> list[dict[str, Any]]:
    rt = gw.runtime
    return await settle_period(
        rt.engine,
        rt.rebate_programs,
        period,
        rt.clock,
        contracts=rt.contracts,
        codec=rt.codec,
        writer=rt.writer,
        dry_run=dry_run,
    )


async def _counts(gw: LiveGateway) -> tuple[int, int]:
    async with gw.runtime.engine.connect() as conn:
        entries = await conn.scalar(select(func.count()).select_from(ledger_entries))
        made = await conn.scalar(select(func.count()).select_from(instructions))
    return int(entries or 0), int(made or 0)


async def test_a_quarter_crosses_a_tier_accrues_settles_once_and_pays_out(rebates_gateway: LiveGateway) -> None:
    gw = rebates_gateway
    period = period_of("quarter", system_clock())
    # nord: 6000 + 5000 = 11000 EUR crosses the 2% tier with the second invoice (retroactive)
    await call(gw, "POST", "/v1/receivables", gw.key, json=receivable("N-1", "6000.00"), status=201)
    before = await balances(gw.runtime.engine)
    assert before["rebates:nord:expense"] == 6000  # 1% of 6000.00
    await call(gw, "POST", "/v1/receivables", gw.key, json=receivable("N-2", "5000.00"), status=201)
    # sud: 12000 EUR marginal = 100.00 + 40.00 final; accrued at the tier reached: 240.00, capped at 150.00
    await call(gw, "POST", "/v1/receivables", gw.key, json=receivable("S-1", "12000.00", distributor="sud"), status=201)
    accrued = await balances(gw.runtime.engine)
    assert accrued["rebates:nord:expense"] == 6000 + 10000  # the second invoice at 2%
    assert accrued["distributor:nord:rebate_payable"] == -16000
    assert accrued["rebates:sud:expense"] == 15000  # 2% of 12000.00 is more than the cap

    dry = await _settle(gw, period, dry_run=True)
    assert {(v["distributor"], v["action"], v["final"]) for v in dry} == {
        ("nord", "would_settle", "220.00"),
        ("sud", "would_settle", "140.00"),
    }
    assert await _counts(gw) == await _counts(gw)
    entries_before, instructions_before = await _counts(gw)
    settled = {v["distributor"]: v for v in await _settle(gw, period)}
    assert settled["nord"]["true_up"] == "60.00" and settled["nord"]["action"] == "settled"
    assert settled["sud"]["true_up"] == "-10.00" and settled["sud"]["credited"] == "140.00"
    books = await balances(gw.runtime.engine)
    assert books["rebates:nord:expense"] == 22000
    assert books["rebates:sud:expense"] == 14000
    assert books["distributor:sud:rebate_payable"] == 0  # all netted against S-1
    assert books["distributor:nord:rebate_payable"] == 0  # all paid out
    assert sum(books.values()) == 0

    # the payout went through normal intake, with the deterministic reference, and the bank settles it
    instruction_id = settled["nord"]["instruction_id"]
    assert settled["nord"]["reference"] == f"REB-nord-{period}-EUR"
    view = await gw.wait_for(instruction_id)
    assert (view["status"], view["type"], view["amount"]) == ("settled", "payout", "220.00")
    async with gw.runtime.engine.connect() as conn:
        sud = (await conn.execute(select(receivables).where(receivables.c.invoice_number == "S-1"))).mappings().one()
    assert (sud["paid_minor"], sud["status"]) == (14000, "partially_paid")

    # a second settlement changes nothing: no entry, no instruction
    entries, made = await _counts(gw)
    assert made == instructions_before + 1 and entries > entries_before
    again = await _settle(gw, period)
    assert {v["action"] for v in again} == {"already_settled"}
    assert await _counts(gw) == (entries, made)
    # volume arriving for a settled period is not counted again
    await call(gw, "POST", "/v1/receivables", gw.key, json=receivable("N-3", "1000.00"), status=201)
    async with gw.runtime.engine.connect() as conn:
        nord = (
            (await conn.execute(select(rebate_accruals).where(rebate_accruals.c.distributor == "nord")))
            .mappings()
            .one()
        )
    assert (nord["volume_minor"], nord["final_minor"]) == (1100000, 22000)
    assert sum((await balances(gw.runtime.engine)).values()) == 0

    # the statements: one per distributor, as CSV and as HTML with the volume against the tiers
    report = await build_report(gw.runtime.engine, "rebates", period, system_clock(), gw.runtime.report_context)
    assert [s.name for s in report.sections] == ["statement-nord", "statement-sud"]
    nord_row = report.sections[0].as_dict()["rows"][0]
    assert (nord_row["volume"], nord_row["final"], nord_row["state"], nord_row["reference"]) == (
        "11000.00",
        "220.00",
        "settled",
        f"REB-nord-{period}-EUR",
    )
    csv_text = render(report, "csv")
    assert "statement-sud" in csv_text and "140.00" in csv_text
    html = render(report, "html")
    assert html.count("<svg") == 2 and "volume against the tiers of nord-q" in html


async def test_a_payout_accepted_before_a_crash_is_booked_by_the_next_run_not_paid_twice(
    rebates_gateway: LiveGateway,
) -> None:
    gw = rebates_gateway
    period = period_of("quarter", system_clock())
    await call(gw, "POST", "/v1/receivables", gw.key, json=receivable("N-9", "500.00"), status=201)
    rt = gw.runtime
    program = rt.rebate_programs["nord-q"]
    async with rt.engine.connect() as conn:
        row = (await conn.execute(select(rebate_accruals))).mappings().one()
    # the crash: the instruction is accepted through intake, the booking never happened
    final = program.amount(row["volume_minor"], row["currency"])
    first = await desk._pay(rt.engine, program, row, final, rt.clock(), rt.contracts, rt.codec, rt.writer)
    _, made = await _counts(gw)
    settled = await _settle(gw, period)
    assert settled[0]["action"] == "settled" and settled[0]["instruction_id"] == first
    assert (await _counts(gw))[1] == made  # the same instruction, not a second one
    assert sum((await balances(rt.engine)).values()) == 0


async def test_the_api_lists_and_settles_once_with_problems_for_bad_input(rebates_gateway: LiveGateway) -> None:
    gw = rebates_gateway
    period = period_of("quarter", system_clock())
    finance = await gw.new_key("erp-europe", ("finance",))
    await call(gw, "POST", "/v1/receivables", gw.key, json=receivable("S-7", "2000.00", distributor="sud"), status=201)
    listed = await call(gw, "GET", f"/v1/rebates?period={period}", finance, status=200)
    assert [(v["distributor"], v["final"], v["settled"]) for v in listed["items"]] == [("sud", "20.00", False)]
    await call(gw, "GET", "/v1/rebates?period=2026-Q9", finance, status=400)
    await call(gw, "GET", f"/v1/rebates?period={period}", gw.key, status=403)  # scope finance only

    url = f"{gw.url}/v1/rebates/settle"

    async def post(body: Any, key: str | None) -> tuple[int, Any, str | None]:
        headers = gw.headers(finance, **({"Idempotency-Key": key} if key else {}))
        async with gw.session.post(url, json=body, headers=headers) as resp:
            return resp.status, await resp.json(content_type=None), resp.headers.get("Idempotent-Replayed")

    assert (await post({"period": period}, None))[0] == 400
    status, problem, _ = await post({"period": "2026-Q5"}, "k-bad")
    assert status == 422 and problem["errors"][0]["pointer"] == "/period"
    status, first, _ = await post({"period": period}, "k-1")
    assert status == 200 and [(v["action"], v["credited"]) for v in first["items"]] == [("settled", "20.00")]
    status, replay, replayed = await post({"period": period}, "k-1")
    assert (status, replayed, replay) == (200, "true", first)
    status, again, _ = await post({"period": period}, "k-2")
    assert [v["action"] for v in again["items"]] == ["already_settled"]
    assert sum((await balances(gw.runtime.engine)).values()) == 0
