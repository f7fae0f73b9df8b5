"""Reading, listing, cancelling, and tenant isolation."""

from __future__ import annotations

from tests.support import LiveGateway, example_instruction


async def _create(gw: LiveGateway, key: str | None = None, **changes: object) -> str:
    resp = await gw.post_instruction(example_instruction(**changes), key=key)
    assert resp.status == 202, await resp.text()
    return (await resp.json())["id"]


async def test_business_unit_sees_only_its_own_instructions(intake_gateway: LiveGateway) -> None:
    mine = await _create(intake_gateway)
    other_key = await intake_gateway.new_key("erp-americas")
    theirs = await _create(intake_gateway, key=other_key)
    async with intake_gateway.session.get(
        f"{intake_gateway.url}/v1/instructions/{theirs}", headers=intake_gateway.headers()
    ) as resp:
        assert resp.status == 404  # not 403: existence is not revealed
    async with intake_gateway.session.get(
        f"{intake_gateway.url}/v1/instructions", headers=intake_gateway.headers()
    ) as resp:
        ids = [i["id"] for i in (await resp.json())["items"]]
    assert ids == [mine]
    async with intake_gateway.session.post(
        f"{intake_gateway.url}/v1/instructions/{theirs}/cancel", headers=intake_gateway.headers()
    ) as resp:
        assert resp.status == 404
    assert (await intake_gateway.get_instruction(theirs, key=other_key))["status"] == "received"


async def test_list_paginates_newest_first_with_a_cursor(intake_gateway: LiveGateway) -> None:
    created = [await _create(intake_gateway) for _ in range(5)]
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        async with intake_gateway.session.get(
            f"{intake_gateway.url}/v1/instructions", params=params, headers=intake_gateway.headers()
        ) as resp:
            page = await resp.json()
        pages += 1
        seen += [i["id"] for i in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == 3
    assert seen == list(reversed(created))


async def test_list_filters_by_status_and_date(intake_gateway: LiveGateway) -> None:
    first = await _create(intake_gateway)
    second = await _create(intake_gateway)
    async with intake_gateway.session.post(
        f"{intake_gateway.url}/v1/instructions/{first}/cancel", headers=intake_gateway.headers()
    ) as resp:
        assert resp.status == 200

    async def ids(**params: str) -> list[str]:
        async with intake_gateway.session.get(
            f"{intake_gateway.url}/v1/instructions", params=params, headers=intake_gateway.headers()
        ) as resp:
            assert resp.status == 200, await resp.text()
            return [i["id"] for i in (await resp.json())["items"]]

    assert await ids(status="cancelled") == [first]
    assert await ids(status="received") == [second]
    assert set(await ids(status="received,cancelled")) == {first, second}
    assert await ids(created_to="2000-01-01") == []
    assert len(await ids(created_from="2000-01-01")) == 2


async def test_list_rejects_bad_query_parameters(intake_gateway: LiveGateway) -> None:
    for params in (
        {"status": "paid"},
        {"limit": "0"},
        {"limit": "x"},
        {"cursor": "abc"},
        {"created_from": "yesterday"},
    ):
        async with intake_gateway.session.get(
            f"{intake_gateway.url}/v1/instructions", params=params, headers=intake_gateway.headers()
        ) as resp:
            assert resp.status == 400, params
            assert resp.content_type == "application/problem+json"


async def test_cancel_before_submission_then_again_is_409_and_recorded(intake_gateway: LiveGateway) -> None:
    instruction_id = await _create(intake_gateway)
    url = f"{intake_gateway.url}/v1/instructions/{instruction_id}/cancel"
    async with intake_gateway.session.post(url, headers=intake_gateway.headers()) as resp:
        assert resp.status == 200
        assert (await resp.json())["status"] == "cancelled"
    async with intake_gateway.session.post(url, headers=intake_gateway.headers()) as resp:
        assert resp.status == 409
        assert "cancelled" in (await resp.json())["detail"]
    events = (await intake_gateway.get_instruction(instruction_id))["events"]
    assert [(e["status"], e["outcome"]) for e in events] == [
        ("received", "applied"),
        ("cancelled", "applied"),
        ("cancelled", "duplicate"),
    ]


async def test_unknown_instruction_id_is_404(intake_gateway: LiveGateway) -> None:
    for bad in ("ins_00000000000000000000000000", "nope", "../etc"):
        async with intake_gateway.session.get(
            f"{intake_gateway.url}/v1/instructions/{bad}", headers=intake_gateway.headers()
        ) as resp:
            assert resp.status == 404
            assert resp.content_type == "application/problem+json"
