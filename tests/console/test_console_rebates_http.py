"""The console's rebates page (finance): programs, a period's accruals per distributor, settlements, the report."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.config import load_settings
from gateway.domain.clock import system_clock
from gateway.domain.rebates import period_of
from gateway.finance.rebates import lines, settle_period
from gateway.reports.folder import ReportFolder, build_report
from gateway.reports.model import Context
from tests.console.support import ConsoleUser
from tests.receivables.support import call, receivable
from tests.support import Database, LiveGateway, start_gateway, stop_gateway

PROGRAMS = """
version: 1
programs:
  - id: nord-q
    distributors: [nord]
    period: quarter
    basis: invoiced
    settlement: credit_note
    tiers:
      - {from: "0", rate: "1%"}
      - {from: "10000.00", rate: "2%"}
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
async def gw(database: Database, tmp_path: Path) -> AsyncIterator[LiveGateway]:
    file = tmp_path / "rebates.yaml"
    file.write_text(PROGRAMS)
    gateway = await start_gateway(
        database,
        simulators=False,
        dispatch=False,
        poll=False,
        rebates__file=str(file),
        reports__folder=str(tmp_path / "reports"),
    )
    try:
        yield gateway
    finally:
        await stop_gateway(gateway)


def cells(html: str, table: str) -> list[list[str]]:
    """The text of each body row's cells of the first ``<table class="{table}">``."""
    found = re.search(rf'<table[^>]*class="{table}".*?<tbody>(.*?)</tbody>', html, re.S)
    assert found, f"no table {table}"
    body = found.group(1)
    return [
        [re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
        for row in re.findall(r"<tr>(.*?)</tr>", body, re.S)
    ]


async def test_finance_sees_programs_accruals_settlements_and_the_report_of_a_period(
    gw: LiveGateway, tmp_path: Path
) -> None:
    rt = gw.runtime
    period = period_of("quarter", system_clock())
    await call(gw, "POST", "/v1/receivables", gw.key, json=receivable("N-1", "6000.00"), status=201)
    await call(gw, "POST", "/v1/receivables", gw.key, json=receivable("N-2", "5000.00"), status=201)
    await call(gw, "POST", "/v1/receivables", gw.key, json=receivable("S-1", "12000.00", distributor="sud"), status=201)
    finance = ConsoleUser.open(gw.url)
    unit = ConsoleUser.open(gw.url)
    try:
        assert (await finance.sign_in(await gw.new_key("treasury", ("finance",)))).status == 303
        assert (await unit.sign_in(gw.key)).status == 303
        status, open_page = await finance.page("/console/rebates")  # the current quarter by default
        await settle_period(
            rt.engine, rt.rebate_programs, period, rt.clock, contracts=rt.contracts, codec=rt.codec, writer=rt.writer
        )
        context = Context(load_settings(env={}).reconciliation, rebates=rt.rebate_programs)
        ReportFolder(tmp_path / "reports").write(await build_report(rt.engine, "rebates", period, rt.clock(), context))
        _, settled_page = await finance.page(f"/console/rebates?period={period}")
        empty_status, empty = await finance.page("/console/rebates?period=2001-03")
        bad = (await finance.page("/console/rebates?period=2026-Q5"))[0]
        denied = (await unit.page("/console/rebates"))[0]
    finally:
        await finance.close()
        await unit.close()
    api_rows = await lines(rt.engine, rt.rebate_programs, period)

    assert status == 200 and f'value="{period}"' in open_page
    assert cells(open_page, "programs")[0][:4] == ["nord-q", "nord", "quarter", "invoiced"]
    assert "retroactive: from 0: 1%; from 10000.00: 2%" in open_page and "150.00 EUR" in open_page
    # nord's 11 000 EUR crossed the 2% tier: accrued 160.00, the settlement would post 220.00 (a 60.00 true-up)
    assert ["nord-q", "EUR", "11000.00", "2.00%", "160.00", "220.00", "60.00", "credit_note", "open"] in cells(
        open_page, "accruals"
    )
    assert "Nothing settled in" in open_page and "No <code>rebates</code> report" in open_page
    settled_rows = cells(settled_page, "settlements")
    assert sorted(r[0] for r in settled_rows) == ["nord", "sud"]
    assert {(r[0], r[4]) for r in settled_rows} == {(v["distributor"], f"{v['final']} EUR") for v in api_rows}
    assert f'href="/console/reports/rebates.{period}/csv" download' in settled_page
    assert f'href="/console/reports/rebates.{period}/html"' in settled_page
    assert empty_status == 200 and "No accrual in 2001-03" in empty
    assert (bad, denied) == (400, 403)
