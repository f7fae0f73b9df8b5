"""The console in a real browser: Playwright driving Debian's chromium against an in-process gateway.

One gateway (gateway/devtools/harness.py: the ISO 20022 bank simulator on loopback, risk
screening on) and one browser serve the whole module; each test has its own browser
context (its own cookies). Screenshots go to a temporary folder, or to docs/img when
GATEWAY_CONSOLE_SCREENSHOTS=docs (how docs/console.md's pictures are made).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
import yaml
from playwright.async_api import Browser, BrowserContext, Page, async_playwright, expect
from sqlalchemy import select

from gateway.config import load_settings
from gateway.devtools.harness import LocalGateway, local_gateway
from gateway.domain.rebates import period_of
from gateway.plugins.manager import Plugins
from gateway.reports.folder import ReportFolder, build_report
from gateway.store import repo
from gateway.store.tables import holds, instructions
from tests.support import PG_URL, REPO, example_instruction

pytestmark = pytest.mark.asyncio(loop_scope="module")

CREDITOR_IBAN = "SE4550000000058398257466"  # the contract example's creditor


def _chromium() -> str:
    found = shutil.which("chromium")
    if found is None:
        message = (
            "Debian's chromium is not installed (apt-get install -y chromium); the console's browser tests need it"
        )
        if PG_URL:  # CI: a missing browser fails, as a missing PostgreSQL does
            pytest.fail(message)
        pytest.skip(message)
    return found


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if os.environ.get("GATEWAY_CONSOLE_SCREENSHOTS") == "docs":
        return REPO / "docs" / "img"
    return tmp_path_factory.mktemp("console-shots")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def gateway(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[LocalGateway]:
    risk = tmp_path_factory.mktemp("risk") / "risk.yaml"
    risk.write_text(
        yaml.safe_dump(
            {
                "defaults": {
                    "timezone": "UTC",
                    "hold_expiry": "1h",
                    "rules": {"new_beneficiary": {"large_amount": "5000"}},
                }
            }
        )
    )
    programs = tmp_path_factory.mktemp("rebates") / "rebates.yaml"
    programs.write_text((REPO / "tests" / "data" / "console" / "rebates.yaml").read_text(encoding="utf-8"))
    base = load_settings(env={})
    sim_cfg = {k: v for k, v in base.section("simulators")["iso20022_bank"].items() if k not in ("host", "port")}
    bank = Plugins().simulator_factories()["iso20022_bank"](sim_cfg | {"settle_delay": 5.0})
    async with local_gateway(
        base,
        {"iso20022_bank": bank},
        business_unit="erp-europe",
        risk__file=str(risk),
        rebates__file=str(programs),
        reports__folder=str(tmp_path_factory.mktemp("reports")),
        dispatch__idle_poll_seconds=0.05,
        dispatch__backoff_base_seconds=0.1,
        console__live_interval_seconds=0.3,
    ) as local:
        yield local


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser() -> AsyncIterator[Browser]:
    executable = _chromium()
    async with async_playwright() as pw:
        launched = await pw.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        try:
            yield launched
        finally:
            await launched.close()


@pytest_asyncio.fixture(loop_scope="module")
async def context(browser: Browser) -> AsyncIterator[BrowserContext]:
    ctx = await browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        yield ctx
    finally:
        await ctx.close()


async def new_key(gw: LocalGateway, unit: str, *scopes: str) -> str:
    async with gw.runtime.engine.begin() as conn:
        return await repo.create_api_key(conn, unit, scopes or ("instructions",), gw.runtime.clock())


async def submit(gw: LocalGateway, key: str, **changes: Any) -> str:
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{gw.url}/v1/instructions",
            json=example_instruction(**changes),
            headers={"Authorization": f"Bearer {key}", "Idempotency-Key": uuid.uuid4().hex},
        ) as resp,
    ):
        assert resp.status == 202, await resp.text()
        return str((await resp.json())["id"])


async def sign_in(page: Page, gw: LocalGateway, key: str) -> None:
    await page.goto(f"{gw.url}/console/")
    await expect(page).to_have_url(f"{gw.url}/console/sign-in")
    await page.get_by_label("API key").fill(key)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()


def csp_reports(page: Page) -> list[str]:
    """Console messages about the Content-Security-Policy (a refused inline script would show here)."""
    found: list[str] = []
    page.on("console", lambda msg: found.append(msg.text) if "Content Security Policy" in msg.text else None)
    return found


async def test_sign_in_find_a_payment_and_watch_it_settle_live(
    gateway: LocalGateway, context: BrowserContext, shots: Path
) -> None:
    page = await context.new_page()
    violations = csp_reports(page)
    await sign_in(page, gateway, gateway.key)
    instruction_id = await submit(gateway, gateway.key)
    await page.reload()
    await page.screenshot(path=str(shots / "console-dashboard.png"), full_page=True)
    await page.get_by_role("link", name="Payments").click()
    await page.get_by_label("Reference or payment id").fill(instruction_id)
    await page.keyboard.press("Enter")  # the search form, by keyboard
    await page.get_by_role("link", name=instruction_id).click()
    status = page.locator("#payment-status")
    shown = await status.text_content()
    assert shown != "settled", "the bank settles after 5 s: the page must open before"
    # the page was rendered before settlement; the server-sent events bring the new status in
    await expect(status).to_have_text("settled", timeout=30_000)
    await page.screenshot(path=str(shots / "console-payment.png"), full_page=True)
    await page.reload()
    await expect(page.locator("ol.timeline li").last).to_contain_text("settled")
    # what the gateway sent the bank and what came back, masked, each body folded until opened
    messages = page.locator("#partner-messages")
    await expect(messages.get_by_role("heading", name="Partner messages")).to_be_visible()
    sent = messages.locator("li.message.out").first
    await expect(sent.locator("summary")).to_contain_text("submit · POST /pain001")
    await expect(sent.locator("pre.body")).to_be_hidden()
    await sent.locator("summary").click()  # a <details>: no script needed
    await expect(sent.locator("pre.body")).to_contain_text("CstmrCdtTrfInitn")
    await expect(messages.locator("li.message.in").last).to_contain_text("callback")
    assert CREDITOR_IBAN not in await page.content()
    await messages.screenshot(path=str(shots / "console-partner-messages.png"))
    assert violations == []


async def test_two_finance_users_decide_a_hold_four_eyes(
    gateway: LocalGateway, context: BrowserContext, browser: Browser, shots: Path
) -> None:
    submitter = await new_key(gateway, "treasury", "instructions", "finance")
    instruction_id = await submit(gateway, submitter, amount="9000.00")  # a large new beneficiary: held
    page = await context.new_page()
    await sign_in(page, gateway, submitter)
    await page.get_by_role("link", name="Holds", exact=True).click()
    hold = page.locator("section.hold", has=page.locator(f'a[href="/console/payments/{instruction_id}"]'))
    await expect(hold).to_be_visible(timeout=15_000)
    await expect(hold).to_contain_text("new_beneficiary")  # the findings, for the decision
    await page.screenshot(path=str(shots / "console-holds.png"), full_page=True)
    await hold.get_by_label("Why").fill("my own payment")
    await hold.get_by_role("button", name="Approve").click()
    await expect(page.get_by_role("alert")).to_contain_text("four eyes")  # one alone cannot
    second = await browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        other = await second.new_page()
        await sign_in(other, gateway, await new_key(gateway, "group-finance", "finance"))
        await other.goto(f"{gateway.url}/console/holds")
        hold = other.locator("section.hold", has=other.locator(f'a[href="/console/payments/{instruction_id}"]'))
        await hold.get_by_label("Why").fill("known supplier, checked by phone")
        await hold.get_by_role("button", name="Approve").click()
        await expect(other.get_by_role("status")).to_contain_text("approved")
        await expect(other.locator("table").last).to_contain_text("known supplier, checked by phone")
    finally:
        await second.close()
    async with gateway.runtime.engine.connect() as conn:
        decided = (await conn.execute(select(holds).where(holds.c.instruction_id == instruction_id))).one()
        row = (
            await conn.execute(
                select(instructions.c.status, instructions.c.submitted_by).where(instructions.c.id == instruction_id)
            )
        ).one()
    assert decided.decision == "approved" and decided.decided_by.startswith("key_")
    assert decided.decided_by != row.submitted_by  # the second pair of eyes decided
    assert row.status != "held"  # released to routing


async def test_a_business_unit_cannot_open_another_units_payment(
    gateway: LocalGateway, context: BrowserContext
) -> None:
    theirs = await submit(gateway, await new_key(gateway, "erp-americas"))
    page = await context.new_page()
    await sign_in(page, gateway, gateway.key)
    await page.goto(f"{gateway.url}/console/payments")
    await expect(page.get_by_role("link", name=theirs)).to_have_count(0)
    response = await page.goto(f"{gateway.url}/console/payments/{theirs}")  # typed in by URL
    assert response is not None and response.status == 404
    await expect(page.get_by_role("alert")).to_contain_text("no payment")
    response = await page.goto(f"{gateway.url}/console/holds")
    assert response is not None and response.status == 403


async def test_csp_and_escaping_hold_and_sign_out_ends_it(gateway: LocalGateway, browser: Browser, shots: Path) -> None:
    name = "<script>window.pwned = 1</script>"
    instruction_id = await submit(gateway, gateway.key, creditor={"name": name, "account": {"iban": CREDITOR_IBAN}})
    phone = await browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    try:
        page = await phone.new_page()
        violations = csp_reports(page)
        await sign_in(page, gateway, gateway.key)
        response = await page.goto(f"{gateway.url}/console/payments/{instruction_id}")
        assert response is not None
        csp = response.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp
        await expect(page.get_by_text(name)).to_be_visible()  # shown as text
        assert await page.evaluate("window.pwned") is None  # never run
        assert CREDITOR_IBAN not in await page.content()
        # an inline script injected into the page is refused by the policy
        await page.evaluate(
            "() => { const s = document.createElement('script'); s.textContent = 'window.inlined = 1';"
            " document.body.appendChild(s); }"
        )
        assert await page.evaluate("window.inlined") is None
        assert violations, "the refused inline script was reported"
        await page.screenshot(path=str(shots / "console-phone.png"), full_page=True)
        await page.get_by_role("button", name="Sign out").click()
        await expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
        await page.goto(f"{gateway.url}/console/payments/{instruction_id}")
        await expect(page).to_have_url(f"{gateway.url}/console/sign-in")
    finally:
        await phone.close()


async def settled(gw: LocalGateway, key: str, instruction_id: str) -> dict[str, Any]:
    """The payment once the bank settled it (its settle delay is 5 s)."""
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {key}"}) as http:
        for _ in range(300):
            async with http.get(f"{gw.url}/v1/instructions/{instruction_id}") as resp:
                view = await resp.json()
            if view["status"] == "settled":
                return dict(view)
            await asyncio.sleep(0.1)
    raise AssertionError(f"{instruction_id} is still {view['status']}")


async def reconcile_today(gw: LocalGateway, finance: str, breaks: list[dict[str, Any]]) -> None:
    """The bank simulator's statement of today with ``breaks`` injected, imported and reconciled."""
    sim = gw.simulator_urls["iso20022_bank"]
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{sim}/_sim/scenario") as resp:
            scenario = (await resp.json())["document"] or {"name": "recon"}
        scenario["statement"] = {"opening_balance": "1000000.00", "breaks": breaks}
        async with http.put(f"{sim}/_sim/scenario", json=scenario) as resp:
            assert resp.status == 200, await resp.text()
        async with http.get(f"{sim}/_sim/statements/{datetime.now(UTC).date().isoformat()}") as resp:
            statement = await resp.read()
        auth = {"Authorization": f"Bearer {finance}"}
        async with http.post(f"{gw.url}/v1/statements", data=statement, headers=auth) as resp:
            assert resp.status == 201, await resp.text()
        async with http.post(f"{gw.url}/v1/recon/run", headers=auth) as resp:
            assert resp.status == 200, await resp.text()


async def test_finance_resolves_a_reconciliation_break_in_the_console(
    gateway: LocalGateway, context: BrowserContext, shots: Path
) -> None:
    finance = await new_key(gateway, "treasury", "finance")
    views = [await settled(gateway, gateway.key, await submit(gateway, gateway.key)) for _ in range(2)]
    await reconcile_today(
        gateway,
        finance,
        [
            {"kind": "wrong_amount", "amount_delta": "0.40", "match": {"reference": views[0]["reference"]}},
            {"kind": "unknown_entry", "count": 1},
        ],
    )
    page = await context.new_page()
    violations = csp_reports(page)
    await sign_in(page, gateway, finance)
    await page.get_by_role("link", name="Reconciliation").click()
    await expect(page.get_by_role("heading", name="Reconciliation")).to_be_visible()
    await expect(page.locator("figure.chart svg")).to_have_count(2)
    await page.screenshot(path=str(shots / "console-recon.png"), full_page=True)
    await page.get_by_label("Kind", exact=True).select_option("amount_mismatch")
    await page.get_by_role("button", name="Filter").click()
    rows = page.locator("tbody tr")
    await expect(rows).to_have_count(1)
    await rows.first.get_by_role("link").click()
    await expect(page.locator("#break-state")).to_have_text("open")
    break_id = page.url.rsplit("/", 1)[1]
    await page.get_by_label("Owner").fill("ana")
    await page.get_by_role("button", name="Assign").click()
    await expect(page.get_by_role("status")).to_contain_text("assigned")
    await page.get_by_label("Comment").fill("40 cents short: the bank's charge, agreed by phone")
    await page.get_by_role("button", name="Comment", exact=True).click()
    await expect(page.locator("ul.comments")).to_contain_text("agreed by phone")
    await page.screenshot(path=str(shots / "console-recon-break.png"), full_page=True)
    await page.get_by_label("Resolution reason").fill("bank charge, booked by hand")
    await page.get_by_role("button", name="Resolve").click()
    await expect(page.locator("#break-state")).to_have_text("resolved")
    await expect(page.get_by_role("button", name="Resolve")).to_have_count(0)
    async with (
        aiohttp.ClientSession(headers={"Authorization": f"Bearer {finance}"}) as http,
        http.get(f"{gateway.url}/v1/recon/breaks/{break_id}") as resp,
    ):
        stored = await resp.json()
    assert (stored["state"], stored["owner"], stored["reason"]) == ("resolved", "ana", "bank charge, booked by hand")
    assert stored["closed_by"].startswith("key_") and len(stored["comments"]) == 2
    assert violations == []


async def no_sideways_scroll(page: Page) -> None:
    """The page itself never scrolls sideways (wide tables scroll inside their own box)."""
    width = await page.evaluate("document.documentElement.scrollWidth")
    viewport = await page.evaluate("window.innerWidth")
    assert width <= viewport, f"the page is {width} px wide in a {viewport} px window"


async def test_admin_changes_a_rollout_mode_by_keyboard_at_phone_width(
    gateway: LocalGateway, browser: Browser, shots: Path
) -> None:
    admin = await new_key(gateway, "it-ops", "admin")
    await new_key(gateway, "erp-asia")  # a unit of its own: the other tests' payments keep their routes
    phone = await browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    try:
        page = await phone.new_page()
        violations = csp_reports(page)
        await sign_in(page, gateway, admin)
        await page.get_by_role("link", name="Rollout").click()
        await expect(page.get_by_role("heading", name="Staged rollout")).to_be_visible()
        await expect(page.locator('[data-cell="erp-asia/iso20022_bank"]')).to_have_text("live (default)")
        await no_sideways_scroll(page)
        # the whole form by keyboard: each control found by its label, Tab to the next, Enter submits
        await page.get_by_label("Business unit").focus()
        await page.keyboard.type("erp-asia")  # a select takes typed letters
        await expect(page.get_by_label("Business unit")).to_have_value("erp-asia")
        await page.keyboard.press("Tab")
        await expect(page.get_by_label("Partner")).to_be_focused()
        await page.get_by_label("Partner").select_option("iso20022_bank")
        await page.keyboard.press("Tab")
        await page.get_by_label("Mode", exact=True).select_option("canary")
        await page.keyboard.press("Tab")
        await expect(page.get_by_label("Canary percent (1-99)")).to_be_focused()
        await page.keyboard.type("25")
        await page.keyboard.press("Tab")
        await expect(page.get_by_label("Reason")).to_be_focused()
        await page.keyboard.type("a quarter of Asia's payments first, agreed with treasury")
        await page.keyboard.press("Enter")
        await expect(page.get_by_role("status")).to_contain_text("erp-asia/iso20022_bank: live to canary 25%")
        await expect(page.locator('[data-cell="erp-asia/iso20022_bank"]')).to_have_text("canary 25%")
        history = page.locator("table.history tbody tr").first
        await expect(history).to_contain_text("agreed with treasury")
        await expect(history).to_contain_text("console:key_")
        await no_sideways_scroll(page)
        await page.screenshot(path=str(shots / "console-rollout-phone.png"), full_page=True)
        assert violations == []
    finally:
        await phone.close()
    async with (
        aiohttp.ClientSession(headers={"Authorization": f"Bearer {admin}"}) as http,
        http.get(f"{gateway.url}/v1/rollout") as resp,
    ):
        items = (await resp.json())["items"]
    assert {(i["business_unit"], i["mode"], i["percent"]) for i in items} >= {("erp-asia", "canary", 25)}


async def test_finance_reads_a_periods_rebates_and_downloads_the_statement(
    gateway: LocalGateway, context: BrowserContext, shots: Path
) -> None:
    rt = gateway.runtime
    period = period_of("quarter", rt.clock())
    for invoice, amount in (("CON-1", "6000.00"), ("CON-2", "5000.00")):  # 11 000 EUR crosses the 2% tier
        async with (
            aiohttp.ClientSession() as http,
            http.post(
                f"{gateway.url}/v1/receivables",
                json={
                    "invoice_number": invoice,
                    "distributor": "dist-nord",
                    "amount": {"value": amount, "currency": "EUR"},
                    "due_date": "2026-12-31",
                },
                headers={"Authorization": f"Bearer {gateway.key}", "Idempotency-Key": uuid.uuid4().hex},
            ) as resp,
        ):
            assert resp.status == 201, await resp.text()
    report = await build_report(rt.engine, "rebates", period, rt.clock(), rt.report_context)
    ReportFolder(gateway.settings.reports_folder).write(report)
    page = await context.new_page()
    violations = csp_reports(page)
    await sign_in(page, gateway, await new_key(gateway, "group-finance", "finance"))
    await page.get_by_role("link", name="Rebates").click()
    await expect(page.get_by_label("Period")).to_have_value(period)  # the current quarter
    row = page.locator("table.accruals tbody tr", has_text="nord-quarterly")
    await expect(row).to_contain_text("11000.00")
    await expect(row).to_contain_text("220.00")  # 2% of the whole volume: what settling would post
    await expect(page.locator("table.programs")).to_contain_text("from 10000.00: 2%")
    await no_sideways_scroll(page)
    await page.screenshot(path=str(shots / "console-rebates.png"), full_page=True)
    async with page.expect_download() as download_info:
        await page.locator(".report-links").get_by_role("link", name="CSV").click()
    download = await download_info.value
    assert download.suggested_filename == f"rebates.{period}.csv"
    csv = Path(await download.path()).read_text(encoding="utf-8")
    assert "nord-quarterly" in csv and "11000.00" in csv
    await page.get_by_label("Period").fill("2001-Q1")
    await page.keyboard.press("Enter")
    await expect(page.get_by_text("No accrual in 2001-Q1")).to_be_visible()
    assert violations == []


async def test_admin_drives_the_bank_simulator_from_the_qa_page(
    gateway: LocalGateway, context: BrowserContext, shots: Path
) -> None:
    page = await context.new_page()
    violations = csp_reports(page)
    await sign_in(page, gateway, await new_key(gateway, "qa-team", "admin"))
    await page.get_by_role("link", name="QA").click()
    bank = page.locator("#sim-iso20022_bank")
    await expect(bank.get_by_role("heading", name="iso20022_bank")).to_be_visible()
    await bank.get_by_label("Scenario for iso20022_bank").select_option("happy")
    await bank.get_by_role("button", name="Switch scenario").click()
    await expect(page.get_by_role("status")).to_contain_text("iso20022_bank plays happy")
    await expect(page.locator("#scenario-iso20022_bank")).to_have_text("happy")
    await bank.get_by_label("Fault", exact=True).select_option("http_error")
    await bank.get_by_label("Exchange (transport and payload faults)").select_option("submit")
    await bank.get_by_label("HTTP status (http_error)").select_option("503")
    await bank.get_by_role("button", name="Inject fault").click()
    await expect(page.get_by_role("status")).to_contain_text("injects http_error")
    await expect(bank.locator("ul.faults")).to_contain_text('"kind": "http_error"')
    await no_sideways_scroll(page)
    await page.screenshot(path=str(shots / "console-qa.png"), full_page=True)
    # a payment meets the fault: the bank's journal (read through the console) shows the 503 it answered
    instruction_id = await submit(gateway, gateway.key)
    journal = f"{gateway.url}/console/qa/iso20022_bank/journal?instruction_id={instruction_id}&kind=submit"
    for _ in range(100):
        await page.goto(journal)
        if await page.locator("table.journal tbody tr", has_text="http_error").count():
            break
        await asyncio.sleep(0.1)
    struck = page.locator("table.journal tbody tr", has_text="http_error").first
    await expect(struck).to_contain_text("503")
    await struck.locator("summary").click()  # the body, as the simulator journals it (IBANs masked), as text
    await page.get_by_role("link", name="Back to the simulators").click()
    await page.locator("#sim-iso20022_bank").get_by_role("button", name="Clear faults of iso20022_bank").click()
    await expect(page.get_by_role("status")).to_contain_text("faults cleared")
    await expect(page.locator("#sim-iso20022_bank ul.faults")).to_have_count(0)
    view = await settled(gateway, gateway.key, instruction_id)  # the dispatcher's retry went through
    assert view["status"] == "settled"
    assert violations == []


async def test_the_new_pages_read_at_phone_width_and_at_1280(gateway: LocalGateway, browser: Browser) -> None:
    admin = await new_key(gateway, "it-ops", "admin")
    for width, height in ((390, 844), (1280, 900)):
        ctx = await browser.new_context(viewport={"width": width, "height": height}, is_mobile=width < 500)
        try:
            page = await ctx.new_page()
            violations = csp_reports(page)
            await sign_in(page, gateway, admin)
            # a long fault and the journal's bodies must wrap or scroll in their own box, never the page
            await page.goto(f"{gateway.url}/console/qa")
            bank = page.locator("#sim-iso20022_bank")
            await bank.get_by_label("Fault", exact=True).select_option("callback_late")
            await bank.get_by_label("Seconds (latency, late callback, hang)").fill("2.5")
            await bank.get_by_role("button", name="Inject fault").click()
            await expect(page.locator("#sim-iso20022_bank ul.faults")).to_contain_text("callback_late")
            for path, heading in (
                ("/console/qa", "QA: partner simulators"),
                ("/console/qa/iso20022_bank/journal", "Journal of iso20022_bank"),
                ("/console/rebates", "Rebates"),
                ("/console/admin/rollout", "Staged rollout"),
            ):
                await page.goto(f"{gateway.url}{path}")
                await expect(page.get_by_role("heading", name=heading, exact=True)).to_be_visible()
                await no_sideways_scroll(page)
            await page.goto(f"{gateway.url}/console/qa")
            await page.locator("#sim-iso20022_bank").get_by_role("button", name="Clear faults of iso20022_bank").click()
            await expect(page.locator("#sim-iso20022_bank ul.faults")).to_have_count(0)
            assert violations == []
        finally:
            await ctx.close()
