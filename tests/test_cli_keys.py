"""``gateway keys list | revoke | rotate`` and ``serve --demo``'s keys, run as an operator would."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from gateway.cli.serve import demo_keys
from gateway.config import load_settings
from gateway.domain.clock import system_clock
from gateway.store import repo
from gateway.store.db import create_engine
from tests.test_cli import run


@pytest.fixture
def migrated(tmp_path: Path) -> Path:
    path = tmp_path / "gateway.yaml"
    path.write_text(f"database:\n  url: sqlite+aiosqlite:///{tmp_path / 'keys.db'}\npartners: {{}}\nsimulators: {{}}\n")
    assert run("db", "upgrade", config=path).returncode == 0
    return path


def _valid(config: Path, key: str) -> bool:
    async def look() -> bool:
        engine = create_engine(load_settings(config, env={}).database_url)
        try:
            async with engine.begin() as conn:
                return await repo.lookup_principal(conn, repo.hash_key(key), system_clock()) is not None
        finally:
            await engine.dispose()

    return asyncio.run(look())


def test_list_shows_keys_without_secrets_and_revoke_stops_one(migrated: Path) -> None:
    key = run("keys", "create", "--business-unit", "erp-europe", config=migrated).stdout.strip()
    run("keys", "create", "--business-unit", "group-finance", "--scope", "finance", config=migrated)
    listed = run("keys", "list", "--json", config=migrated)
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)
    assert {r["business_unit"] for r in rows} == {"erp-europe", "group-finance"}
    assert key not in listed.stdout and all(r["active"] for r in rows)
    erp = next(r for r in rows if r["business_unit"] == "erp-europe")
    assert key.startswith(erp["prefix"])

    revoked = run("keys", "revoke", erp["id"], config=migrated)
    assert revoked.returncode == 0, revoked.stderr
    assert revoked.stderr.strip() == f"revoked {erp['id']} (erp-europe)"
    assert not _valid(migrated, key)
    active = json.loads(run("keys", "list", "--state", "active", "--json", config=migrated).stdout)
    assert [r["business_unit"] for r in active] == ["group-finance"]
    table = run("keys", "list", "--business-unit", "erp-europe", config=migrated)
    assert erp["id"] in table.stdout and "revoked" in table.stdout


def test_rotate_prints_a_new_key_and_the_old_one_stops(migrated: Path) -> None:
    old = run("keys", "create", "--business-unit", "erp-europe", config=migrated).stdout.strip()
    (row,) = json.loads(run("keys", "list", "--json", config=migrated).stdout)
    rotated = run("keys", "rotate", row["id"], config=migrated)
    assert rotated.returncode == 0, rotated.stderr
    new = rotated.stdout.strip()
    assert new.startswith("pgw_") and new != old
    assert _valid(migrated, new) and not _valid(migrated, old)
    rows = json.loads(run("keys", "list", "--json", config=migrated).stdout)
    assert sorted(r["active"] for r in rows) == [False, True]


def test_rotate_with_grace_keeps_the_old_key_working(migrated: Path) -> None:
    old = run("keys", "create", "--business-unit", "erp-europe", config=migrated).stdout.strip()
    (row,) = json.loads(run("keys", "list", "--json", config=migrated).stdout)
    new = run("keys", "rotate", row["id"], "--grace", "3600", config=migrated).stdout.strip()
    assert _valid(migrated, old) and _valid(migrated, new)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["keys", "revoke", "nope"], "is not a key id"),
        (["keys", "rotate", "key_01ABCDEFGHJKMNPQRSTVWXYZ01", "--grace", "9999999"], "at most 604800 seconds"),
        (["keys", "revoke", "key_01ABCDEFGHJKMNPQRSTVWXYZ01"], "no API key 'key_01ABCDEFGHJKMNPQRSTVWXYZ01'"),
    ],
)
def test_bad_key_commands_exit_2_with_one_line(migrated: Path, args: list[str], message: str) -> None:
    result = run(*args, config=migrated)
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1 and message in result.stderr


def test_serve_demo_reuses_its_keys_instead_of_piling_up_new_ones(migrated: Path, tmp_path: Path) -> None:
    settings = load_settings(migrated, env={})
    first = asyncio.run(demo_keys(settings))
    second = asyncio.run(demo_keys(settings))
    assert first == second
    saved = tmp_path / "demo-keys.json"
    assert json.loads(saved.read_text()) == {"demo": first[0], "finance": first[1]}
    assert saved.stat().st_mode & 0o077 == 0  # readable by this user only
    assert len(json.loads(run("keys", "list", "--json", config=migrated).stdout)) == 2

    (demo_row,) = [
        r for r in json.loads(run("keys", "list", "--json", config=migrated).stdout) if r["business_unit"] == "demo"
    ]
    run("keys", "revoke", demo_row["id"], config=migrated)
    third = asyncio.run(demo_keys(settings))
    assert third[0] != first[0] and third[1] == first[1]  # only the revoked one is replaced
    assert len(json.loads(run("keys", "list", "--json", config=migrated).stdout)) == 3
