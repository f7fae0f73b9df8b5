"""The console's rules over plain HTTP: sessions, cookies, CSRF, scopes, escaping, headers, live events.

A real gateway (no partners, no dispatcher) on SQLite and PostgreSQL; the console user is
an aiohttp client with its own cookie jar (tests/console/support.py).
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from gateway.store.tables import console_sessions, webhook_deliveries
from tests.console.support import ConsoleUser, csrf_of
from tests.support import REPO, Database, LiveGateway, example_instruction, start_gateway, stop_gateway

CREDITOR_IBAN = "SE4550000000058398257466"  # the contract example's creditor


@pytest.fixture
async def gw(database: Database) -> AsyncIterator[LiveGateway]:
    gateway = await start_gateway(
        database, simulators=False, dispatch=False, poll=False, partners={}, console__live_interval_seconds=0.1
    )
    try:
        yield gateway
    finally:
        await stop_gateway(gateway)


@pytest.fixture
async def user(gw: LiveGateway) -> AsyncIterator[ConsoleUser]:
    u = ConsoleUser.open(gw.url)
    try:
        yield u
    finally:
        await u.close()


async def submit(gw: LiveGateway, key: str | None = None, **changes: object) -> str:
    resp = await gw.post_instruction(example_instruction(**changes), key=key)
    assert resp.status == 202, await resp.text()
    return str((await resp.json())["id"])


async def test_a_key_becomes_a_session_with_a_strict_cookie(gw: LiveGateway, user: ConsoleUser) -> None:
    status, html = await user.page("/console/")
    assert status == 303  # not signed in: to the sign-in page
    resp = await user.sign_in(gw.key)
    assert resp.status == 303 and resp.headers["Location"] == "/console/"
    cookie = next(c for c in resp.headers.getall("Set-Cookie") if c.startswith("gw_console="))
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/console" in cookie
    assert "Secure" not in cookie  # plain http on loopback; over TLS the cookie is Secure
    async with user.http.get(f"{gw.url}/console/") as page:
        assert page.status == 200
        html = await page.text()
        csp = page.headers["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp and "unsafe-inline" not in csp
        assert page.headers["X-Frame-Options"] == "DENY" and page.headers["Cache-Control"] == "no-store"
    assert "erp-europe" in html and "<script>" not in html and " style=" not in html and " onclick" not in html
    # the API's answers are not touched by the console's headers
    async with gw.session.get(f"{gw.url}/v1/instructions", headers=gw.headers()) as api:
        assert "Content-Security-Policy" not in api.headers


async def test_a_bad_key_or_a_missing_token_signs_nobody_in(gw: LiveGateway, user: ConsoleUser) -> None:
    resp = await user.sign_in("gw_notakey")
    assert resp.status == 401 and "not valid" in await resp.text()
    async with user.http.post(f"{gw.url}/console/sign-in", data={"api_key": gw.key}, allow_redirects=False) as r:
        assert r.status == 403  # no CSRF token: refused before the key is even looked at
    async with gw.runtime.engine.connect() as conn:
        assert (await conn.execute(console_sessions.select())).all() == []


async def test_every_post_needs_the_sessions_csrf_token(gw: LiveGateway, user: ConsoleUser) -> None:
    await user.sign_in(gw.key)
    async with user.http.post(f"{gw.url}/console/sign-out", data={}, allow_redirects=False) as r:
        assert r.status == 403
    async with user.http.post(f"{gw.url}/console/sign-out", data={"csrf": "forged"}, allow_redirects=False) as r:
        assert r.status == 403
    assert (await user.page("/console/"))[0] == 200  # still signed in
    instruction_id = await submit(gw)
    async with user.http.post(f"{gw.url}/console/payments/{instruction_id}/cancel", allow_redirects=False) as r:
        assert r.status == 403
    assert (await gw.get_instruction(instruction_id))["status"] == "received"  # nothing changed


async def test_sign_out_ends_the_session_for_good(gw: LiveGateway, user: ConsoleUser) -> None:
    await user.sign_in(gw.key)
    token = next(c.value for c in user.http.cookie_jar if c.key == "gw_console")
    resp = await user.post("/console/", "/console/sign-out")
    assert resp.status == 303 and resp.headers["Location"] == "/console/sign-in"
    assert (await user.page("/console/"))[0] == 303
    # the old cookie, replayed by someone who kept it, opens nothing
    replay = ConsoleUser.open(gw.url)
    try:
        replay.http.cookie_jar.update_cookies({"gw_console": token})
        assert (await replay.page("/console/"))[0] == 303
    finally:
        await replay.close()


async def test_an_idle_session_and_a_revoked_key_end_the_session(gw: LiveGateway, user: ConsoleUser) -> None:
    await user.sign_in(gw.key)
    idle = gw.runtime.settings.console.idle_timeout_seconds
    async with gw.runtime.engine.begin() as conn:
        await conn.execute(
            update(console_sessions).values(last_seen_at=gw.runtime.clock() - timedelta(seconds=idle + 1))
        )
    assert (await user.page("/console/"))[0] == 303
    key = await gw.new_key("erp-europe")
    await user.sign_in(key)
    assert (await user.page("/console/"))[0] == 200
    admin = await gw.new_key("it", ("admin",))
    async with gw.session.get(f"{gw.url}/v1/api-keys", headers=gw.headers(admin)) as r:
        key_id = next(k["id"] for k in (await r.json())["items"] if k["prefix"] and key.startswith(k["prefix"]))
    async with gw.session.post(f"{gw.url}/v1/api-keys/{key_id}/revoke", headers=gw.headers(admin)) as r:
        assert r.status == 200
    assert (await user.page("/console/"))[0] == 303


async def test_a_business_unit_sees_its_own_payments_only(gw: LiveGateway, user: ConsoleUser) -> None:
    other_key = await gw.new_key("erp-americas")
    mine = await submit(gw)
    theirs = await submit(gw, other_key)
    await user.sign_in(gw.key)
    status, html = await user.page("/console/payments")
    assert status == 200 and mine in html and theirs not in html
    status, html = await user.page(f"/console/payments/{mine}")
    assert status == 200 and html.count('id="partner-messages"') == 1
    title = html.split("<title>", 1)[1].split("</title>", 1)[0]
    assert title.startswith("Payment ") and "<" not in title and "&lt;" not in title, title
    status, html = await user.page(f"/console/payments/{theirs}")
    assert status == 404 and "no payment" in html
    status, html = await user.page(f"/console/payments?q={theirs}")
    assert status == 200 and f"/console/payments/{theirs}" not in html and "No payment matches" in html
    assert (await user.page("/console/payments/ins_nonsense"))[0] == 404
    resp = await user.post(f"/console/payments/{mine}", f"/console/payments/{theirs}/cancel")
    assert resp.status == 404
    assert (await gw.get_instruction(theirs, other_key))["status"] == "received"
    # finance pages are not a business unit's
    assert (await user.page("/console/holds"))[0] == 403
    assert (await user.page("/console/ledger"))[0] == 403
    assert (await user.page("/console/admin/keys"))[0] == 403


async def test_names_are_text_and_accounts_masked(gw: LiveGateway, user: ConsoleUser) -> None:
    creditor = {"name": "<script>alert(1)</script>", "account": {"iban": CREDITOR_IBAN}}
    instruction_id = await submit(gw, creditor=creditor)
    await user.sign_in(gw.key)
    for path in (f"/console/payments/{instruction_id}", "/console/payments"):
        status, html = await user.page(path)
        assert status == 200
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "<script>alert" not in html
        assert CREDITOR_IBAN not in html and "SE45" in html


async def test_a_payment_is_cancelled_from_its_page(gw: LiveGateway, user: ConsoleUser) -> None:
    instruction_id = await submit(gw)
    await user.sign_in(gw.key)
    page = f"/console/payments/{instruction_id}"
    resp = await user.post(page, f"{page}/cancel")
    assert resp.status == 303
    assert (await gw.get_instruction(instruction_id))["status"] == "cancelled"
    _, html = await user.page(resp.headers["Location"])
    assert "Done: cancelled" in html and "Cancel this payment" not in html
    # a second cancel (a stale page) is refused and changes nothing
    async with user.http.post(f"{gw.url}{page}/cancel", data={"csrf": csrf_of(html)}) as r:
        assert r.status == 409
    events = (await gw.get_instruction(instruction_id))["events"]
    assert [e["status"] for e in events].count("cancelled") == 2  # applied once, refused once


async def test_admin_creates_rotates_and_revokes_keys(gw: LiveGateway, user: ConsoleUser) -> None:
    await user.sign_in(await gw.new_key("it", ("admin",)))
    resp = await user.post("/console/admin/keys", "/console/admin/keys", business_unit="erp-asia", scopes="finance")
    assert resp.status == 201
    html = await resp.text()
    secret = html.split('<code id="new-secret">')[1].split("</code>")[0]
    newcomer = ConsoleUser.open(gw.url)
    try:
        assert (await newcomer.sign_in(secret)).status == 303
        assert (await newcomer.page("/console/holds"))[0] == 200  # a finance key
        key_id = html.split("The secret of <strong>")[1].split("</strong>")[0]
        resp = await user.post("/console/admin/keys", f"/console/admin/keys/{key_id}/rotate", grace_hours="0")
        assert resp.status == 201
        assert (await newcomer.page("/console/holds"))[0] == 303  # the rotated-out key's session ended
        rotated = (await resp.text()).split("The secret of <strong>")[1].split("</strong>")[0]
        resp = await user.post("/console/admin/keys", f"/console/admin/keys/{rotated}/revoke")
        assert resp.status == 303
        async with gw.session.get(f"{gw.url}/v1/api-keys/{rotated}", headers=gw.headers(gw.key)) as r:
            assert r.status == 403  # (a business-unit key may not look; the admin check below does)
        _, keys_html = await user.page("/console/admin/keys")
        assert f"{rotated}" in keys_html and "revoked" in keys_html
        resp = await user.post("/console/admin/keys", "/console/admin/keys", business_unit=" ", scopes="finance")
        assert resp.status == 400  # one line saying what to fix, no key made
    finally:
        await newcomer.close()


async def test_the_live_stream_sends_figures_and_ends_with_the_session(gw: LiveGateway, user: ConsoleUser) -> None:
    instruction_id = await submit(gw)
    async with user.http.get(f"{gw.url}/console/live") as r:
        assert r.status == 401
    await user.sign_in(gw.key)
    async with user.http.get(f"{gw.url}/console/live?payment={instruction_id}") as stream:
        assert stream.headers["Content-Type"].startswith("text/event-stream")
        assert (await stream.content.readline()).decode() == "event: figures\n"
        data = json.loads((await stream.content.readline()).decode().removeprefix("data: "))
        assert data["payment-status"] == "received" and data["backlog"] == 1 and data["status-received"] == 1
        await user.post("/console/", "/console/sign-out")
        lines = [(await asyncio.wait_for(stream.content.readline(), 5)).decode() for _ in range(6)]
        assert "event: ended\n" in lines


def test_templates_have_no_inline_script_style_or_handler_and_nothing_from_elsewhere() -> None:
    """What the CSP forbids is not written in the first place (the browser test checks the policy itself)."""
    folder = REPO / "gateway" / "console" / "templates"
    templates = sorted(folder.glob("*.html"))
    assert len(templates) >= 9
    for path in templates:
        text = path.read_text()
        assert not re.search(r"<script(?![^>]*\bsrc=)", text), path.name
        assert not re.search(r"\sstyle=|<style|\son[a-z]+=", text), path.name
        assert not re.search(r"(src|href)=\"(https?:)?//", text), path.name
    static = {p.name for p in (REPO / "gateway" / "console" / "static").iterdir()}
    assert static == {"console.css", "console.js"}


async def test_the_static_assets_are_served_from_the_package(gw: LiveGateway) -> None:
    for name, kind in (("console.css", "text/css"), ("console.js", "javascript")):
        async with gw.session.get(f"{gw.url}/console/static/{name}") as resp:
            assert resp.status == 200 and kind in resp.headers["Content-Type"]
            assert resp.headers["X-Content-Type-Options"] == "nosniff"


async def test_finance_searches_payments_by_unit_currency_amount_and_dates(gw: LiveGateway, user: ConsoleUser) -> None:
    small = await submit(gw, amount="10.00")
    large = await submit(gw, await gw.new_key("erp-americas"), amount="900.00")
    await user.sign_in(await gw.new_key("group-finance", ("finance",)))
    today = gw.runtime.clock().date().isoformat()

    async def found(query: str) -> set[str]:
        status, html = await user.page(f"/console/payments?{query}")
        assert status == 200, html
        return {i for i in (small, large) if f"/console/payments/{i}" in html}

    assert await found("") == {small, large}  # finance sees every unit's
    assert await found("business_unit=erp-americas") == {large}
    assert await found("currency=EUR&amount_from=100") == {large}
    assert await found("currency=EUR&amount_to=10.00") == {small}
    assert await found(f"from={today}&to={today}") == {small, large}
    assert await found("to=2000-01-01") == set()
    status, html = await user.page("/console/payments?amount_from=100")
    assert status == 400 and "choose a currency" in html
    status, html = await user.page("/console/payments?currency=EUR&amount_from=1.234")
    assert status == 400 and "amount from" in html
    status, html = await user.page("/console/payments?from=yesterday")
    assert status == 400 and "ISO 8601" in html


async def test_a_webhook_delivery_is_redelivered_from_the_payment_page(database: Database) -> None:
    gw = await start_gateway(
        database,
        simulators=False,
        dispatch=False,
        poll=False,
        partners={},
        webhooks__enabled=False,  # no worker: the delivery waits where the test can see it
        webhooks__allow_private_addresses=True,
    )
    user = ConsoleUser.open(gw.url)
    try:
        async with gw.session.post(
            f"{gw.url}/v1/webhook-endpoints", json={"url": "http://127.0.0.1:9/hook"}, headers=gw.headers()
        ) as r:
            assert r.status == 201, await r.text()
        instruction_id = await submit(gw)
        async with gw.runtime.engine.connect() as conn:
            (delivery,) = (
                await conn.execute(
                    select(webhook_deliveries).where(webhook_deliveries.c.instruction_id == instruction_id)
                )
            ).all()
        await user.sign_in(gw.key)
        page = f"/console/payments/{instruction_id}"
        status, html = await user.page(page)
        assert status == 200 and delivery.id in html
        resp = await user.post(page, f"{page}/deliveries/{delivery.id}/redeliver")
        assert resp.status == 303 and resp.headers["Location"].endswith("?n=redelivered")
        async with gw.runtime.engine.connect() as conn:
            again = (await conn.execute(select(webhook_deliveries).where(webhook_deliveries.c.id == delivery.id))).one()
        assert again.status == "pending" and again.available_at >= delivery.available_at
        # a delivery of another payment, through this payment's URL: not found, nothing changes
        other = await submit(gw)
        resp = await user.post(page, f"/console/payments/{other}/deliveries/{delivery.id}/redeliver")
        assert resp.status == 404
    finally:
        await user.close()
        await stop_gateway(gw)


async def test_finance_reads_the_trial_balance_now_and_as_of_a_date(gateway: LiveGateway) -> None:
    gw = gateway  # with the bank simulator and the dispatcher: a payment that settles is posted
    await gw.wait_for(await submit(gw, amount="10.00"))
    user = ConsoleUser.open(gw.url)
    try:
        await user.sign_in(await gw.new_key("group-finance", ("finance",)))
        status, html = await user.page("/console/ledger")
        assert status == 200 and "<caption>EUR" in html
        total = re.search(r"Sum \(zero when the books balance\)</th><td class=\"num\">([^<]+)</td>", html)
        assert total is not None and total.group(1) == "0.00"
        status, html = await user.page("/console/ledger?as_of=2000-01-01")
        assert status == 200 and "No posting yet" in html
        status, html = await user.page("/console/ledger?as_of=31.12.2026")
        assert status == 400 and "2026-12-31" in html
    finally:
        await user.close()


async def test_the_dashboard_shows_each_partners_circuit_breaker_live(gateway: LiveGateway) -> None:
    gw = gateway
    user = ConsoleUser.open(gw.url)
    try:
        await user.sign_in(gw.key)
        status, html = await user.page("/console/")
        assert status == 200 and 'data-field="partner-iso20022_bank">closed<' in html
        breaker = gw.runtime.router.breaker
        for _ in range(breaker.failure_threshold):
            breaker.record_failure("iso20022_bank")
        _, html = await user.page("/console/")
        assert 'data-field="partner-iso20022_bank">open<' in html
        async with user.http.get(f"{gw.url}/console/live") as stream:
            assert (await stream.content.readline()).decode() == "event: figures\n"
            data = json.loads((await stream.content.readline()).decode().removeprefix("data: "))
        assert data["partner-iso20022_bank"] == "open" and data["partner-card_acquirer"] == "closed"
    finally:
        await user.close()
