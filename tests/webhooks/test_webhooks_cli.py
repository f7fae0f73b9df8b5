"""``gateway webhooks``: real runs against a SQLite file; secrets alone on stdout; user errors exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.test_cli import run


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "gateway.yaml"
    path.write_text(
        f"database:\n  url: sqlite+aiosqlite:///{tmp_path / 'cli.db'}\npartners: {{}}\nsimulators: {{}}\n"
        'security:\n  encryption_keys: "t:MTExMTExMTExMTExMTExMTExMTExMTExMTExMTExMTE="\n'
    )
    assert run("db", "upgrade", config=path).returncode == 0
    assert run("keys", "create", "--business-unit", "erp", config=path).returncode == 0
    return path


def test_create_list_rotate_and_disable_an_endpoint(config: Path) -> None:
    created = run(
        "webhooks",
        "create",
        "--business-unit",
        "erp",
        "--url",
        "https://hooks.example.com/gw",
        "--event",
        "settled",
        config=config,
    )
    assert created.returncode == 0, created.stderr
    secret = created.stdout.strip()
    assert secret.startswith("whsec_") and len(created.stdout.splitlines()) == 1
    (listed,) = json.loads(run("webhooks", "list", "--json", config=config).stdout)
    assert listed["url"] == "https://hooks.example.com/gw" and listed["events"] == ["settled"]
    assert secret not in json.dumps(listed)
    rotated = run("webhooks", "rotate-secret", listed["id"], "--overlap-seconds", "600", config=config)
    assert rotated.returncode == 0, rotated.stderr
    assert rotated.stdout.strip().startswith("whsec_") and rotated.stdout.strip() != secret
    assert "the old one also signs until" in rotated.stderr
    disabled = run("webhooks", "disable", listed["id"], "--reason", "maintenance", config=config)
    assert disabled.returncode == 0, disabled.stderr
    (after,) = json.loads(run("webhooks", "list", "--json", "--business-unit", "erp", config=config).stdout)
    assert after["enabled"] is False and after["disabled_reason"] == "maintenance"
    assert after["previous_secret_valid_until"] is not None
    table = run("webhooks", "list", config=config)
    assert table.returncode == 0 and listed["id"] in table.stdout
    assert run("webhooks", "enable", listed["id"], config=config).returncode == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["create", "--business-unit", "erp", "--url", "http://127.0.0.1:9/x"], "not a public address"),
        (["create", "--business-unit", "erp", "--url", "ftp://hooks.example.com/x"], "https:// or http://"),
        (["create", "--business-unit", "nobody", "--url", "https://hooks.example.com/x"], "no business unit named"),
        (["create", "--business-unit", "erp", "--url", "https://h.example.com/", "--event", "paid"], "invalid choice"),
        (["disable", "whe_00000000000000000000000000"], "no webhook endpoint"),
        (["rotate-secret", "whe_00000000000000000000000000", "--overlap-seconds", "-1"], "must be 0 or more"),
    ],
)
def test_user_errors_exit_2_with_one_line(config: Path, args: list[str], message: str) -> None:
    result = run("webhooks", *args, config=config)
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1 and message in result.stderr, result.stderr
