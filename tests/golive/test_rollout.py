"""Staged rollout end to end (SQLite and PostgreSQL): modes in the database, audited, honoured by routing.

Rolling back loses nothing in flight: payments already routed keep their route, new ones follow the
new mode.
"""

from __future__ import annotations

from typing import Any

from gateway.domain.clock import system_clock
from gateway.store.rollout import RolloutMode, canary_takes, changes, modes_for, set_mode, table_modes
from tests.support import Database, LiveGateway, example_instruction, start_gateway, stop_gateway

BU = "erp-europe"


def usd() -> dict[str, Any]:
    body = example_instruction(currency="USD")
    body["debtor"] = {"name": "HE Appliances America Inc", "account": {"number": "987654321", "routing": "011000015"}}
    body["creditor"]["account"] = {"number": "000123456789", "routing": "021000021"}
    return body


async def post(gw: LiveGateway, body: dict[str, Any]) -> str:
    resp = await gw.post_instruction(body)
    assert resp.status == 202, await resp.text()
    return (await resp.json())["id"]


async def test_modes_are_stored_and_every_change_is_audited(database: Database) -> None:
    gw = await start_gateway(database, simulators=False)
    try:
        engine = gw.runtime.engine
        async with engine.connect() as conn:
            assert await modes_for(conn, [BU]) == {}  # nothing stored: every partner is live
        t0 = system_clock()
        assert await set_mode(engine, BU, "ach_nacha", RolloutMode("canary", 10), "alice", t0) == (
            RolloutMode("live"),
            RolloutMode("canary", 10),
        )
        await set_mode(engine, BU, "ach_nacha", RolloutMode("off"), "bob", t0)
        await set_mode(engine, "other", "ach_nacha", RolloutMode("shadow"), "carol", t0)
        async with engine.connect() as conn:
            assert await modes_for(conn, [BU]) == {BU: {"ach_nacha": RolloutMode("off")}}
            stored = await table_modes(conn)
            assert stored[(BU, "ach_nacha")][2] == "bob" and stored[("other", "ach_nacha")][0].mode == "shadow"
            log = await changes(conn, BU)
        assert [(c["from_mode"], c["from_percent"], c["to_mode"], c["to_percent"], c["changed_by"]) for c in log] == [
            ("live", None, "canary", 10, "alice"),
            ("canary", 10, "off", None, "bob"),
        ]
        assert all(c["changed_at"] == t0 for c in log)
    finally:
        await stop_gateway(gw)


async def test_rolling_back_to_off_keeps_payments_in_flight_on_their_route(database: Database, tmp_path: Any) -> None:
    routing = tmp_path / "routing.yaml"
    routing.write_text("rules:\n  - name: usd\n    match: {currencies: [USD]}\n    partners: [ach_nacha]\n")
    gw = await start_gateway(database, routing__file=str(routing))
    try:
        engine = gw.runtime.engine
        await set_mode(engine, BU, "ach_nacha", RolloutMode("canary", 99), "alice", system_clock())
        await set_mode(engine, BU, "ach_nacha", RolloutMode("live"), "alice", system_clock())
        in_flight = [await post(gw, usd()) for _ in range(3)]
        for instruction_id in in_flight:  # filed with ACH; it settles only at the cut-off
            view = await gw.wait_for(instruction_id, lambda v: v["status"] == "submitted")
            assert view["adapter"] == "ach_nacha"

        await set_mode(engine, BU, "ach_nacha", RolloutMode("off"), "alice", system_clock())  # the rollback
        late = await gw.wait_for(await post(gw, usd()))
        assert late["status"] == "rejected" and late["adapter"] is None
        last = late["events"][-1]
        assert last["reason_code"] == "NO_ROUTE"
        assert "rule usd matched" in last["reason"] and "ach_nacha: rollout off for erp-europe" in last["reason"]

        await gw.runtime.adapters["ach_nacha"].run_cutoff()  # type: ignore[attr-defined]
        finals = [await gw.wait_for(i) for i in in_flight]
        assert {(v["status"], v["adapter"]) for v in finals} == {("settled", "ach_nacha")}  # nothing lost
        async with engine.connect() as conn:
            log = await changes(conn, BU)
        steps = [(c["from_mode"], c["to_mode"]) for c in log]
        assert steps == [("live", "canary"), ("canary", "live"), ("live", "off")]
    finally:
        await stop_gateway(gw)


async def test_canary_sends_its_share_by_reference_and_the_rest_the_other_way(
    database: Database, tmp_path: Any
) -> None:
    routing = tmp_path / "routing.yaml"
    routing.write_text(
        "rules:\n  - name: usd\n    match: {currencies: [USD]}\n    partners: [instant_rtp, ach_nacha]\n"
    )
    gw = await start_gateway(database, routing__file=str(routing))
    try:
        await set_mode(gw.runtime.engine, BU, "instant_rtp", RolloutMode("canary", 50), "alice", system_clock())
        bodies = [{**usd(), "reference": f"CANARY-{i:03d}"} for i in range(12)]
        sides = {canary_takes(b["reference"], 50) for b in bodies}
        assert sides == {True, False}  # fixed references: both sides are exercised, every run
        ids = [await post(gw, b) for b in bodies]
        for body, instruction_id in zip(bodies, ids, strict=True):
            view = await gw.wait_for(instruction_id, lambda v: v["status"] in ("submitted", "settled"))
            expected = "instant_rtp" if canary_takes(body["reference"], 50) else "ach_nacha"
            assert view["adapter"] == expected, (body["reference"], view["events"])
            routed = next(e for e in view["events"] if e["status"] == "routed")
            if expected == "ach_nacha":
                assert "instant_rtp: rollout canary 50% for erp-europe" in routed["reason"]
    finally:
        await stop_gateway(gw)


async def test_admin_api_lists_and_sets_modes_with_problems_for_bad_input(database: Database) -> None:
    gw = await start_gateway(database, simulators=False)
    try:
        admin = await gw.new_key(BU, ("admin",))
        url = f"{gw.url}/v1/rollout"

        async def call(method: str, path: str, key: str, body: Any = None) -> tuple[int, Any]:
            kwargs: dict[str, Any] = {"headers": gw.headers(key)}
            if body is not None:
                kwargs["json"] = body
            async with gw.session.request(method, f"{url}{path}", **kwargs) as resp:
                return resp.status, await resp.json()

        assert await call("GET", "", admin) == (200, {"default": "live", "items": []})
        assert (await call("GET", "", gw.key))[0] == 403  # an instructions key is not an operator
        assert (await call("PUT", f"/{BU}/ach_nacha", gw.key, {"mode": "off"}))[0] == 403
        status, problem = await call("PUT", f"/{BU}/ach_nacha", admin, {"mode": "canary"})
        assert status == 422 and problem["errors"][0]["pointer"] == "/percent"
        status, problem = await call("PUT", f"/{BU}/ach_nacha", admin, {"mode": "off", "percent": 5})
        assert status == 422 and problem["errors"][0]["pointer"] == "/percent"
        status, problem = await call("PUT", f"/{BU}/ach_nacha", admin, {"mode": "sideways"})
        assert status == 422 and problem["errors"][0]["pointer"] == "/mode"
        assert (await call("PUT", f"/{BU}/carrier_pigeon", admin, {"mode": "off"}))[0] == 404
        assert (await call("PUT", "/nobody/ach_nacha", admin, {"mode": "off"}))[0] == 404

        status, changed = await call("PUT", f"/{BU}/ach_nacha", admin, {"mode": "canary", "percent": 30})
        assert status == 200
        assert (changed["business_unit"], changed["partner"], changed["mode"], changed["percent"]) == (
            BU,
            "ach_nacha",
            "canary",
            30,
        )
        assert changed["updated_by"].startswith("api:key_")
        status, listed = await call("GET", "", admin)
        assert status == 200 and listed["items"] == [changed]
        async with gw.runtime.engine.connect() as conn:
            log = await changes(conn, BU)
        assert [(c["from_mode"], c["to_mode"], c["to_percent"], c["changed_by"]) for c in log] == [
            ("live", "canary", 30, changed["updated_by"])
        ]  # the refused requests wrote nothing
    finally:
        await stop_gateway(gw)
