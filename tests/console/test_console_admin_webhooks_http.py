"""The console's webhook endpoints page (admin): create (secret shown once), disable and enable, rotate the secret."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import select

from gateway.store.tables import webhook_endpoints
from tests.console.support import ConsoleUser
from tests.support import Database, LiveGateway, start_gateway, stop_gateway

PAGE = "/console/admin/webhooks"


@pytest.fixture
async def gw(database: Database) -> AsyncIterator[LiveGateway]:
    gateway = await start_gateway(
        database, simulators=False, dispatch=False, poll=False, partners={}, webhooks__allow_private_addresses=False
    )
    try:
        yield gateway
    finally:
        await stop_gateway(gateway)


def shown_secret(html: str) -> tuple[str, str]:
    found = re.search(
        r'signing secret of <strong>(whe_[0-9A-Z]+)</strong>.*?<code id="new-secret">([^<]+)</code>', html, re.S
    )
    assert found, "no secret on the page"
    return found.group(1), found.group(2)


async def test_admin_creates_disables_and_rotates_an_endpoint_and_a_secret_is_shown_once(gw: LiveGateway) -> None:
    admin = ConsoleUser.open(gw.url)
    unit = ConsoleUser.open(gw.url)
    try:
        assert (await admin.sign_in(await gw.new_key("it", ("admin",)))).status == 303
        assert (await unit.sign_in(gw.key)).status == 303
        created = await admin.post(PAGE, PAGE, business_unit="erp-europe", url="https://hooks.example.com/gw?a=1&b=2")
        endpoint_id, secret = shown_secret(await created.text())
        _, listing = await admin.page(PAGE)
        disabled = await admin.post(PAGE, f"{PAGE}/{endpoint_id}/enabled", enabled="no")
        _, after_disable = await admin.page(disabled.headers["Location"])
        rotated = await admin.post(PAGE, f"{PAGE}/{endpoint_id}/rotate")
        again_id, new_secret = shown_secret(await rotated.text())
        enabled = await admin.post(PAGE, f"{PAGE}/{endpoint_id}/enabled", enabled="yes")
        private = await admin.post(PAGE, PAGE, business_unit="erp-europe", url="http://127.0.0.1:9/hook")
        nobody = await admin.post(PAGE, PAGE, business_unit="no-such-unit", url="https://hooks.example.com/x")
        forged = await admin.http.post(f"{gw.url}{PAGE}/{endpoint_id}/rotate", data={"csrf": "x"})
        unit_view = (await unit.page(PAGE))[0]
        unit_post = await unit.post("/console/", f"{PAGE}/{endpoint_id}/enabled", enabled="no")
        missing = await admin.post(PAGE, f"{PAGE}/whe_NOPE/rotate")
    finally:
        await admin.close()
        await unit.close()
    async with gw.session.get(f"{gw.url}/v1/webhook-endpoints/{endpoint_id}", headers=gw.headers()) as resp:
        api_view = await resp.json()
    async with gw.runtime.engine.connect() as conn:
        count = len((await conn.execute(select(webhook_endpoints))).all())

    assert created.status == 201 and created.headers["Cache-Control"] == "no-store"
    assert secret not in listing and "gw?a=1&amp;b=2" in listing  # never again; the URL as text
    assert disabled.status == 303 and "Done: disabled" in after_disable and "Enable" in after_disable
    assert rotated.status == 201 and again_id == endpoint_id and new_secret != secret
    assert enabled.status == 303 and api_view["enabled"] is True
    assert private.status == 422 and "not a public address" in await private.text()
    assert nobody.status == 400 and "no unit named" in await nobody.text()
    assert forged.status == 403 and (unit_view, unit_post.status) == (403, 403) and missing.status == 404
    assert count == 1  # the refused forms made nothing
