"""``gateway golive check``: a checklist that says what fails, with an exit code (docs/go-live.md)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

GATEWAY = [sys.executable, "-m", "gateway.cli"]
DEV_KEY = "dev:ZGV2LW9ubHktaW5zZWN1cmUta2V5LWRvLW5vdC11c2U="


def run(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [*GATEWAY, "--config", str(config), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, env={"PATH": "/usr/bin:/bin"})


class _Ok(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(405)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        return None


@pytest.fixture
def receiver() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Ok)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hooks"
    finally:
        server.shutdown()
        server.server_close()


def test_the_checklist_names_what_fails_and_exits_1_until_it_passes(tmp_path: Path, receiver: str) -> None:
    config = tmp_path / "gateway.yaml"
    config.write_text(
        f"database:\n  url: sqlite+aiosqlite:///{tmp_path / 'g.db'}\nsimulators: {{}}\n"
        f"security:\n  encryption_keys: '{DEV_KEY}'\nwebhooks:\n  allow_private_addresses: true\n"
        "partners:\n  card_acquirer:\n    base_url: http://127.0.0.1:9\n    api_key: sk_test_dev_only_not_a_real_key\n"
    )
    assert run(config, "db", "upgrade").returncode == 0
    assert run(config, "keys", "create", "--business-unit", "erp").returncode == 0
    unknown = run(config, "golive", "check", "--business-unit", "nobody")
    assert unknown.returncode == 2 and unknown.stderr.strip() == "gateway: no business unit named 'nobody'"

    first = run(config, "golive", "check", "--business-unit", "erp", "--json")
    assert first.returncode == 1, first.stderr
    states = {c["name"]: c for c in json.loads(first.stdout)["checks"]}
    assert {name: c["state"] for name, c in states.items()} == {
        "contract version pinned": "fail",
        "partners and conformance": "manual",
        "no development secrets": "fail",
        "webhooks configured and reachable": "fail",
        "history imported": "fail",
        "rollout mode set": "fail",
    }
    secrets = states["no development secrets"]["detail"]
    assert "development encryption key" in secrets and "partners.card_acquirer.api_key" in secrets
    assert "allow_private_addresses" in secrets
    assert "does not record conformance" in states["partners and conformance"]["detail"]

    assert run(config, "contracts", "pin", "erp", "2.0").returncode == 0
    dead = run(config, "webhooks", "create", "--business-unit", "erp", "--url", "http://127.0.0.1:9/closed")
    assert dead.returncode == 0, dead.stderr
    history = tmp_path / "h.json"
    history.write_text(
        json.dumps(
            {
                "reference": "OLD-1",
                "amount": "10.00",
                "currency": "EUR",
                "type": "credit_transfer",
                "debtor": {"name": "A", "account": {"iban": "DE89370400440532013000"}},
                "creditor": {"name": "B", "account": {"iban": "FR1420041010050500013M02606"}},
                "status": "settled",
                "created_at": "2025-01-01",
            }
        )
    )
    assert run(config, "migrate", "import", str(history), "--business-unit", "erp", "--format", "json").returncode == 0
    second = {
        c["name"]: c
        for c in json.loads(run(config, "golive", "check", "--business-unit", "erp", "--json").stdout)["checks"]
    }
    assert second["contract version pinned"] == {
        "name": "contract version pinned",
        "state": "pass",
        "detail": "instruction 2.0",
    }
    assert second["history imported"]["state"] == "pass" and "1 payments" in second["history imported"]["detail"]
    assert second["webhooks configured and reachable"]["state"] == "fail"
    assert "unreachable" in second["webhooks configured and reachable"]["detail"]

    listed = json.loads(run(config, "webhooks", "list", "--json").stdout)
    endpoints = listed["items"] if isinstance(listed, dict) else listed
    assert run(config, "webhooks", "disable", endpoints[0]["id"]).returncode == 0
    assert run(config, "webhooks", "create", "--business-unit", "erp", "--url", receiver).returncode == 0
    third = run(config, "golive", "check", "--business-unit", "erp")
    assert third.returncode == 1  # development secrets and the rollout mode still fail
    assert "1 endpoint(s) answer" in third.stdout and "not ready" in third.stdout

    checked = run(config, "golive", "check", "--business-unit", "erp", "--json")
    rollout = {c["name"]: c for c in json.loads(checked.stdout)["checks"]}
    assert rollout["rollout mode set"]["state"] == "fail"
    assert "no mode set for card_acquirer: `gateway rollout set erp PARTNER" in rollout["rollout mode set"]["detail"]
    canary = run(config, "rollout", "set", "erp", "card_acquirer", "canary", "--percent", "10")
    assert canary.returncode == 0, canary.stderr
    assert canary.stdout.strip().startswith("erp/card_acquirer: live -> canary 10%")
    checked = run(config, "golive", "check", "--business-unit", "erp", "--json")
    assert checked.stdout.strip(), (checked.returncode, checked.stderr)  # seen empty once under load: say why
    fourth = {c["name"]: c for c in json.loads(checked.stdout)["checks"]}
    assert fourth["rollout mode set"] == {
        "name": "rollout mode set",
        "state": "pass",
        "detail": "card_acquirer: canary 10%",
    }
