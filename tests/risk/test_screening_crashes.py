"""Crashes around screening: a payment is screened exactly once, and nothing is half-written.

- the dispatcher dies after the screening commit, before routing: the next
  claimer routes it without screening it again (velocity counted once);
- screening fails mid-batch (a rule raises): the transaction rolls back (no
  counters, no alert, no status change) and the retry screens it once.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import func, select

from gateway.plugins.hookspecs import hookimpl
from gateway.risk.rules import Rule
from gateway.store.tables import outbox, risk_alerts, risk_counters
from tests.support import Database, LiveGateway, applied, example_instruction, start_gateway, stop_gateway


def write_risk(tmp_path: Path, rules: dict[str, Any]) -> str:
    path = tmp_path / "risk.yaml"
    path.write_text(yaml.safe_dump({"defaults": {"timezone": "UTC", "rules": rules}}))
    return str(path)


async def counted(gw: LiveGateway) -> tuple[int, int]:
    """(debtor velocity count over all buckets of one size, alerts)."""
    async with gw.runtime.engine.connect() as conn:
        sizes = sorted({r.bucket_seconds for r in await conn.execute(select(risk_counters.c.bucket_seconds))})
        count = await conn.scalar(
            select(func.coalesce(func.sum(risk_counters.c.count), 0)).where(
                risk_counters.c.subject == "debtor", risk_counters.c.bucket_seconds == (sizes[0] if sizes else 0)
            )
        )
        alerts = await conn.scalar(select(func.count()).select_from(risk_alerts))
    return int(count or 0), int(alerts or 0)


async def submit(gw: LiveGateway, **changes: Any) -> str:
    resp = await gw.post_instruction(example_instruction(**changes))
    assert resp.status == 202, await resp.text()
    return (await resp.json())["id"]


async def test_crash_after_screening_routes_without_screening_again(database: Database, tmp_path: Path) -> None:
    path = write_risk(
        tmp_path,
        {
            "velocity": {"limits": [{"subject": "debtor", "window": "1h", "max_count": 100}]},
            "round_amount": {"min_amount": "1000", "multiple": "1000", "action": "flag"},
        },
    )
    gw = await start_gateway(database, risk__file=path, dispatch=False, poll=False, dispatch__lease_seconds=0.5)
    try:
        instruction_id = await submit(gw, amount="2000.00")
        crashed = gw.runtime.new_dispatcher(owner="process-that-dies")
        jobs = await crashed.claim()
        loaded = await gw.runtime.orders.load_many([j.instruction_id for j in jobs])
        assert await crashed._screen(jobs, loaded) == set()  # screened and committed: flagged, goes on
        # ...the process dies here, before routing; its lease is still held
        assert await counted(gw) == (1, 1)
        assert (await gw.get_instruction(instruction_id))["status"] == "accepted"
        await asyncio.sleep(0.6)
        await gw.runtime.new_dispatcher(owner="survivor").run_until_idle()
        view = await gw.wait_for(instruction_id)
        assert view["status"] == "settled"
        assert applied(view) == ["received", "accepted", "routed", "submitted", "settled"]
        assert await counted(gw) == (1, 1)  # screened once: one count, one alert
    finally:
        await stop_gateway(gw)


class Flaky(Rule):
    """A rule plugin that fails the first time it runs (a bug, a timeout), then works."""

    name = "flaky"
    calls = 0

    def evaluate(self, c: Any, history: Any) -> None:
        type(self).calls += 1
        if type(self).calls == 1:
            raise RuntimeError("rule crashed")
        return None


class FlakyPlugin:
    @hookimpl
    def gateway_risk_rules(self) -> list[type[Rule]]:
        return [Flaky]


async def test_screening_that_fails_midway_writes_nothing_and_is_retried(database: Database, tmp_path: Path) -> None:
    Flaky.calls = 0
    path = write_risk(
        tmp_path,
        {"velocity": {"limits": [{"subject": "debtor", "window": "1h", "max_count": 100}]}, "flaky": {}},
    )
    gw = await start_gateway(
        database,
        risk__file=path,
        dispatch=False,
        poll=False,
        extra_plugins=(FlakyPlugin(),),
        dispatch__backoff_base_seconds=0.01,
        dispatch__backoff_max_seconds=0.02,
    )
    try:
        instruction_id = await submit(gw)
        dispatcher = gw.runtime.dispatcher
        assert dispatcher is not None
        jobs = await dispatcher.claim()
        await dispatcher._guarded(jobs)  # the rule raises inside the screening transaction
        assert Flaky.calls == 1
        assert await counted(gw) == (0, 0)  # rolled back: nothing counted, no alert
        view = await gw.get_instruction(instruction_id)
        assert view["status"] == "received" and len(view["events"]) == 1
        async with gw.runtime.engine.connect() as conn:
            (job,) = (await conn.execute(select(outbox))).all()
        assert job.attempts == 1 and "internal error" in job.last_error
        await asyncio.sleep(0.05)
        await dispatcher.run_until_idle()
        assert (await gw.wait_for(instruction_id))["status"] == "settled"
        assert await counted(gw) == (1, 0)
    finally:
        await stop_gateway(gw)
