"""API keys in the store: the functions ``gateway keys list|revoke|rotate`` and the admin API call."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.errors import ConfigError, ConflictError, NotFoundError
from gateway.store import repo
from gateway.store.tables import api_keys
from tests.support import NOW


async def _issue(engine: AsyncEngine, business_unit: str, *scopes: str) -> tuple[str, str]:
    async with engine.begin() as conn:
        return await repo.issue_api_key(conn, business_unit, scopes or ("instructions",), NOW)


async def _principal(engine: AsyncEngine, secret: str, at: timedelta = timedelta(0)) -> repo.Principal | None:
    async with engine.begin() as conn:
        return await repo.lookup_principal(conn, repo.hash_key(secret), NOW + at)


async def test_keys_are_listed_newest_first_without_secrets_and_filtered(engine: AsyncEngine) -> None:
    first, first_secret = await _issue(engine, "erp-europe")
    second, _ = await _issue(engine, "erp-asia", "finance", "instructions")
    async with engine.begin() as conn:
        listed = await repo.list_api_keys(conn, NOW)
        assert [k.id for k in listed] == [second, first]
        assert listed[0].scopes == ("finance", "instructions")
        assert listed[1].prefix == first_secret[:10]
        assert await repo.list_api_keys(conn, NOW, business_unit="erp-asia") == [listed[0]]
        assert [k.id for k in await repo.list_api_keys(conn, NOW, before=second)] == [first]
        assert [k.id for k in await repo.list_api_keys(conn, NOW, limit=1)] == [second]
        with pytest.raises(ConfigError, match="state must be one of active, revoked, all"):
            await repo.list_api_keys(conn, NOW, state="old")
    assert first_secret not in repr(listed)


async def test_lookup_notes_when_a_key_was_used_at_most_once_a_minute(engine: AsyncEngine) -> None:
    key_id, secret = await _issue(engine, "erp-europe")
    async with engine.connect() as conn:
        assert (await repo.get_api_key(conn, key_id)).last_used_at is None
    assert (await _principal(engine, secret)) is not None
    assert (await _principal(engine, secret, timedelta(seconds=30))) is not None
    async with engine.connect() as conn:
        assert (await repo.get_api_key(conn, key_id)).last_used_at == NOW
    await _principal(engine, secret, timedelta(seconds=61))
    async with engine.connect() as conn:
        assert (await repo.get_api_key(conn, key_id)).last_used_at == NOW + timedelta(seconds=61)


async def test_revoking_stops_a_key_and_is_idempotent(engine: AsyncEngine) -> None:
    key_id, secret = await _issue(engine, "erp-europe")
    async with engine.begin() as conn:
        revoked = await repo.revoke_api_key(conn, key_id, NOW)
        again = await repo.revoke_api_key(conn, key_id, NOW + timedelta(hours=1))
        assert revoked.revoked_at == again.revoked_at == NOW
        assert not again.active(NOW)
        assert await repo.list_api_keys(conn, NOW, state="active") == []
        assert [k.id for k in await repo.list_api_keys(conn, NOW, state="revoked")] == [key_id]
        with pytest.raises(NotFoundError):
            await repo.revoke_api_key(conn, "key_00000000000000000000000000", NOW)
    assert await _principal(engine, secret) is None


async def test_rotation_keeps_business_unit_and_scopes_and_honours_the_grace(engine: AsyncEngine) -> None:
    old_id, old_secret = await _issue(engine, "erp-europe", "instructions", "finance")
    async with engine.begin() as conn:
        new_secret, new = await repo.rotate_api_key(conn, old_id, NOW, timedelta(hours=1))
    assert (new.business_unit, new.scopes) == ("erp-europe", ("finance", "instructions"))
    assert new_secret != old_secret
    during = await _principal(engine, old_secret, timedelta(minutes=59))
    assert during is not None and during.valid_until == NOW + timedelta(hours=1)
    assert await _principal(engine, old_secret, timedelta(hours=1)) is None
    assert await _principal(engine, new_secret, timedelta(hours=2)) is not None
    async with engine.begin() as conn:
        with pytest.raises(ConflictError, match="is to be revoked"):
            await repo.rotate_api_key(conn, old_id, NOW)
        with pytest.raises(ConfigError, match="grace period"):
            await repo.rotate_api_key(conn, new.id, NOW, timedelta(days=8))
        assert (await conn.scalar(select(api_keys.c.revoked_at).where(api_keys.c.id == new.id))) is None


async def test_a_key_needs_a_known_scope(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        with pytest.raises(ConfigError, match="unknown scope 'root'"):
            await repo.issue_api_key(conn, "erp", ["root"], NOW)
        with pytest.raises(ConfigError, match="at least one scope"):
            await repo.issue_api_key(conn, "erp", [], NOW)
