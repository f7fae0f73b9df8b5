"""Issue 15's "done when" for webhooks: the business-unit simulator under faults, and a gateway restart mid-run.

The gateway sends every status change of a run to the business-unit simulator (``gateway simulate
business_unit``), which answers 5xx, times out, answers slowly and resets connections (a harsher
``bu-flaky-receiver``); the gateway is stopped while deliveries are outstanding and started again
on the same database. Then: every status event the database holds a delivery for is in the
simulator's journal (none lost), every request's signature verified, and each instruction's events,
ordered by ``sequence``, are the database's history in order. Runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from sqlalchemy import func, select

from gateway.api.server import RunningApp, bind, start_app
from gateway.plugins.manager import Plugins
from gateway.store.tables import instruction_events, webhook_deliveries
from gateway_simulators.business_unit import BUSINESS_UNIT, BusinessUnit
from gateway_simulators.pytest_plugin import SimulatorProbe
from tests.support import Database, LiveGateway, stop_gateway
from tests.webhooks.support import FAST, create_endpoint, start, submit, wait_until

#: the receiver's hangs (2 s) outlast the gateway's patience; the leases of work cut short by the restart
#: expire soon, and the second gateway polls the bank for what the first one's callbacks would have said
SETTINGS = {
    **FAST,
    "webhooks__timeout_seconds": 1,
    "webhooks__lease_seconds": 2,
    "webhooks__concurrency": 4,
    "dispatch__lease_seconds": 2,
    "dispatch__status_poll_after_seconds": 0.5,
    "dispatch__status_poll_interval_seconds": 0.3,
    "simulators": False,
}
COUNT = 6
#: bu-flaky-receiver, harsher, so that every kind of fault strikes in a run of 30 events (each at most once
#: per event, as there): a missing kind here would be a chance in thousands, not a flaky test
HARSH = {
    "name": "bu-harsh-receiver",
    "partner": "business_unit",
    "faults": [
        {"kind": "latency", "probability": 0.3, "delay": {"distribution": "uniform", "low": 0.01, "high": 0.1}},
        {"kind": "http_error", "status": 500, "probability": 0.25},
        {"kind": "http_error", "status": 503, "retry_after": 0, "probability": 0.1},
        {"kind": "reset", "probability": 0.25},
        {"kind": "hang", "seconds": 1.5, "probability": 0.25},
        {"kind": "reset", "after": True, "probability": 0.25},
        {"kind": "http_error", "status": 502, "after": True, "probability": 0.1},
    ],
}


@pytest.fixture
async def business_unit() -> AsyncIterator[RunningApp]:
    factory = Plugins().simulator_factories()["business_unit"]
    app = await start_app(factory({"scenario": HARSH}), bind("127.0.0.1", 0))
    try:
        yield app
    finally:
        await app.stop()


async def _delivery_states(gw: LiveGateway) -> Counter[str]:
    async with gw.runtime.engine.connect() as conn:
        rows = await conn.execute(
            select(webhook_deliveries.c.status, func.count()).group_by(webhook_deliveries.c.status)
        )
        return Counter({status: n for status, n in rows})


async def test_no_event_is_lost_under_receiver_faults_and_a_gateway_restart(
    database: Database, business_unit: RunningApp, partner_simulator: Callable[..., Awaitable[SimulatorProbe]]
) -> None:
    unit: BusinessUnit = business_unit.runner.app[BUSINESS_UNIT]
    bank = await partner_simulator("iso20022_bank")  # the bank outlives the gateway's restart, as a real one would
    settings = {**SETTINGS, "partners__iso20022_bank__base_url": bank.url}
    first = await start(database, **settings)
    try:
        endpoint = await create_endpoint(first, f"{business_unit.url}/webhooks/erp-europe")
        unit.secrets = (endpoint["secret"].encode(),)
        ids = [await submit(first, amount=f"{100 + n}.00") for n in range(COUNT)]
        await wait_until(lambda: _some_taken(unit, 4), timeout=30)
        at_restart = await _delivery_states(first)
    finally:
        await stop_gateway(first)  # mid-run: deliveries (and payments) outstanding
    assert at_restart["pending"] > 0, f"the restart came too late to prove anything: {at_restart}"

    second = await start(database, **settings)
    try:
        for instruction_id in ids:
            await second.wait_for(instruction_id, timeout=60)
        states = await wait_until(lambda: _all_delivered(second), timeout=90)
        async with second.runtime.engine.connect() as conn:
            deliveries = (
                await conn.execute(
                    select(
                        webhook_deliveries.c.event_id,
                        webhook_deliveries.c.instruction_id,
                        webhook_deliveries.c.sequence,
                    )
                )
            ).all()
            history = (
                await conn.execute(
                    select(
                        instruction_events.c.instruction_id, instruction_events.c.sequence, instruction_events.c.status
                    )
                    .where(instruction_events.c.applied.is_(True), instruction_events.c.instruction_id.in_(ids))
                    .order_by(instruction_events.c.instruction_id, instruction_events.c.sequence)
                )
            ).all()
    finally:
        await stop_gateway(second)

    assert states == Counter({"delivered": len(deliveries)})
    # zero events lost: every delivery the database holds was taken by the business unit, at least once
    wanted = {d.event_id for d in deliveries}
    assert len(wanted) == len(history) >= COUNT * 4
    assert wanted <= set(unit.events), f"lost: {sorted(wanted - set(unit.events))}"
    # every signature verified: no request was refused, every taken event was verified
    assert not unit.select({"outcome": "refused"})
    assert all(r.verified for r in unit.journal if r.taken)
    # order recoverable: per instruction, the events sorted by sequence are the database's history
    expected: dict[str, list[tuple[int, str]]] = {}
    for row in history:
        expected.setdefault(row.instruction_id, []).append((row.sequence, row.status))
    recovered = {
        instruction_id: [(e["sequence"], e["status"]) for e in events]
        for instruction_id, events in unit.by_instruction().items()
    }
    assert recovered == expected
    # the faults really happened, before and after events were taken (so duplicates arrived)
    faults = Counter(kind for r in unit.journal for kind in r.faults)
    assert faults["http_error"] and faults["reset"] and faults["hang"] and faults["latency"], faults
    assert any(r.duplicate for r in unit.journal)
    timed_out = {r.event_id for r in unit.journal if "hang" in r.faults}
    assert timed_out <= set(unit.events)  # a receiver that did not answer in time got the event later


async def _some_taken(unit: BusinessUnit, count: int) -> bool:
    return len(unit.events) >= count


async def _all_delivered(gw: LiveGateway) -> Counter[str] | None:
    states = await _delivery_states(gw)
    return states if states and set(states) == {"delivered"} else None
