"""The console's rollout page (admin): modes per business unit and partner, a change with its reason, the history."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from gateway.store.rollout import changes, table_modes
from tests.console.support import ConsoleUser
from tests.support import Database, LiveGateway, start_gateway, stop_gateway

PAGE = "/console/admin/rollout"


@pytest.fixture
async def gw(database: Database) -> AsyncIterator[LiveGateway]:
    gateway = await start_gateway(database, simulators=False, dispatch=False, poll=False)
    try:
        yield gateway
    finally:
        await stop_gateway(gateway)


async def test_admin_changes_a_mode_with_a_reason_and_the_history_says_who_when_from_to_and_why(
    gw: LiveGateway,
) -> None:
    admin_key = await gw.new_key("it", ("admin",))
    admin = ConsoleUser.open(gw.url)
    unit = ConsoleUser.open(gw.url)
    try:
        assert (await admin.sign_in(admin_key)).status == 303
        assert (await unit.sign_in(gw.key)).status == 303
        status, before = await admin.page(PAGE)
        reason = "<script>alert(1)</script> first 10% of EU traffic"
        canary = await admin.post(
            PAGE, PAGE, business_unit="erp-europe", partner="iso20022_bank", mode="canary", percent="10", reason=reason
        )
        _, after = await admin.page(canary.headers["Location"])
        # the API's own route, then the console's rollback: one history, three sources of who
        async with gw.session.put(
            f"{gw.url}/v1/rollout/erp-europe/iso20022_bank", json={"mode": "live"}, headers=gw.headers(admin_key)
        ) as resp:
            assert resp.status == 200, await resp.text()
        off = await admin.post(
            PAGE, PAGE, business_unit="erp-europe", partner="iso20022_bank", mode="off", percent="10", reason="rollback"
        )
        no_reason = await admin.post(PAGE, PAGE, business_unit="erp-europe", partner="iso20022_bank", mode="live")
        no_percent = await admin.post(
            PAGE, PAGE, business_unit="erp-europe", partner="iso20022_bank", mode="canary", reason="x"
        )
        bad_mode = await admin.post(
            PAGE, PAGE, business_unit="erp-europe", partner="iso20022_bank", mode="x", reason="x"
        )
        no_partner = await admin.post(PAGE, PAGE, business_unit="erp-europe", partner="nobody", mode="off", reason="x")
        no_unit = await admin.post(PAGE, PAGE, business_unit="nobody", partner="iso20022_bank", mode="off", reason="x")
        forged = await admin.http.post(
            f"{gw.url}{PAGE}",
            data={
                "csrf": "x",
                "business_unit": "erp-europe",
                "partner": "iso20022_bank",
                "mode": "live",
                "reason": "x",
            },
        )
        denied_page = (await unit.page(PAGE))[0]
        denied_post = await unit.post(
            "/console/", PAGE, business_unit="erp-europe", partner="iso20022_bank", mode="live", reason="mine"
        )
        _, final = await admin.page(PAGE)
    finally:
        await admin.close()
        await unit.close()
    async with gw.runtime.engine.connect() as conn:
        log = await changes(conn)
        modes = await table_modes(conn)

    assert status == 200 and 'data-cell="erp-europe/iso20022_bank"' in before and "live (default)" in before
    assert canary.status == 303 and "Done: erp-europe/iso20022_bank: live to canary 10%." in after
    assert off.status == 303 and str(modes[("erp-europe", "iso20022_bank")][0]) == "off"
    assert [(c["from_mode"], c["to_mode"], c["to_percent"]) for c in log] == [
        ("live", "canary", 10),
        ("canary", "live", None),
        ("live", "off", None),  # a percent typed for another mode is not read
    ]
    key_id = log[0]["changed_by"]
    assert key_id == log[2]["changed_by"] and str(key_id).startswith("console:key_")
    assert str(log[1]["changed_by"]).startswith("api:key_") and log[1]["reason"] is None
    assert (log[0]["reason"], log[2]["reason"]) == (" ".join(reason.split()), "rollback")
    assert "&lt;script&gt;alert(1)&lt;/script&gt; first 10%" in final and "<script>alert" not in final
    assert (no_reason.status, no_percent.status, bad_mode.status) == (400, 400, 400)
    assert "canary needs percent between 1 and 99" in await no_percent.text()
    assert (no_partner.status, no_unit.status) == (404, 404)
    assert forged.status == 403 and (denied_page, denied_post.status) == (403, 403)
    assert len(log) == 3  # the refused forms wrote nothing
