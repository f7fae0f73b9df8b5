"""POST /v1/instruction-batches: per-item answers, all or nothing, idempotent replays, limits; GET counts by status."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

from sqlalchemy import func, select

from gateway.store.tables import idempotency_keys, instruction_batches, instruction_events, instructions, outbox
from tests.support import LiveGateway, example_instruction


async def _post(
    gw: LiveGateway, docs: list[Any], *, key: str | None = None, query: str = "", **extra: Any
) -> tuple[int, dict[str, Any], Any]:
    headers = gw.headers(None, **{"Idempotency-Key": key or uuid.uuid4().hex})
    body = {"instructions": docs, **extra}
    async with gw.session.post(f"{gw.url}/v1/instruction-batches{query}", json=body, headers=headers) as resp:
        return resp.status, await resp.json(content_type=None), resp.headers


async def _counts(gw: LiveGateway) -> dict[str, int]:
    async with gw.runtime.engine.connect() as conn:
        return {
            t.name: int(await conn.scalar(select(func.count()).select_from(t)) or 0)
            for t in (instructions, instruction_events, outbox, idempotency_keys, instruction_batches)
        }


def _bad_amount() -> dict[str, Any]:
    return example_instruction(amount="12.345")


async def test_mixed_batch_answers_each_item_and_stores_the_good_ones_in_one_go(intake_gateway: LiveGateway) -> None:
    good = [example_instruction() for _ in range(3)]
    docs = [good[0], _bad_amount(), good[1], "not an object", good[2]]
    status, body, headers = await _post(intake_gateway, docs)
    assert status == 202, body
    assert body["id"].startswith("bat_") and headers["Location"] == f"/v1/instruction-batches/{body['id']}"
    assert (body["accepted"], body["refused"]) == (3, 2)
    assert [item["index"] for item in body["items"]] == [0, 1, 2, 3, 4]
    assert [("id" in item) for item in body["items"]] == [True, False, True, False, True]
    problem = body["items"][1]["problem"]
    assert problem["status"] == 422 and problem["type"].startswith("https://")
    assert problem["errors"][0]["pointer"].startswith("/instructions/1/amount")
    assert body["items"][3]["problem"]["errors"][0]["pointer"] == "/instructions/3"
    assert await _counts(intake_gateway) == {
        "instructions": 3,
        "instruction_events": 3,
        "outbox": 3,
        "idempotency_keys": 0,  # the batch's key covers its items
        "instruction_batches": 1,
    }
    # each accepted item is an ordinary instruction
    view = await intake_gateway.get_instruction(body["items"][0]["id"])
    assert view["reference"] == good[0]["reference"] and view["status"] == "received"
    async with intake_gateway.session.get(
        f"{intake_gateway.url}/v1/instruction-batches/{body['id']}", headers=intake_gateway.headers()
    ) as resp:
        assert resp.status == 200
        summary = await resp.json()
    assert summary == {
        "id": body["id"],
        "created_at": body["created_at"],
        "count": 3,
        "by_status": {"received": 3},
    }


async def test_duplicate_references_are_refused_per_item(intake_gateway: LiveGateway) -> None:
    first = example_instruction()
    assert (await intake_gateway.post_instruction(first)).status == 202
    twin = example_instruction()
    status, body, _ = await _post(intake_gateway, [first, twin, dict(twin)])
    assert status == 202
    assert (body["accepted"], body["refused"]) == (1, 2)
    for item in (body["items"][0], body["items"][2]):
        assert item["problem"]["status"] == 409
        assert item["problem"]["type"].endswith("/duplicate-reference")
        assert item["problem"]["errors"][0]["pointer"] == f"/instructions/{item['index']}/reference"


async def test_all_or_nothing_refuses_everything_with_every_problem(intake_gateway: LiveGateway) -> None:
    docs = [example_instruction(), _bad_amount(), example_instruction(), _bad_amount()]
    for how in ({"query": "?all_or_nothing=true"}, {"all_or_nothing": True}):
        status, problem, headers = await _post(intake_gateway, docs, **how)
        assert status == 422, problem
        assert headers["Content-Type"].startswith("application/problem+json")
        pointers = [e["pointer"] for e in problem["errors"]]
        assert any(p.startswith("/instructions/1/") for p in pointers)
        assert any(p.startswith("/instructions/3/") for p in pointers)
    # a duplicate reference found at write time refuses the whole batch too
    taken = example_instruction()
    assert (await intake_gateway.post_instruction(taken)).status == 202
    status, problem, _ = await _post(intake_gateway, [example_instruction(), taken], query="?all_or_nothing=true")
    assert status == 422 and problem["errors"] == [
        {"pointer": "/instructions/1/reference", "detail": "duplicate reference"}
    ]
    assert (await _counts(intake_gateway))["instructions"] == 1
    # all good: all stored
    status, body, _ = await _post(intake_gateway, [example_instruction(), example_instruction()], all_or_nothing=True)
    assert status == 202 and body["accepted"] == 2 and body["all_or_nothing"] is True


async def test_replay_gives_the_same_answer_and_stores_nothing_new(intake_gateway: LiveGateway) -> None:
    docs = [example_instruction(), _bad_amount(), example_instruction()]
    first = await _post(intake_gateway, docs, key="batch-1")
    before = await _counts(intake_gateway)
    second = await _post(intake_gateway, docs, key="batch-1")
    assert first[0] == second[0] == 202
    assert first[1] == second[1]
    assert second[2]["Idempotent-Replayed"] == "true"
    assert await _counts(intake_gateway) == before
    # same key, other body: 409, nothing stored
    status, problem, _ = await _post(intake_gateway, docs[:1], key="batch-1")
    assert status == 409 and problem["type"].endswith("/idempotency-conflict")
    assert await _counts(intake_gateway) == before


async def test_concurrent_replays_store_one_batch(intake_gateway: LiveGateway) -> None:
    docs = [example_instruction() for _ in range(20)]
    answers = await asyncio.gather(*(_post(intake_gateway, docs, key="same") for _ in range(4)))
    assert {a[0] for a in answers} == {202}
    assert len({json.dumps(a[1], sort_keys=True) for a in answers}) == 1
    counts = await _counts(intake_gateway)
    assert (counts["instructions"], counts["instruction_batches"]) == (20, 1)


async def test_more_than_10000_items_is_one_clear_problem(intake_gateway: LiveGateway) -> None:
    doc = example_instruction()
    status, problem, _ = await _post(intake_gateway, [doc] * 10_001)
    assert status == 422
    assert problem["errors"] == [{"pointer": "/instructions", "detail": "more than 10000 items (10001)"}]
    assert "at most 10000" in problem["detail"]
    assert (await _counts(intake_gateway))["instructions"] == 0


async def test_bad_envelopes_are_4xx_and_store_nothing(intake_gateway: LiveGateway) -> None:
    gw = intake_gateway
    url = f"{gw.url}/v1/instruction-batches"
    async with gw.session.post(url, json={"instructions": [example_instruction()]}, headers=gw.headers()) as resp:
        assert resp.status == 400  # no Idempotency-Key
    for body, pointer in (
        ({"instructions": []}, "/instructions"),
        ({"instructions": {}}, "/instructions"),
        ({"items": []}, "/items"),
        ([], ""),
        ({"instructions": [example_instruction()], "all_or_nothing": "yes"}, "/all_or_nothing"),
    ):
        headers = gw.headers(None, **{"Idempotency-Key": uuid.uuid4().hex})
        async with gw.session.post(url, json=body, headers=headers) as resp:
            assert resp.status == 422, body
            problem = await resp.json(content_type=None)
        assert problem["errors"][0]["pointer"] == pointer
    headers = gw.headers(None, **{"Idempotency-Key": "k"})
    async with gw.session.post(url + "?all_or_nothing=maybe", json={"instructions": [1]}, headers=headers) as resp:
        assert resp.status == 400
    async with gw.session.post(url, data=b"<x/>", headers={**headers, "Content-Type": "application/xml"}) as resp:
        assert resp.status == 415
    async with gw.session.get(f"{url}/bat_00000000000000000000000000", headers=gw.headers()) as resp:
        assert resp.status == 404
    assert (await _counts(gw))["instructions"] == 0


async def test_another_business_units_batch_is_not_found(intake_gateway: LiveGateway) -> None:
    status, body, _ = await _post(intake_gateway, [example_instruction()])
    assert status == 202
    other = await intake_gateway.new_key("erp-americas")
    url = f"{intake_gateway.url}/v1/instruction-batches/{body['id']}"
    async with intake_gateway.session.get(url, headers=intake_gateway.headers(other)) as resp:
        assert resp.status == 404


async def test_a_full_batch_of_10000_is_stored_in_one_go(intake_gateway: LiveGateway) -> None:
    docs = [example_instruction(reference=f"FULL-{i:05d}") for i in range(10_000)]
    status, body, _ = await _post(intake_gateway, docs)
    assert status == 202 and body["accepted"] == 10_000 and body["refused"] == 0
    assert len({item["id"] for item in body["items"]}) == 10_000
    counts = await _counts(intake_gateway)
    assert (counts["instructions"], counts["instruction_events"], counts["outbox"]) == (10_000, 10_000, 10_000)
    url = f"{intake_gateway.url}/v1/instruction-batches/{body['id']}"
    async with intake_gateway.session.get(url, headers=intake_gateway.headers()) as resp:
        assert (await resp.json())["by_status"] == {"received": 10_000}


async def test_the_answer_is_the_text_stored_with_the_batch_byte_for_byte(intake_gateway: LiveGateway) -> None:
    docs = [example_instruction(), _bad_amount(), example_instruction()]
    url = f"{intake_gateway.url}/v1/instruction-batches"
    bodies = []
    for _ in range(2):  # the new batch's answer, then its replay (encoded again from the stored value)
        headers = intake_gateway.headers(None, **{"Idempotency-Key": "bytes-1"})
        async with intake_gateway.session.post(url, json={"instructions": docs}, headers=headers) as resp:
            assert resp.status == 202 and resp.content_type == "application/json"
            bodies.append(await resp.read())
    assert bodies[0] == bodies[1]
    async with intake_gateway.runtime.engine.connect() as conn:
        stored = (await conn.execute(select(instruction_batches.c.response))).scalar_one()
    assert json.loads(bodies[0]) == stored and stored["accepted"] == 2
