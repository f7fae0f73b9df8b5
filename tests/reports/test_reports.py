"""The built-in reports over stored payments, their three formats, the folder, the schedule file and /v1/reports
(SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.config import load_settings
from gateway.domain.clock import system_clock
from gateway.errors import ConfigError
from gateway.reports.anomaly import check_anomalies
from gateway.reports.folder import ReportFolder, build_report
from gateway.reports.model import REGISTRY, Context, parse_period
from gateway.reports.render import render
from gateway.reports.schedule import ReportScheduler, Schedule, load_schedules, period_for
from gateway.store import repo
from gateway.store.tables import risk_alerts
from tests.reports.seed import FAILED, REJECTED, SETTLED, store_payments, unknown_outcome
from tests.support import Database, start_gateway, stop_gateway

DAY = datetime(2026, 12, 5, 9, 0, tzinfo=UTC)
NOW = datetime(2026, 12, 6, 6, 0, tzinfo=UTC)
CONTEXT = Context(load_settings(env={}).reconciliation)


async def seed_day(engine: AsyncEngine) -> None:
    await store_payments(
        engine, business_unit="erp", adapter="instant_rtp", received_at=DAY, paths=[SETTLED] * 7 + [REJECTED]
    )
    slow = [(*SETTLED[:-1], ("settled", 30))] * 2
    await store_payments(
        engine, business_unit="erp", adapter="iso20022_bank", received_at=DAY, paths=[*slow, FAILED], amount="0.10"
    )
    await store_payments(
        engine,
        business_unit="shop",
        adapter="ach_nacha",
        received_at=DAY,
        paths=[SETTLED],
        currency="USD",
        amount="12.34",
    )
    (waiting,) = await store_payments(
        engine,
        business_unit="shop",
        adapter="card_acquirer",
        received_at=DAY,
        paths=[(("accepted", 0.1), ("routed", 0.2))],
    )
    await unknown_outcome(engine, waiting, DAY + timedelta(minutes=1))
    # another day: outside a report for 2026-12-05
    await store_payments(
        engine, business_unit="erp", adapter="instant_rtp", received_at=DAY + timedelta(days=1), paths=[SETTLED]
    )


def rows(report_doc: dict, section: str) -> list[dict]:
    (found,) = [s for s in report_doc["sections"] if s["name"] == section]
    return found["rows"]


def test_periods_are_days_months_and_quarters_and_nothing_else() -> None:
    q4 = parse_period("2026-Q4")
    assert (q4.start, q4.end) == (datetime(2026, 10, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC))
    assert len(parse_period("2026-12").days()) == 31 and len(parse_period("2026-12-05").days()) == 1
    for bad in ("2026-13", "2026-Q5", "2026-02-30", "26-12", "2026-12-05T00:00"):
        with pytest.raises(ConfigError, match="period"):
            parse_period(bad)
    assert period_for("previous-day", NOW) == "2026-12-05"
    assert period_for("previous-month", NOW) == "2026-11"
    assert period_for("previous-quarter", NOW) == "2026-Q3"
    assert period_for("current-quarter", NOW) == "2026-Q4"


async def test_settlement_summary_counts_sums_and_times_to_settle(engine: AsyncEngine) -> None:
    await seed_day(engine)
    report = await build_report(engine, "settlement", "2026-12-05", NOW, CONTEXT)
    doc = json.loads(render(report, "json"))
    by_partner = {r["partner"]: r for r in rows(doc, "summary")}
    assert sorted(by_partner) == ["ach_nacha", "card_acquirer", "instant_rtp", "iso20022_bank"]
    rtp = by_partner["instant_rtp"]
    assert (rtp["business_unit"], rtp["currency"], rtp["day"], rtp["count"]) == ("erp", "EUR", "2026-12-05", 8)
    assert (rtp["settled"], rtp["settled_amount"], rtp["rejected"], rtp["rejected_amount"]) == (
        7,
        "700.00",
        1,
        "100.00",
    )
    assert (rtp["settle_p50_s"], rtp["settle_p90_s"], rtp["settle_p99_s"]) == (600, 600, 600)
    bank = by_partner["iso20022_bank"]
    assert (bank["settled_amount"], bank["failed"], bank["failed_amount"], bank["settle_p50_s"]) == (
        "0.20",
        1,
        "0.10",
        1800,
    )
    assert by_partner["ach_nacha"]["settled_amount"] == "12.34" and by_partner["ach_nacha"]["currency"] == "USD"
    card = by_partner["card_acquirer"]
    assert (card["in_flight"], card["in_flight_amount"], card["settle_p50_s"]) == (1, "100.00", None)
    (per_day, times) = doc["charts"]
    assert per_day["bars"] == [{"label": "2026-12-05", "value": "13"}]
    assert [b["value"] for b in times["bars"]] == ["600", "1800", "1800"]
    table = list(csv.reader(io.StringIO(render(report, "csv"))))
    assert table[0][:4] == ["report", "settlement", "period", "2026-12-05"]
    assert table[1][:3] == ["section", "business_unit", "partner"] and len(table) == 2 + 4
    assert any(line[2] == "instant_rtp" and "700.00" in line for line in table)


async def test_risk_reconciliation_and_partner_reports_read_what_is_stored(engine: AsyncEngine) -> None:
    await seed_day(engine)
    # operational anomaly alerts (an unknown outcome, stuck payments): counted beside screening alerts
    await store_payments(engine, business_unit="shop", adapter="card_acquirer", received_at=DAY, paths=[SETTLED[:3]])
    await check_anomalies(engine, load_settings(env={}).anomaly, DAY + timedelta(hours=1))
    risk = json.loads(render(await build_report(engine, "risk", "2026-12", NOW, CONTEXT), "json"))
    shop = {r["business_unit"]: r for r in rows(risk, "alerts")}["shop"]
    assert (shop["payments"], shop["anomaly"], shop["flag"], shop["alert_rate_pct"]) == (3, 2, 0, "0.00")

    partners = json.loads(render(await build_report(engine, "partners", "2026-12-05", NOW, CONTEXT), "json"))
    by_name = {r["partner"]: r for r in rows(partners, "partners")}
    rtp = by_name["instant_rtp"]
    assert (rtp["submitted"], rtp["settled"], rtp["rejected"], rtp["error_rate_pct"]) == (8, 7, 1, "12.50")
    assert rtp["latency_p50_ms"] == 18000  # routed at 0.2 min, acknowledged at 0.5 min
    assert by_name["iso20022_bank"]["error_rate_pct"] == "33.33"
    assert by_name["card_acquirer"]["unknown_open"] == 1

    recon = json.loads(render(await build_report(engine, "reconciliation", "2026-12", NOW, CONTEXT), "json"))
    assert rows(recon, "lines") == []  # no statement imported: nothing matched, nothing to divide by
    assert {r["kind"] for r in rows(recon, "breaks")} >= {"unexpected_line", "missing_on_statement"}


async def test_the_folder_keeps_every_format_and_replaces_a_rerun_whole(engine: AsyncEngine, tmp_path: Path) -> None:
    await seed_day(engine)
    folder = ReportFolder(tmp_path / "reports")
    first = folder.write(await build_report(engine, "settlement", "2026-12", NOW, CONTEXT))
    again = folder.write(await build_report(engine, "settlement", "2026-12", NOW + timedelta(hours=1), CONTEXT))
    assert first["id"] == again["id"] == "settlement.2026-12" and folder.ids() == ["settlement.2026-12"]
    assert folder.summary("settlement.2026-12")["generated_at"] == (NOW + timedelta(hours=1)).isoformat()
    html = folder.read("settlement.2026-12", "html")
    assert html is not None and html.count('class="bar"') == 31 + 3  # a bar per day of December, p50/p90/p99
    assert "<script" not in html and "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert sorted(p.name for p in (tmp_path / "reports" / "settlement.2026-12").iterdir()) == [
        "meta.json",
        "report.csv",
        "report.html",
        "report.json",
    ]


def test_the_schedule_file_is_checked_whole_with_one_line_naming_the_key(tmp_path: Path) -> None:
    shipped = load_schedules(Path(__file__).resolve().parents[2] / "config" / "reports.yaml")
    assert {s.report for s in shipped} == set(REGISTRY)
    cases = {
        "schedules:\n  daily:\n    report: settlement\n    cron: '61 0 * * *'\n    period: previous-day\n": (
            "schedules.daily.cron: '61 0 * * *' is not a cron expression"
        ),
        "schedules:\n  daily:\n    report: nope\n    cron: '0 0 * * *'\n    period: previous-day\n": (
            "schedules.daily.report: no report 'nope'"
        ),
        "schedules:\n  daily:\n    report: risk\n    cron: '0 0 * * *'\n    period: yesterday\n": (
            "schedules.daily.period must be one of"
        ),
        "schedules:\n  daily:\n    report: risk\n    cron: '0 0 * * *'\n    period: previous-day\n    tz: CET\n": (
            "schedules.daily.tz: unknown key"
        ),
        "schedules:\n  daily:\n    report: risk\n    period: previous-day\n": "schedules.daily.cron is required",
        "reports: {}\n": "unknown key reports",
    }
    for i, (text, message) in enumerate(cases.items()):
        path = tmp_path / f"reports-{i}.yaml"
        path.write_text(text)
        with pytest.raises(ConfigError) as caught:
            load_schedules(path)
        assert message in caught.value.message and "\n" not in caught.value.message


async def test_reports_api_lists_with_cursors_and_serves_each_format(database: Database, tmp_path: Path) -> None:
    gw = await start_gateway(
        database, simulators=False, dispatch=False, poll=False, partners={}, reports__folder=str(tmp_path)
    )
    try:
        engine = gw.runtime.engine
        await seed_day(engine)
        folder = ReportFolder(tmp_path)
        for name, period in (("settlement", "2026-12-05"), ("settlement", "2026-12"), ("risk", "2026-Q4")):
            folder.write(await build_report(engine, name, period, NOW, CONTEXT))
        await check_anomalies(engine, load_settings(env={}).anomaly, DAY + timedelta(hours=2))
        async with engine.begin() as conn:
            finance = await repo.create_api_key(conn, "treasury", ["finance"], system_clock())
        head = gw.headers(finance)
        seen, cursor = [], None
        while True:
            query = {"limit": "2", **({"cursor": cursor} if cursor else {})}
            async with gw.session.get(f"{gw.url}/v1/reports", params=query, headers=head) as resp:
                assert resp.status == 200, await resp.text()
                page = await resp.json()
            seen += [item["id"] for item in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert seen == ["risk.2026-Q4", "settlement.2026-12", "settlement.2026-12-05"]
        async with gw.session.get(f"{gw.url}/v1/reports", params={"name": "risk"}, headers=head) as resp:
            assert [i["id"] for i in (await resp.json())["items"]] == ["risk.2026-Q4"]
        for path, media in (
            ("settlement.2026-12-05", "application/json"),
            ("settlement.2026-12-05?format=csv", "text/csv"),
            ("settlement.2026-12-05/html", "text/html"),
        ):
            async with gw.session.get(f"{gw.url}/v1/reports/{path}", headers=head) as resp:
                assert resp.status == 200 and resp.content_type == media
                body = await resp.text()
        assert "<svg" in body
        for path, status in (
            ("settlement.2026-11", 404),
            ("../etc", 404),
            ("settlement.2026-12/pdf", 404),
            ("settlement.2026-12?format=pdf", 400),
        ):
            async with gw.session.get(f"{gw.url}/v1/reports/{path}", headers=head) as resp:
                assert resp.status == status, path
                assert resp.content_type == "application/problem+json"
        async with gw.session.get(f"{gw.url}/v1/reports", headers=gw.headers()) as resp:
            assert resp.status == 403  # an instructions key is not finance
        async with gw.session.get(f"{gw.url}/v1/alerts", params={"outcome": "anomaly"}, headers=head) as resp:
            assert resp.status == 200
            found = (await resp.json())["items"]
        assert {a["findings"][0]["rule"] for a in found} == {"anomaly.unknown_open", "anomaly.stuck"}
        assert {(a["instruction_id"], a["amount"], a["business_unit"], a["outcome"]) for a in found} == {
            (None, None, "shop", "anomaly")
        }
    finally:
        await stop_gateway(gw)


async def test_the_scheduler_runs_reports_by_cron_and_the_anomaly_check_and_survives_a_failing_job(
    engine: AsyncEngine, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    await seed_day(engine)
    anomaly = load_settings(env={}).with_overrides(anomaly__check_seconds=0.2).anomaly
    daily = Schedule("daily", "settlement", "15 0 * * *", "previous-day")
    scheduler = ReportScheduler(engine, lambda: NOW, [daily], ReportFolder(tmp_path), CONTEXT, anomaly)
    assert daily.trigger().get_next_fire_time(None, NOW) == datetime(2026, 12, 7, 0, 15, tzinfo=UTC)
    assert (await scheduler.run(daily))["id"] == "settlement.2026-12-05"
    scheduler.start()
    try:
        deadline = asyncio.get_running_loop().time() + 20
        while not await anomaly_alerts(engine):  # the interval job ran the check: the unknown outcome is overdue
            assert asyncio.get_running_loop().time() < deadline, "the anomaly check never ran"
            await asyncio.sleep(0.1)

        async def broken() -> object:
            raise RuntimeError("disk full")

        await scheduler._guarded("report broken", broken)  # logged, not raised: it runs again at its next time
    finally:
        await scheduler.stop()
    assert "scheduled report broken failed" in caplog.text
    assert ReportFolder(tmp_path).ids() == ["settlement.2026-12-05"]


async def anomaly_alerts(engine: AsyncEngine) -> list[str]:
    async with engine.connect() as conn:
        rows = await conn.execute(select(risk_alerts.c.reason_code).where(risk_alerts.c.outcome == "anomaly"))
        return [r[0] for r in rows]


async def test_a_write_killed_halfway_leaves_the_previous_report_whole(engine: AsyncEngine, tmp_path: Path) -> None:
    await seed_day(engine)
    folder = ReportFolder(tmp_path)
    folder.write(await build_report(engine, "risk", "2026-12", NOW, CONTEXT))
    before = folder.read("risk.2026-12", "json")
    # a run killed while writing: its half file sits under the temporary name, never under the served one
    (tmp_path / "risk.2026-12" / "report.json.tmp").write_text('{"id": "risk.2026-12", "sect')
    (tmp_path / "settlement.2026-11").mkdir()  # a first run killed before its summary: not listed
    assert folder.read("risk.2026-12", "json") == before and json.loads(before or "")["id"] == "risk.2026-12"
    assert folder.ids() == ["risk.2026-12"]
    folder.write(await build_report(engine, "risk", "2026-12", NOW + timedelta(hours=1), CONTEXT))  # the re-run
    assert (
        json.loads(folder.read("risk.2026-12", "json") or "")["generated_at"] == (NOW + timedelta(hours=1)).isoformat()
    )
    assert not (tmp_path / "risk.2026-12" / "report.json.tmp").exists()
