"""The console's QA page (development only, admin): simulators' scenarios switched, faults injected, journals read.

The gateway here knows the simulators it was started with (``qa_console=True``, as ``gateway
serve --with-simulators`` does); what the console changed is read back from each simulator's
own ``/_sim`` API, not from the console's pages.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.console.support import ConsoleUser
from tests.support import Database, LiveGateway, example_instruction, start_gateway, stop_gateway

PAGE = "/console/qa"
BANK = "iso20022_bank"


@pytest.fixture
async def gw(database: Database) -> AsyncIterator[LiveGateway]:
    gateway = await start_gateway(database, poll=False, qa_console=True)
    try:
        yield gateway
    finally:
        await stop_gateway(gateway)


async def sim_scenario(gw: LiveGateway, name: str = BANK) -> dict[str, Any]:
    async with gw.session.get(f"{gw.simulators[name].url}/_sim/scenario") as resp:
        assert resp.status == 200
        return dict(await resp.json())


async def test_admin_switches_a_scenario_injects_and_clears_a_fault_and_reads_the_journal(gw: LiveGateway) -> None:
    admin = ConsoleUser.open(gw.url)
    try:
        assert (await admin.sign_in(await gw.new_key("qa", ("admin",)))).status == 303
        status, listing = await admin.page(PAGE)
        switched = await admin.post(PAGE, f"{PAGE}/{BANK}/scenario", scenario="rejections")
        after_switch = await sim_scenario(gw)
        injected = await admin.post(
            PAGE,
            f"{PAGE}/{BANK}/faults",
            kind="http_error",
            exchange="submit",
            probability="0.5",
            times="2",
            seconds="1",
            http_status="503",
        )
        after_inject = await sim_scenario(gw)
        _, shown = await admin.page(injected.headers["Location"])
        bad_probability = await admin.post(PAGE, f"{PAGE}/{BANK}/faults", kind="latency", probability="2")
        unknown_kind = await admin.post(PAGE, f"{PAGE}/{BANK}/faults", kind="meteor")
        unknown_scenario = await admin.post(PAGE, f"{PAGE}/{BANK}/scenario", scenario="card-happy")  # another's
        forged = await admin.http.post(f"{gw.url}{PAGE}/{BANK}/faults/clear", data={"csrf": "forged"})
        after_refusals = await sim_scenario(gw)
        cleared = await admin.post(PAGE, f"{PAGE}/{BANK}/faults/clear")
        after_clear = await sim_scenario(gw)
        # a payment through the bank, then its exchanges in the bank's journal, filtered by instruction id
        await admin.post(PAGE, f"{PAGE}/{BANK}/scenario", scenario="happy")
        async with await gw.post_instruction(example_instruction()) as resp:
            instruction_id = (await resp.json())["id"]
        await gw.wait_for(instruction_id, lambda v: v["status"] == "settled")
        j_status, journal = await admin.page(f"{PAGE}/{BANK}/journal?instruction_id={instruction_id}&direction=in")
        bad_filter = (await admin.page(f"{PAGE}/{BANK}/journal?kind=nonsense"))[0]
        no_sim = (await admin.page(f"{PAGE}/no_such_sim/journal"))[0]
    finally:
        await admin.close()

    assert status == 200 and 'href="/console/qa"' in listing  # in the sections of a development gateway
    assert all(f'id="sim-{name}"' in listing for name in gw.simulators if name != "business_unit")
    assert 'for="fault-kind-iso20022_bank"' in listing and "callback_missing" in listing
    assert switched.status == 303 and after_switch["name"] == "rejections"
    assert injected.status == 303 and "injects http_error" in shown
    fault = {"kind": "http_error", "exchange": "submit", "probability": 0.5, "times": 2, "status": 503}
    assert after_inject["name"] == "rejections" and after_inject["document"]["faults"][-1] == fault
    assert (bad_probability.status, unknown_kind.status, unknown_scenario.status) == (400, 400, 400)
    assert forged.status == 403 and after_refusals == after_inject  # nothing changed by the refused forms
    assert cleared.status == 303 and after_clear["document"]["faults"] == []
    assert after_clear["document"]["rules"] == after_switch["document"]["rules"]  # the scenario itself stays
    assert j_status == 200 and instruction_id in journal and ">submit<" in journal
    assert ">out<" not in journal  # direction=in: only what the gateway sent the bank
    assert (bad_filter, no_sim) == (400, 404)


async def test_only_admin_keys_open_qa(gw: LiveGateway) -> None:
    finance = ConsoleUser.open(gw.url)
    unit = ConsoleUser.open(gw.url)
    try:
        assert (await finance.sign_in(await gw.new_key("treasury", ("finance",)))).status == 303
        assert (await unit.sign_in(gw.key)).status == 303
        denied = [(await user.page(PAGE))[0] for user in (finance, unit)]
        posted = await unit.post("/console/", f"{PAGE}/{BANK}/scenario", scenario="rejections")
        _, dashboard = await finance.page("/console/")
    finally:
        await finance.close()
        await unit.close()
    assert denied == [403, 403] and posted.status == 403
    assert (await sim_scenario(gw))["name"] != "rejections"
    assert 'href="/console/qa"' not in dashboard


async def test_without_simulators_started_by_the_gateway_qa_is_not_found(database: Database) -> None:
    gw = await start_gateway(database, dispatch=False, poll=False)  # simulators run, but not the gateway's own
    admin = ConsoleUser.open(gw.url)
    try:
        anonymous = (await admin.page(PAGE))[0]
        assert (await admin.sign_in(await gw.new_key("qa", ("admin",)))).status == 303
        status, _ = await admin.page(PAGE)
        journal = (await admin.page(f"{PAGE}/{BANK}/journal"))[0]
        _, dashboard = await admin.page("/console/")
        posted = await admin.post("/console/", f"{PAGE}/{BANK}/scenario", scenario="rejections")
        scenario = await sim_scenario(gw)
    finally:
        await admin.close()
        await stop_gateway(gw)
    assert (anonymous, status, journal, posted.status) == (404, 404, 404, 404)
    assert 'href="/console/qa"' not in dashboard and 'href="/console/admin/rollout"' in dashboard
    assert scenario["name"] != "rejections"
