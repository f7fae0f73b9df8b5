"""The console's reports page (finance): list, the HTML report under its own policy, CSV and JSON downloads."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.config import load_settings
from gateway.reports.folder import ReportFolder, build_report
from gateway.reports.model import Context
from tests.console.support import ConsoleUser
from tests.support import Database, LiveGateway, start_gateway, stop_gateway


@pytest.fixture
async def gw(database: Database, tmp_path: Path) -> AsyncIterator[LiveGateway]:
    gateway = await start_gateway(
        database, simulators=False, dispatch=False, poll=False, partners={}, reports__folder=str(tmp_path)
    )
    try:
        yield gateway
    finally:
        await stop_gateway(gateway)


async def test_finance_lists_opens_and_downloads_reports_and_nobody_else(gw: LiveGateway, tmp_path: Path) -> None:
    now = gw.runtime.clock()
    context = Context(load_settings(env={}).reconciliation)
    folder = ReportFolder(tmp_path)
    for period in (now.date().isoformat(), now.strftime("%Y-%m")):
        folder.write(await build_report(gw.runtime.engine, "settlement", period, now, context))
    daily = f"settlement.{now.date().isoformat()}"
    finance = ConsoleUser.open(gw.url)
    unit = ConsoleUser.open(gw.url)
    try:
        assert (await finance.sign_in(await gw.new_key("treasury", ("finance",)))).status == 303
        assert (await unit.sign_in(gw.key)).status == 303
        status, listing = await finance.page("/console/reports")
        async with finance.http.get(f"{gw.url}/console/reports/{daily}/html") as resp:
            html_status, html_headers, html = resp.status, resp.headers, await resp.text()
        async with finance.http.get(f"{gw.url}/console/reports/{daily}/csv") as resp:
            csv_status, csv_headers, csv = resp.status, resp.headers, await resp.text()
        async with finance.http.get(f"{gw.url}/console/reports/{daily}/json") as resp:
            doc = json.loads(await resp.text())
        missing = (await finance.page("/console/reports/settlement.1999-01-01/html"))[0]
        bad_format = (await finance.page(f"/console/reports/{daily}/pdf"))[0]
        nonsense = (await finance.page("/console/reports/..%2F..%2Fetc/html"))[0]
        denied = (await unit.page("/console/reports"))[0]
        denied_file = (await unit.page(f"/console/reports/{daily}/csv"))[0]
    finally:
        await finance.close()
        await unit.close()

    assert status == 200 and listing.count(f'href="/console/reports/{daily}/') == 3
    assert f'href="/console/reports/{daily}/csv" download' in listing and " style=" not in listing
    csp = html_headers["Content-Security-Policy"]
    assert html_status == 200 and csp.startswith("sandbox;") and "script-src" not in csp
    assert "frame-ancestors 'none'" in csp and ("<svg" in html or "<table" in html)
    assert html_headers["Content-Disposition"].startswith("inline")
    assert csv_status == 200 and csv_headers["Content-Disposition"] == f'attachment; filename="{daily}.csv"'
    assert csv.strip() != "" and doc["id"] == daily
    assert (missing, bad_format, nonsense) == (404, 404, 404)
    assert (denied, denied_file) == (403, 403)
