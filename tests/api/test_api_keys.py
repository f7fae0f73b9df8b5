"""The API key life cycle over HTTP (scope admin): list, create, revoke, rotate; a revoked key gets 401 at once."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

from sqlalchemy import event

from tests.support import LiveGateway


async def _call(
    gw: LiveGateway, method: str, path: str, key: str, json: Any = None, **params: str
) -> tuple[int, Any, Any]:
    async with gw.session.request(method, f"{gw.url}{path}", headers=gw.headers(key), json=json, params=params) as resp:
        return resp.status, await resp.json(content_type=None), resp.headers


async def _status_with(gw: LiveGateway, key: str) -> int:
    """What a business unit's key gets when it lists its instructions."""
    async with gw.session.get(f"{gw.url}/v1/instructions", headers=gw.headers(key)) as resp:
        return resp.status


async def test_admin_creates_a_key_shown_once_and_lists_keys_without_secrets(intake_gateway: LiveGateway) -> None:
    admin = await intake_gateway.new_key("operations", ("admin",))
    status, created, headers = await _call(
        intake_gateway, "POST", "/v1/api-keys", admin, {"business_unit": "erp-asia", "scopes": ["instructions"]}
    )
    assert status == 201, created
    secret = created["key"]
    assert secret.startswith("pgw_") and len(secret) > 40
    assert headers["Cache-Control"] == "no-store"
    assert headers["Location"] == f"/v1/api-keys/{created['id']}"
    assert created["business_unit"] == "erp-asia"
    assert created["scopes"] == ["instructions"]
    assert created["active"] is True and created["revoked_at"] is None
    assert await _status_with(intake_gateway, secret) == 200

    status, page, _ = await _call(intake_gateway, "GET", "/v1/api-keys", admin)
    assert status == 200
    by_id = {k["id"]: k for k in page["items"]}
    assert created["id"] in by_id
    assert {k["business_unit"] for k in page["items"]} >= {"erp-asia", "erp-europe", "operations"}
    assert all("key" not in k and "key_hash" not in k for k in page["items"])
    assert secret not in str(page) and secret[10:] not in str(page)
    assert by_id[created["id"]]["prefix"] == secret[:10]
    assert by_id[created["id"]]["last_used_at"] is not None  # it was just used

    status, one, _ = await _call(intake_gateway, "GET", f"/v1/api-keys/{created['id']}", admin)
    assert status == 200
    assert one == {**by_id[created["id"]]}

    status, filtered, _ = await _call(intake_gateway, "GET", "/v1/api-keys", admin, business_unit="erp-asia")
    assert [k["id"] for k in filtered["items"]] == [created["id"]]


async def test_concurrent_requests_with_an_uncached_key_share_one_look_up(intake_gateway: LiveGateway) -> None:
    key = await intake_gateway.new_key("erp-asia", ("instructions",))
    look_ups: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if "FROM api_keys" in statement:
            look_ups.append(statement)

    engine = intake_gateway.runtime.engine.sync_engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        statuses = await asyncio.gather(*(_status_with(intake_gateway, key) for _ in range(20)))
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert statuses == [200] * 20
    assert len(look_ups) == 1  # the others waited for it, and then the cache answered


async def test_a_revoked_key_gets_401_at_once(intake_gateway: LiveGateway) -> None:
    admin = await intake_gateway.new_key("operations", ("admin",))
    _, created, _ = await _call(intake_gateway, "POST", "/v1/api-keys", admin, {"business_unit": "erp-asia"})
    assert await _status_with(intake_gateway, created["key"]) == 200  # now in the look-up cache

    status, revoked, _ = await _call(intake_gateway, "POST", f"/v1/api-keys/{created['id']}/revoke", admin)
    assert status == 200
    assert revoked["active"] is False and revoked["revoked_at"] is not None
    assert await _status_with(intake_gateway, created["key"]) == 401

    status, again, _ = await _call(intake_gateway, "POST", f"/v1/api-keys/{created['id']}/revoke", admin)
    assert status == 200
    assert again["revoked_at"] == revoked["revoked_at"]  # revoking twice changes nothing
    _, active, _ = await _call(intake_gateway, "GET", "/v1/api-keys", admin, state="active")
    _, gone, _ = await _call(intake_gateway, "GET", "/v1/api-keys", admin, state="revoked")
    assert created["id"] not in {k["id"] for k in active["items"]}
    assert [k["id"] for k in gone["items"]] == [created["id"]]


async def test_requests_that_miss_the_cache_together_look_the_key_up_once(intake_gateway: LiveGateway) -> None:
    admin = await intake_gateway.new_key("operations", ("admin",))
    _, created, _ = await _call(intake_gateway, "POST", "/v1/api-keys", admin, {"business_unit": "erp-asia"})
    look_ups: list[str] = []

    def seen(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "api_keys.key_hash" in statement:
            look_ups.append(statement)

    engine = intake_gateway.runtime.engine.sync_engine
    event.listen(engine, "before_cursor_execute", seen)
    try:
        statuses = await asyncio.gather(*(_status_with(intake_gateway, created["key"]) for _ in range(40)))
    finally:
        event.remove(engine, "before_cursor_execute", seen)

    assert statuses == [200] * 40
    assert len(look_ups) == 1  # the others waited for that one instead of each asking the database


async def test_rotation_replaces_the_key_and_the_old_one_stops_at_once(intake_gateway: LiveGateway) -> None:
    admin = await intake_gateway.new_key("operations", ("admin",))
    _, old, _ = await _call(intake_gateway, "POST", "/v1/api-keys", admin, {"business_unit": "erp-europe"})
    assert await _status_with(intake_gateway, old["key"]) == 200

    status, new, headers = await _call(intake_gateway, "POST", f"/v1/api-keys/{old['id']}/rotate", admin)
    assert status == 201, new
    assert headers["Cache-Control"] == "no-store"
    assert new["replaces"] == old["id"] and new["id"] != old["id"]
    assert (new["business_unit"], new["scopes"]) == (old["business_unit"], old["scopes"])
    assert await _status_with(intake_gateway, old["key"]) == 401
    assert await _status_with(intake_gateway, new["key"]) == 200

    status, problem, _ = await _call(intake_gateway, "POST", f"/v1/api-keys/{old['id']}/rotate", admin)
    assert status == 409
    assert "create a new key" in problem["detail"]


async def test_rotation_with_grace_keeps_the_old_key_working_until_then(intake_gateway: LiveGateway) -> None:
    admin = await intake_gateway.new_key("operations", ("admin",))
    _, old, _ = await _call(intake_gateway, "POST", "/v1/api-keys", admin, {"business_unit": "erp-europe"})
    status, new, _ = await _call(
        intake_gateway, "POST", f"/v1/api-keys/{old['id']}/rotate", admin, {"grace_seconds": 3600}
    )
    assert status == 201, new
    until = datetime.fromisoformat(new["replaced_key_valid_until"])
    assert 3590 <= (until - datetime.fromisoformat(new["created_at"])).total_seconds() <= 3600
    assert await _status_with(intake_gateway, old["key"]) == 200
    assert await _status_with(intake_gateway, new["key"]) == 200
    _, listed, _ = await _call(intake_gateway, "GET", f"/v1/api-keys/{old['id']}", admin)
    assert listed["active"] is True and datetime.fromisoformat(listed["revoked_at"]) == until

    # an operator who wants it gone before the grace is over revokes it
    await _call(intake_gateway, "POST", f"/v1/api-keys/{old['id']}/revoke", admin)
    assert await _status_with(intake_gateway, old["key"]) == 401
    assert await _status_with(intake_gateway, new["key"]) == 200


async def test_key_administration_needs_the_admin_scope(intake_gateway: LiveGateway) -> None:
    finance = await intake_gateway.new_key("finance", ("finance",))
    for method, path in (("GET", "/v1/api-keys"), ("POST", "/v1/api-keys")):
        status, problem, _ = await _call(intake_gateway, method, path, finance, {"business_unit": "x"})
        assert status == 403, problem
        assert "'admin'" in problem["detail"]
        status, _, _ = await _call(intake_gateway, method, path, "pgw_not-a-key")
        assert status == 401


async def test_bad_key_requests_are_problems_naming_what_to_fix(intake_gateway: LiveGateway) -> None:
    admin = await intake_gateway.new_key("operations", ("admin",))
    status, problem, _ = await _call(
        intake_gateway, "POST", "/v1/api-keys", admin, {"business_unit": "erp", "scopes": ["root"]}
    )
    assert status == 422
    assert problem["errors"][0]["pointer"] == "/scopes/0"
    status, problem, _ = await _call(intake_gateway, "POST", "/v1/api-keys", admin, {"business_unit": "   "})
    assert status == 422
    assert problem["errors"][0]["pointer"] == "/business_unit"
    _, key, _ = await _call(intake_gateway, "POST", "/v1/api-keys", admin, {"business_unit": "erp"})
    status, problem, _ = await _call(
        intake_gateway, "POST", f"/v1/api-keys/{key['id']}/rotate", admin, {"grace_seconds": 30 * 86400}
    )
    assert status == 422
    assert problem["errors"][0]["pointer"] == "/grace_seconds"
    status, _, _ = await _call(intake_gateway, "GET", "/v1/api-keys/key_00000000000000000000000000", admin)
    assert status == 404
    status, problem, _ = await _call(intake_gateway, "GET", "/v1/api-keys", admin, state="expired")
    assert status == 400
    assert problem["detail"].startswith("state must be")
    # the key whose rotation was refused still works
    assert await _status_with(intake_gateway, key["key"]) == 200
