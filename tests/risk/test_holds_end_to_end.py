"""Risk screening end to end: gateway + ISO 20022 bank simulator, real database (SQLite and PostgreSQL).

Holds wait for finance (four eyes), approval releases to routing and the payment
settles, rejection and expiry are final and visible to the business unit,
flagged payments go through with an alert, credit limits hold what would pass
them and follow the payment's fate.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import select

from gateway.domain.events import StatusChange
from gateway.plugins.hookspecs import hookimpl
from gateway.store.tables import credit_limits, credit_reservations, outbox
from tests.support import FINAL, Database, LiveGateway, applied, example_instruction, start_gateway, stop_gateway

CREDITOR_IBAN = "SE4550000000058398257466"  # the contract example's creditor


def risk_file(tmp_path: Path, **doc: Any) -> str:
    """A risk.yaml for one test: strict on large new beneficiaries unless told otherwise."""
    base: dict[str, Any] = {
        "defaults": {
            "timezone": "UTC",
            "hold_expiry": "1h",
            "rules": {"new_beneficiary": {"large_amount": "5000"}},
        }
    }
    base.update(doc)
    path = tmp_path / "risk.yaml"
    path.write_text(yaml.safe_dump(base))
    return str(path)


class Observer:
    """A plugin that sees every committed status change (what a webhook sender would)."""

    def __init__(self) -> None:
        self.changes: list[StatusChange] = []

    @hookimpl
    def gateway_status_changed(self, change: StatusChange) -> None:
        self.changes.append(change)


@pytest.fixture
async def risky(database: Database, tmp_path: Path) -> AsyncIterator[tuple[LiveGateway, Observer]]:
    observer = Observer()
    gw = await start_gateway(database, risk__file=risk_file(tmp_path), extra_plugins=(observer,))
    try:
        yield gw, observer
    finally:
        await stop_gateway(gw)


async def submit(gw: LiveGateway, key: str | None = None, **changes: Any) -> str:
    resp = await gw.post_instruction(example_instruction(**changes), key=key)
    assert resp.status == 202, await resp.text()
    return (await resp.json())["id"]


async def call(gw: LiveGateway, method: str, path: str, key: str, body: Any = None) -> tuple[int, Any]:
    kwargs: dict[str, Any] = {"headers": gw.headers(key)}
    if body is not None:
        kwargs["json"] = body
    async with gw.session.request(method, f"{gw.url}{path}", **kwargs) as resp:
        return resp.status, await resp.json()


def held(view: dict[str, Any]) -> bool:
    return view["status"] == "held"


async def test_a_held_payment_is_approved_by_finance_and_settles(risky: tuple[LiveGateway, Observer]) -> None:
    gw, _ = risky
    finance = await gw.new_key("group-finance", ("finance",))
    instruction_id = await submit(gw, amount="9000.00")
    view = await gw.wait_for(instruction_id, held)
    assert applied(view) == ["received", "accepted", "held"]
    assert view["events"][-1]["reason_code"] == "RISK_HOLD"
    assert "new_beneficiary" in view["events"][-1]["reason"]
    # the history tells the truth: screening did not pass a payment it held
    assert view["events"][1]["reason"] == "screening holds it for review (see the next event)"
    assert not any("passed" in (e["reason"] or "") for e in view["events"])

    status, page = await call(gw, "GET", "/v1/holds", finance)
    assert status == 200
    (hold,) = page["items"]
    assert hold["instruction_id"] == instruction_id and hold["decision"] is None
    assert hold["findings"][0]["rule"] == "new_beneficiary"
    assert hold["creditor"]["account"]["iban"].startswith("SE45") and CREDITOR_IBAN not in str(hold)
    async with gw.runtime.engine.connect() as conn:  # a held payment has no job: nothing can route it
        jobs = (await conn.execute(select(outbox).where(outbox.c.instruction_id == instruction_id))).all()
    assert jobs == []

    status, decided = await call(
        gw, "POST", f"/v1/holds/{instruction_id}/approve", finance, {"comment": "known supplier"}
    )
    assert status == 200, decided
    assert decided["decision"] == "approved" and decided["comment"] == "known supplier"
    assert decided["decided_by"].startswith("key_") and decided["decided_at"]

    view = await gw.wait_for(instruction_id)
    assert view["status"] == "settled"
    assert applied(view) == ["received", "accepted", "held", "accepted", "routed", "submitted", "settled"]
    approval = view["events"][3]
    assert approval["source"] == "operator" and "known supplier" in approval["reason"]
    assert decided["decided_by"] in approval["reason"]
    # the pending queue is empty; the decided hold is kept with who, when and why
    assert (await call(gw, "GET", "/v1/holds", finance))[1]["items"] == []
    status, again = await call(gw, "GET", f"/v1/holds/{instruction_id}", finance)
    assert status == 200 and again["decision"] == "approved" and again["status"] == "settled"
    # approval taught the history: the next payment to this account is no longer a new beneficiary
    second = await submit(gw, amount="9000.00", remittance_information="Invoice 124")
    assert (await gw.wait_for(second))["status"] == "settled"


async def test_a_rejected_hold_is_final_and_the_business_unit_sees_it(risky: tuple[LiveGateway, Observer]) -> None:
    gw, observer = risky
    finance = await gw.new_key("group-finance", ("finance",))
    instruction_id = await submit(gw, amount="7500.00")
    await gw.wait_for(instruction_id, held)
    status, decided = await call(
        gw, "POST", f"/v1/holds/{instruction_id}/reject", finance, {"comment": "unknown payee"}
    )
    assert status == 200 and decided["decision"] == "rejected"
    view = await gw.get_instruction(instruction_id)  # the business unit's own view
    assert view["status"] == "rejected"
    last = view["events"][-1]
    assert last["reason_code"] == "HOLD_REJECTED" and "unknown payee" in last["reason"]
    changes = [
        (c.previous.value, c.current.value, c.reason_code)
        for c in observer.changes
        if c.instruction_id == instruction_id
    ]
    assert changes[-1] == ("held", "rejected", "HOLD_REJECTED")
    # final: a second decision conflicts, and nothing was sent to the bank
    status, problem = await call(gw, "POST", f"/v1/holds/{instruction_id}/approve", finance, {"comment": "oops"})
    assert status == 409 and "already decided" in problem["detail"]
    assert gw.simulators["iso20022_bank"].runner.app is not None
    assert (await gw.get_instruction(instruction_id))["status"] == "rejected"


async def test_four_eyes_and_scopes_guard_hold_decisions(risky: tuple[LiveGateway, Observer]) -> None:
    gw, _ = risky
    both = await gw.new_key("erp-europe", ("instructions", "finance"))  # may submit and approve, not its own
    other_finance = await gw.new_key("group-finance", ("finance",))
    instruction_id = await submit(gw, key=both, amount="8000.00")
    await gw.wait_for(instruction_id, held)

    status, problem = await call(gw, "POST", f"/v1/holds/{instruction_id}/approve", both, {"comment": "mine"})
    assert status == 403 and "four eyes" in problem["detail"]
    assert problem["type"].endswith("/four-eyes") and problem["title"] == "Four-eyes rule: someone else must decide"
    status, problem = await call(gw, "POST", f"/v1/holds/{instruction_id}/approve", gw.key, {"comment": "x"})
    assert status == 403 and "finance" in problem["detail"]
    status, problem = await call(gw, "POST", f"/v1/holds/{instruction_id}/approve", other_finance, {})
    assert status == 422 and problem["errors"][0]["pointer"] == "/comment"
    status, _ = await call(
        gw, "POST", "/v1/holds/ins_00000000000000000000000000/approve", other_finance, {"comment": "x"}
    )
    assert status == 404
    assert (await gw.get_instruction(instruction_id))["status"] == "held"  # nothing changed

    status, decided = await call(gw, "POST", f"/v1/holds/{instruction_id}/approve", other_finance, {"comment": "ok"})
    assert status == 200 and decided["decision"] == "approved"
    assert (await gw.wait_for(instruction_id))["status"] == "settled"


async def test_an_undecided_hold_expires_into_a_rejection(database: Database, tmp_path: Path) -> None:
    path = risk_file(tmp_path)
    doc = yaml.safe_load(Path(path).read_text())
    doc["defaults"]["hold_expiry"] = 1
    Path(path).write_text(yaml.safe_dump(doc))
    gw = await start_gateway(database, risk__file=path, poll=False)
    try:
        instruction_id = await submit(gw, amount="6000.00")
        await gw.wait_for(instruction_id, held)
        assert gw.runtime.scheduler is not None
        assert await gw.runtime.scheduler.expire_holds() == 0  # not yet
        await asyncio.sleep(1.1)
        assert await gw.runtime.scheduler.expire_holds() == 1
        view = await gw.get_instruction(instruction_id)
        assert view["status"] == "rejected" and view["events"][-1]["reason_code"] == "HOLD_EXPIRED"
        finance = await gw.new_key("group-finance", ("finance",))
        status, hold = await call(gw, "GET", f"/v1/holds/{instruction_id}", finance)
        assert status == 200 and hold["decision"] == "expired"
    finally:
        await stop_gateway(gw)


async def test_flagged_payments_go_through_and_are_listed_as_alerts(database: Database, tmp_path: Path) -> None:
    path = risk_file(
        tmp_path,
        defaults={
            "timezone": "UTC",
            "rules": {
                "round_amount": {"min_amount": "1000", "multiple": "1000", "action": "flag"},
                "blocklist": {"file": "blocked.yaml", "action": "reject"},
            },
        },
    )
    (tmp_path / "blocked.yaml").write_text(yaml.safe_dump({"names": ["Shady Imports Ltd"]}))
    gw = await start_gateway(database, risk__file=path)
    try:
        finance = await gw.new_key("group-finance", ("finance",))
        flagged = await submit(gw, amount="3000.00")
        blocked = await submit(
            gw, creditor={"name": "SHADY IMPORTS", "account": {"iban": "DE89370400440532013000"}}, amount="10.00"
        )
        plain = await submit(gw, amount="1234.56")
        flagged_view = await gw.wait_for(flagged)
        assert flagged_view["status"] == "settled"
        assert flagged_view["events"][1]["reason_code"] == "RISK_FLAG"
        blocked_view = await gw.wait_for(blocked)
        assert blocked_view["status"] == "rejected" and blocked_view["events"][-1]["reason_code"] == "RISK_REJECT"
        assert applied(blocked_view) == ["received", "rejected"]
        assert (await gw.wait_for(plain))["status"] == "settled"

        status, page = await call(gw, "GET", "/v1/alerts", finance)
        assert status == 200
        by_id = {a["instruction_id"]: a for a in page["items"]}
        assert set(by_id) == {flagged, blocked}
        assert by_id[flagged]["outcome"] == "flag" and by_id[flagged]["findings"][0]["rule"] == "round_amount"
        assert by_id[blocked]["outcome"] == "reject" and by_id[blocked]["business_unit"] == "erp-europe"
        status, only = await call(gw, "GET", "/v1/alerts?outcome=reject", finance)
        assert [a["instruction_id"] for a in only["items"]] == [blocked]
        status, by_rule = await call(gw, "GET", "/v1/alerts?rule=round_amount", finance)
        assert [a["instruction_id"] for a in by_rule["items"]] == [flagged]
        status, problem = await call(gw, "GET", "/v1/alerts?outcome=maybe", finance)
        assert status == 400 and "outcome" in problem["detail"]
        status, _ = await call(gw, "GET", "/v1/alerts", gw.key)
        assert status == 403
    finally:
        await stop_gateway(gw)


def credit_risk_file(tmp_path: Path, limit: str) -> str:
    return risk_file(
        tmp_path,
        defaults={"timezone": "UTC", "rules": {}},
        counterparties={"nordic-parts": {"accounts": [{"iban": CREDITOR_IBAN}]}},
        credit_limits=[{"counterparty": "nordic-parts", "currency": "EUR", "limit": limit, "on_exceed": "hold"}],
    )


async def exposure(gw: LiveGateway) -> dict[str, int]:
    async with gw.runtime.engine.connect() as conn:
        row = (await conn.execute(select(credit_limits))).one()
        states = [r.state for r in await conn.execute(select(credit_reservations))]
    return {
        "reserved": row.reserved_minor,
        "consumed": row.consumed_minor,
        "limit": row.limit_minor,
        "reservations": len(states),
        "released": states.count("released"),
    }


async def test_credit_limit_holds_what_would_pass_it_and_follows_the_payments_fate(
    database: Database, tmp_path: Path
) -> None:
    gw = await start_gateway(database, risk__file=credit_risk_file(tmp_path, "3000.00"))
    try:
        admin = await gw.new_key("treasury", ("admin",))
        finance = await gw.new_key("group-finance", ("finance",))
        first = await submit(gw, amount="2000.00")
        assert (await gw.wait_for(first))["status"] == "settled"
        assert await exposure(gw) == {
            "reserved": 0,
            "consumed": 200000,
            "limit": 300000,
            "reservations": 1,
            "released": 0,
        }
        # the bank rejects this one: its reservation is released
        rejected = await submit(
            gw, amount="500.00", creditor={"name": "Nordic Parts AB REJECT-AC04", "account": {"iban": CREDITOR_IBAN}}
        )
        assert (await gw.wait_for(rejected))["status"] == "rejected"
        assert (await exposure(gw))["consumed"] == 200000 and (await exposure(gw))["released"] == 1
        # 2000 + 1500 > 3000: held with CREDIT_LIMIT
        over = await submit(gw, amount="1500.00")
        view = await gw.wait_for(over, held)
        assert view["events"][-1]["reason_code"] == "CREDIT_LIMIT"
        status, limits = await call(gw, "GET", "/v1/credit-limits", finance)
        assert status == 200
        assert limits["items"] == [
            {
                "counterparty": "nordic-parts",
                "currency": "EUR",
                "limit": "3000.00",
                "reserved": "0.00",
                "consumed": "2000.00",
                "available": "1000.00",
                "on_exceed": "hold",
                "source": "config",
            }
        ]
        # finance raises the limit through the admin API, then approves the hold: it settles
        status, problem = await call(gw, "PUT", "/v1/credit-limits/nordic-parts/EUR", finance, {"limit": "9000"})
        assert status == 403
        status, problem = await call(gw, "PUT", "/v1/credit-limits/nordic-parts/EUR", admin, {"limit": "1.234"})
        assert status == 422 and problem["errors"][0]["pointer"] == "/limit"
        status, changed = await call(gw, "PUT", "/v1/credit-limits/nordic-parts/EUR", admin, {"limit": "9000"})
        assert status == 200 and changed["limit"] == "9000.00" and changed["source"] == "api"
        status, _ = await call(gw, "POST", f"/v1/holds/{over}/approve", finance, {"comment": "limit raised"})
        assert status == 200
        assert (await gw.wait_for(over))["status"] == "settled"
        assert (await exposure(gw))["consumed"] == 350000 and (await exposure(gw))["reserved"] == 0
    finally:
        await stop_gateway(gw)


async def test_credit_limit_is_never_passed_under_concurrent_intake(database: Database, tmp_path: Path) -> None:
    """Two gateway processes on one database (PostgreSQL: a second runtime; SQLite: one), 40 concurrent posts."""
    path = credit_risk_file(tmp_path, "10000.00")
    gateways = [await start_gateway(database, risk__file=path)]
    if database.url.startswith("postgresql"):
        gateways.append(await start_gateway(database, risk__file=path))
    try:
        key = gateways[0].key
        posts = [
            gateways[i % len(gateways)].post_instruction(example_instruction(amount="1000.00"), key=key)
            for i in range(40)
        ]
        responses = await asyncio.gather(*posts)
        assert [r.status for r in responses] == [202] * 40
        ids = [(await r.json())["id"] for r in responses]
        views = [await gateways[0].wait_for(i, lambda v: v["status"] in FINAL | {"held"}) for i in ids]
        statuses = [v["status"] for v in views]
        assert statuses.count("settled") == 10 and statuses.count("held") == 30
        state = await exposure(gateways[0])
        assert state["consumed"] == 1_000_000 and state["reserved"] == 0 and state["reservations"] == 10
        held_codes = {v["events"][-1]["reason_code"] for v in views if v["status"] == "held"}
        assert held_codes == {"CREDIT_LIMIT"}
    finally:
        for gw in gateways:
            await stop_gateway(gw)
