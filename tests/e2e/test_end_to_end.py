"""One instruction end to end: gateway + ISO 20022 bank simulator on loopback ports.

Runs on SQLite and (with GATEWAY_TEST_DATABASE_URL) PostgreSQL.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import select

from gateway.config import load_settings
from gateway.contracts.registry import contracts
from gateway.store.tables import outbox
from gateway_simulators.iso20022_bank import BANK, Bank, signed_status_report
from tests.support import FINAL, Database, LiveGateway, applied, example_instruction, start_gateway, stop_gateway

SIM = dict(load_settings(env={}).section("simulators")["iso20022_bank"])


def bank_of(gw: LiveGateway) -> Bank:
    return gw.simulators["iso20022_bank"].runner.app[BANK]


async def submit(gw: LiveGateway, **changes: Any) -> str:
    resp = await gw.post_instruction(example_instruction(**changes))
    assert resp.status == 202, await resp.text()
    return (await resp.json())["id"]


async def test_instruction_settles_end_to_end_through_callbacks(gateway: LiveGateway) -> None:
    instruction_id = await submit(gateway)
    view = await gateway.wait_for(instruction_id, lambda v: v["status"] in FINAL)
    assert view["status"] == "settled"
    assert applied(view) == ["received", "accepted", "routed", "submitted", "settled"]
    settled = view["events"][-1]
    assert settled["source"] == "callback" and settled["partner_status"] == "ACSC"
    assert view["adapter"] == "iso20022_bank" and view["partner_reference"]
    # what the gateway reports back satisfies the status-event contract
    assert [contracts().errors("status-event", e) for e in view["events"]] == [[]] * len(view["events"])
    payments = bank_of(gateway).describe()
    assert [(p["instruction_id"], p["submissions"], p["status"]) for p in payments] == [(instruction_id, 1, "settled")]
    assert payments[0]["amount"] == "1250.00" and payments[0]["currency"] == "EUR"


async def test_bank_rejection_carries_the_iso_reason_code(gateway: LiveGateway) -> None:
    body_creditor = {"name": "Nordic Parts AB REJECT-AC04", "account": {"iban": "SE4550000000058398257466"}}
    instruction_id = await submit(gateway, creditor=body_creditor)
    view = await gateway.wait_for(instruction_id, lambda v: v["status"] in FINAL)
    assert view["status"] == "rejected"
    assert view["events"][-1]["reason_code"] == "AC04"
    assert applied(view) == ["received", "accepted", "routed", "submitted", "rejected"]


async def test_instruction_no_adapter_can_carry_is_rejected_with_the_reason(gateway: LiveGateway) -> None:
    instruction_id = await submit(gateway, currency="USD")
    view = await gateway.wait_for(instruction_id, lambda v: v["status"] in FINAL)
    assert view["status"] == "rejected"
    last = view["events"][-1]
    assert last["reason_code"] == "NO_ROUTE"
    assert "iso20022_bank: currency USD not supported" in last["reason"]
    assert bank_of(gateway).describe() == []


async def test_status_found_by_polling_when_callbacks_never_come(database: Database) -> None:
    gw = await start_gateway(
        database,
        sim_overrides={"iso20022_bank": {"send_callbacks": False}},
        dispatch__status_poll_interval_seconds=0.2,
        dispatch__status_poll_after_seconds=0,
    )
    try:
        instruction_id = await submit(gw)
        view = await gw.wait_for(instruction_id, lambda v: v["status"] in FINAL)
        assert view["status"] == "settled"
        assert view["events"][-1]["source"] == "poll"
        assert bank_of(gw).describe()[0]["callbacks_sent"] == 0
    finally:
        await stop_gateway(gw)


async def _post_callback(gw: LiveGateway, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
    async with gw.session.post(f"{gw.url}/v1/partners/iso20022_bank/callbacks", data=body, headers=headers) as resp:
        return resp.status, await resp.json()


async def test_duplicate_and_out_of_order_callbacks_are_recorded_and_ignored(database: Database) -> None:
    gw = await start_gateway(database, sim_overrides={"iso20022_bank": {"send_callbacks": False}})
    try:
        instruction_id = await submit(gw)
        view = await gw.wait_for(instruction_id, lambda v: v["status"] == "submitted")
        sim = SIM
        ref = view["reference"]
        # the bank's settlement arrives, then an older "in process", then the settlement again, then a rejection
        for code, reason in (("ACSC", None), ("ACSP", None), ("ACSC", None), ("RJCT", "AC01")):
            body, headers = signed_status_report(sim, instruction_id, ref, code, reason)
            status, summary = await _post_callback(gw, body, headers)
            assert status == 200, summary
        view = await gw.get_instruction(instruction_id)
        assert view["status"] == "settled"
        tail = [(e["status"], e["outcome"], e["source"]) for e in view["events"][4:]]
        assert tail == [
            ("settled", "applied", "callback"),
            ("settled", "duplicate", "callback"),
            ("rejected", "illegal", "callback"),
        ]
    finally:
        await stop_gateway(gw)


async def test_forged_and_replayed_callbacks_are_rejected_and_change_nothing(database: Database) -> None:
    gw = await start_gateway(database, sim_overrides={"iso20022_bank": {"send_callbacks": False}})
    try:
        instruction_id = await submit(gw)
        view = await gw.wait_for(instruction_id, lambda v: v["status"] == "submitted")
        sim = SIM
        forged_settings = {**SIM, "callback_secret": "not-the-bank-secret"}
        body, headers = signed_status_report(forged_settings, instruction_id, view["reference"], "ACSC")
        status, problem = await _post_callback(gw, body, headers)
        assert status == 401 and problem["type"].endswith("/invalid-signature")
        body, headers = signed_status_report(sim, instruction_id, view["reference"], "ACSC", timestamp=1_700_000_000)
        status, problem = await _post_callback(gw, body, headers)
        assert status == 401 and "tolerance" in problem["detail"]
        tampered = body.replace(b"ACSC", b"RJCT")
        _, good_headers = signed_status_report(sim, instruction_id, view["reference"], "ACSC")
        status, _ = await _post_callback(gw, tampered, good_headers)
        assert status == 401
        after = await gw.get_instruction(instruction_id)
        assert after["status"] == "submitted" and len(after["events"]) == len(view["events"])
    finally:
        await stop_gateway(gw)


async def test_callback_for_unknown_adapter_or_payment_is_refused(gateway: LiveGateway) -> None:
    async with gateway.session.post(f"{gateway.url}/v1/partners/nobank/callbacks", data=b"x") as resp:
        assert resp.status == 404
        assert resp.content_type == "application/problem+json"
    sim = SIM
    body, headers = signed_status_report(sim, "ins_01JXXXXXXXXXXXXXXXXXXXXXXX", "NOPE", "ACSC")
    status, summary = await _post_callback(gateway, body, headers)
    assert status == 200 and summary == {"applied": 0, "ignored": 0, "unknown": 1}
    status, problem = await _post_callback(gateway, b"<not-xml", {"X-Signature": headers["X-Signature"]})
    # signature first: a body whose signature does not match is never parsed
    assert status == 401 and problem["type"].endswith("/invalid-signature")


async def test_dispatcher_crash_between_claim_and_submit_recovers_with_one_submission(database: Database) -> None:
    gw = await start_gateway(database, dispatch=False, poll=False, dispatch__lease_seconds=0.5)
    try:
        instruction_id = await submit(gw)
        crashed = gw.runtime.new_dispatcher(owner="process-that-dies")
        jobs = await crashed.claim()
        assert [j.instruction_id for j in jobs] == [instruction_id]
        # ...the process dies here: no submit, lease still held
        survivor = gw.runtime.new_dispatcher(owner="survivor")
        assert await survivor.claim() == []  # leased: nobody else may take it yet
        await asyncio.sleep(0.6)
        await survivor.run_until_idle()
        await bank_of(gw).idle()
        view = await gw.wait_for(instruction_id, lambda v: v["status"] in FINAL)
        assert view["status"] == "settled"
        assert [(p["submissions"], p["status"]) for p in bank_of(gw).describe()] == [(1, "settled")]
        async with gw.runtime.engine.connect() as conn:
            assert (await conn.execute(select(outbox))).all() == []
    finally:
        await stop_gateway(gw)


class ProcessDied(Exception):
    """Stands in for a crash at one exact point of the dispatcher's code."""


async def test_crash_after_submit_before_commit_never_pays_twice(database: Database) -> None:
    gw = await start_gateway(
        database,
        dispatch=False,
        poll=False,
        sim_overrides={"iso20022_bank": {"send_callbacks": False}},
        dispatch__lease_seconds=0.5,
        dispatch__status_poll_after_seconds=0,
    )
    try:
        instruction_id = await submit(gw)
        crashed = gw.runtime.new_dispatcher(owner="process-that-dies")

        commits = 0
        real_commit = crashed._commit

        async def die_at_second_commit(*args: Any, **kwargs: Any) -> Any:
            nonlocal commits
            commits += 1
            if commits == 2:  # the first commit records the routing; the second would record the bank's answer
                raise ProcessDied
            return await real_commit(*args, **kwargs)

        crashed._commit = die_at_second_commit  # type: ignore[method-assign]
        jobs = await crashed.claim()
        assert len(jobs) == 1
        with pytest.raises(ProcessDied):
            await crashed.process(jobs)  # routed, submitted to the bank, then died before recording the answer
        assert (await gw.get_instruction(instruction_id))["status"] == "routed"
        await asyncio.sleep(0.6)  # lease expires
        await gw.runtime.new_dispatcher(owner="survivor").run_until_idle()
        view = await gw.get_instruction(instruction_id)
        assert view["status"] == "submitted"
        payments = bank_of(gw).describe()
        assert len(payments) == 1  # one payment at the bank...
        assert payments[0]["submissions"] == 2  # ...though it was sent twice, with the same idempotency key
        assert view["partner_reference"] == payments[0]["bank_reference"]
        assert gw.runtime.scheduler is not None
        await bank_of(gw).idle()
        summary = await gw.runtime.scheduler.poll_due()
        assert summary.applied == 1
        assert (await gw.get_instruction(instruction_id))["status"] == "settled"
    finally:
        await stop_gateway(gw)


async def test_transient_partner_failures_are_retried_with_backoff(database: Database) -> None:
    gw = await start_gateway(
        database,
        sim_overrides={"iso20022_bank": {"unavailable_for": 2, "retry_after": 0}},
        dispatch__backoff_base_seconds=0.05,
        dispatch__backoff_max_seconds=0.1,
    )
    try:
        instruction_id = await submit(gw)
        view = await gw.wait_for(instruction_id, lambda v: v["status"] in FINAL)
        assert view["status"] == "settled"
        payments = bank_of(gw).describe()
        assert len(payments) == 1 and payments[0]["submissions"] == 1
    finally:
        await stop_gateway(gw)


async def test_partner_down_exhausts_retries_and_fails(database: Database) -> None:
    gw = await start_gateway(
        database,
        simulators=False,
        partners__iso20022_bank__base_url="http://127.0.0.1:9",  # nothing listens on the discard port
        dispatch__max_attempts=3,
        dispatch__backoff_base_seconds=0.02,
        dispatch__backoff_max_seconds=0.05,
    )
    try:
        instruction_id = await submit(gw)
        view = await gw.wait_for(instruction_id, lambda v: v["status"] in FINAL)
        assert view["status"] == "failed"
        assert view["events"][-1]["reason_code"] == "RETRIES_EXHAUSTED"
        assert "3 attempts" in view["events"][-1]["reason"]
    finally:
        await stop_gateway(gw)


async def test_cancel_after_submission_is_refused(gateway: LiveGateway) -> None:
    instruction_id = await submit(gateway)
    await gateway.wait_for(instruction_id, lambda v: v["status"] in ("submitted", "settled"))
    async with gateway.session.post(
        f"{gateway.url}/v1/instructions/{instruction_id}/cancel", headers=gateway.headers()
    ) as resp:
        assert resp.status == 409


@pytest.mark.parametrize("count", [40])
async def test_many_concurrent_instructions_all_reach_their_final_status(gateway: LiveGateway, count: int) -> None:
    bodies = [example_instruction() for _ in range(count)]
    for i, body in enumerate(bodies):
        if i % 5 == 0:
            body["creditor"]["name"] = "Nordic Parts AB REJECT-AM04"
    responses = await asyncio.gather(*(gateway.post_instruction(b) for b in bodies))
    ids = [(await r.json())["id"] for r in responses]
    views = await asyncio.gather(*(gateway.wait_for(i, lambda v: v["status"] in FINAL, 30) for i in ids))
    outcomes = [v["status"] for v in views]
    assert outcomes == ["rejected" if i % 5 == 0 else "settled" for i in range(count)]
    payments = bank_of(gateway).describe()
    assert len(payments) == count and all(p["submissions"] == 1 for p in payments)


async def test_one_batch_is_prepared_at_a_time_and_the_next_claim_takes_what_arrived_meanwhile(
    database: Database,
) -> None:
    gw = await start_gateway(database, dispatch=False, sim_overrides={"iso20022_bank": {"send_callbacks": False}})
    try:
        first = await submit(gw)
        dispatcher = gw.runtime.new_dispatcher(owner="one")
        screening = asyncio.Event()
        real_screen = dispatcher._screen

        async def held_screen(*args: Any, **kwargs: Any) -> Any:
            await screening.wait()  # the batch stays in its preparation until the test lets it go
            return await real_screen(*args, **kwargs)

        dispatcher._screen = held_screen  # type: ignore[method-assign]
        assert await dispatcher.claim_and_spawn() == 1
        later = [await submit(gw) for _ in range(3)]
        assert await dispatcher.claim_and_spawn() == 0  # a batch is being prepared: nothing more is claimed
        screening.set()
        for _ in range(200):  # until the first batch has gone out to the bank
            if not dispatcher._preparing:
                break
            await asyncio.sleep(0.02)
        assert await dispatcher.claim_and_spawn() == 3  # what arrived meanwhile, as one batch
        await dispatcher.stop()
        for instruction_id in [first, *later]:
            assert (await gw.get_instruction(instruction_id))["status"] == "submitted"
        assert sorted(p["instruction_id"] for p in bank_of(gw).describe()) == sorted([first, *later])
    finally:
        await stop_gateway(gw)
