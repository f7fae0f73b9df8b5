"""A report rendered by headless Chromium (Debian's ``chromium``, driven by Playwright with ``executable_path``):
the page is served by the gateway's own API, and every chart must have drawn one visible bar per data point.

Chromium is required where PostgreSQL is (CI sets ``GATEWAY_TEST_DATABASE_URL``; ``.ci/run`` installs
``chromium``): there a missing browser fails the test. Elsewhere it is skipped, saying how to install it.
``GATEWAY_UPDATE_SCREENSHOTS=1`` writes the screenshot docs/reports.md shows (docs/img/report-settlement.png).
"""

from __future__ import annotations

import json
import os
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from playwright.async_api import async_playwright

from gateway.domain.clock import system_clock
from gateway.reports.folder import ReportFolder, build_report
from gateway.store import repo
from tests.reports.seed import FAILED, REJECTED, SETTLED, store_payments
from tests.reports.test_reports import CONTEXT
from tests.support import PG_URL, REPO, Database, start_gateway, stop_gateway

CHROMIUM = os.environ.get("GATEWAY_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
SCREENSHOT = REPO / "docs" / "img" / "report-settlement.png"


@pytest.fixture
def chromium() -> str:
    if CHROMIUM is None:
        message = "headless Chromium not found: apt-get install -y chromium (or set GATEWAY_CHROMIUM)"
        if os.environ.get("CI") or PG_URL:
            pytest.fail(message)
        pytest.skip(message)
    return CHROMIUM


async def test_a_report_page_draws_every_chart_in_chromium(database: Database, tmp_path: Path, chromium: str) -> None:
    gw = await start_gateway(
        database, simulators=False, dispatch=False, poll=False, partners={}, reports__folder=str(tmp_path)
    )
    try:
        engine = gw.runtime.engine
        start = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
        for day in range(14):
            volume = 2 + (day * 7) % 9
            slow = [(*SETTLED[:-1], ("settled", 20 + 15 * day))]
            paths = [SETTLED] * volume + slow + ([REJECTED] if day % 3 == 0 else []) + ([FAILED] if day == 9 else [])
            await store_payments(
                engine, business_unit="erp", adapter="instant_rtp", received_at=start + timedelta(days=day), paths=paths
            )
        report = await build_report(engine, "settlement", "2026-12", start + timedelta(days=20), CONTEXT)
        ReportFolder(tmp_path).write(report)
        async with engine.begin() as conn:
            finance = await repo.create_api_key(conn, "treasury", ["finance"], system_clock())
        expected = [len(chart.values) for chart in report.charts]
        assert expected == [31, 3]

        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
            try:
                page = await browser.new_page(viewport={"width": 900, "height": 1000})
                await page.set_extra_http_headers({"Authorization": f"Bearer {finance}"})
                requests: list[str] = []
                page.on("request", lambda r: requests.append(r.url))
                response = await page.goto(f"{gw.url}/v1/reports/settlement.2026-12/html")
                assert response is not None and response.status == 200
                drawn = await page.evaluate(
                    """() => [...document.querySelectorAll('svg.chart')].map(svg => {
                        const box = svg.getBoundingClientRect();
                        const bars = [...svg.querySelectorAll('rect.bar')].map(r => r.getBBox());
                        return {width: box.width, height: box.height, bars: bars.length,
                                drawn: bars.filter(b => b.width > 0 && b.height > 0).length,
                                tallest: Math.max(...bars.map(b => b.height))};
                    })"""
                )
                shot = await page.screenshot(full_page=True)
            finally:
                await browser.close()
        assert [c["bars"] for c in drawn] == expected and [c["drawn"] for c in drawn] == expected
        assert all(c["width"] > 0 and c["height"] > 0 and c["tallest"] > 50 for c in drawn), json.dumps(drawn)
        assert requests == [f"{gw.url}/v1/reports/settlement.2026-12/html"]  # nothing else fetched
        assert shot[:8] == b"\x89PNG\r\n\x1a\n" and len(shot) > 10_000
        if os.environ.get("GATEWAY_UPDATE_SCREENSHOTS"):
            SCREENSHOT.write_bytes(shot)
    finally:
        await stop_gateway(gw)
