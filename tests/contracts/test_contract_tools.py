"""`gateway contracts check|docs|pin`: the shipped contracts pass, broken ones fail, docs are never stale."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from gateway.contracts.registry import contracts
from gateway.contracts.tools import check, load_contracts, render_docs, render_partner_docs
from tests.support import REPO

FIXTURES = Path(__file__).parent / "fixtures"
GATEWAY = [sys.executable, "-m", "gateway.cli"]


def run(*args: str, config: Path | None = None) -> subprocess.CompletedProcess[str]:
    cmd = [*GATEWAY, *(["--config", str(config)] if config else []), *args]
    env = {"PATH": "/usr/bin:/bin", "COLUMNS": "200"}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=env, cwd=REPO)


def test_shipped_contracts_pass_the_check() -> None:
    result = run("contracts", "check")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "instruction 1.0 → 1.1 (request): claims compatible, is compatible" in result.stdout
    assert "instruction 1.1 → 2.0 (request): claims breaking, is breaking" in result.stdout
    assert "contracts check passed" in result.stdout


def test_a_version_claiming_compatible_but_breaking_fails_the_check_with_a_table() -> None:
    result = run("contracts", "check", "--root", str(FIXTURES / "broken"))
    assert result.returncode == 1, result.stdout + result.stderr
    out = result.stdout
    assert "instruction 1.0 → 1.1 (request): claims compatible, is breaking — FAILS" in out
    assert "status-event 1.0 → 1.1 (event): claims compatible, is breaking — FAILS" in out
    for row in (
        ("/currency", "required", "now required", "narrows", "breaking"),
        ("/party/name", "maxLength", "maxLength 140 → 70", "narrows", "breaking"),
        ("/currency", "properties", "widens", "compatible"),
        ("/status", "enum", 'value added: "returned"', "widens", "breaking"),
    ):
        assert any(all(cell in line for cell in row) for line in out.splitlines()), row


def test_check_reports_json_with_every_change() -> None:
    result = run("contracts", "check", "--root", str(FIXTURES / "broken"), "--json")
    assert result.returncode == 1
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["ok"] is False
    event = next(s for s in report["steps"] if s["message"] == "status-event")
    assert event["changes"] == [
        {
            "pointer": "/status",
            "keyword": "enum",
            "effect": "widens",
            "detail": 'value added: "returned"',
            "classification": "breaking",
        }
    ]


def _write(root: Path, message: str, version: str, **schema: Any) -> None:
    folder = root / message
    folder.mkdir(parents=True, exist_ok=True)
    doc = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"urn:t:{message}:{version}",
        "x-contract": message,
        "x-version": version,
        "x-direction": "request",
        "type": "object",
        **schema,
    }
    (folder / f"{version}.json").write_text(json.dumps(doc))


METADATA_CASES = [
    ("no-claim", {}, "x-compatibility must state 'compatible' or 'breaking' (relative to 1.0)"),
    ("breaking-minor", {"x-compatibility": "breaking"}, "a breaking version must start a new major version"),
    ("direction-flip", {"x-compatibility": "compatible", "x-direction": "event"}, "x-direction changed"),
    ("sunset-alone", {"x-compatibility": "compatible", "x-sunset": "2027-01-01"}, "x-sunset needs x-deprecated"),
    ("bad-date", {"x-compatibility": "compatible", "x-deprecated": "soon"}, "must be an ISO 8601 date"),
    ("bad-schema", {"x-compatibility": "compatible", "type": "text"}, "not a valid JSON Schema 2020-12"),
]


@pytest.mark.parametrize(("case", "meta", "problem"), METADATA_CASES, ids=[c[0] for c in METADATA_CASES])
def test_inconsistent_version_metadata_fails_the_check(
    tmp_path: Path, case: str, meta: dict[str, Any], problem: str
) -> None:
    _write(tmp_path, "thing", "1.0", **{"x-compatibility": "initial"})
    _write(tmp_path, "thing", "1.1", **meta)
    report = check(load_contracts(tmp_path))
    assert not report.ok
    assert any(problem in p for _, _, p in report.problems), report.problems


def test_the_newest_version_cannot_be_deprecated(tmp_path: Path) -> None:
    _write(tmp_path, "thing", "1.0", **{"x-compatibility": "initial", "x-deprecated": "2026-01-01"})
    report = check(load_contracts(tmp_path))
    assert report.problems == [
        ("thing", "1.0", "the newest version cannot be deprecated: there would be nothing to move to")
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["contracts", "check", "--root", "/nonexistent"], "/nonexistent is not a folder of contracts"),
        (["contracts", "docs", "--root", "/tmp/../nonexistent"], "is not a folder of contracts"),
        (["contracts", "pin", "erp"], "give a VERSION to pin, or --clear"),
        (["contracts", "pin", "erp", "7.0"], "unknown instruction contract version 7.0; available: 1.0, 1.1, 2.0"),
        (["contracts"], "gateway contracts: the following arguments are required: COMMAND"),
    ],
)
def test_contracts_user_errors_exit_2_with_one_line(args: list[str], message: str) -> None:
    result = run(*args)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr


def test_a_contract_file_that_is_not_json_is_a_user_error(tmp_path: Path) -> None:
    (tmp_path / "thing").mkdir()
    (tmp_path / "thing" / "1.0.json").write_text("{nope")
    result = run("contracts", "check", "--root", str(tmp_path))
    assert result.returncode == 2
    assert result.stderr.startswith("gateway: a contract under") and "is not JSON" in result.stderr


def test_contract_docs_in_the_repository_are_generated_from_the_schemas() -> None:
    pages = render_docs(contracts())
    folder = REPO / "docs" / "contracts"
    written = {p.name for p in folder.glob("*.md")} - {"README.md"}
    assert written == set(pages), (
        "docs/contracts has pages for messages that do not exist: run `gateway contracts docs`"
    )
    for name, text in pages.items():
        assert (folder / name).read_text() == text, f"docs/contracts/{name} is stale: run `gateway contracts docs`"


def test_contract_docs_cover_every_version_field_definition_and_change(tmp_path: Path) -> None:
    result = run("contracts", "docs", "--output", str(tmp_path))
    assert result.returncode == 0, result.stderr
    page = (tmp_path / "instruction.md").read_text()
    for heading in ("## Version 2.0", "## Version 1.1", "## Version 1.0", "### `structured_remittance` (2.0)"):
        assert heading in page
    assert "| `creditor_reference` | string | yes | pattern `^RF[0-9]{2}[A-Z0-9]{1,21}$`" in page
    assert "| 1.0 | initial | 2026-11-26 | 2027-06-30 |  |" in page
    assert "| `/remittance_information` | `oneOf` | alternative removed: string | narrows | breaking |" in page


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "gateway.yaml"
    path.write_text(f"database:\n  url: sqlite+aiosqlite:///{tmp_path / 'cli.db'}\npartners: {{}}\nsimulators: {{}}\n")
    return path


def test_pin_sets_and_clears_a_business_units_default_version(config: Path, tmp_path: Path) -> None:
    import sqlite3

    assert run("db", "upgrade", config=config).returncode == 0
    assert run("keys", "create", "--business-unit", "erp-europe", config=config).returncode == 0

    def pinned() -> str | None:
        with sqlite3.connect(tmp_path / "cli.db") as db:
            row = db.execute("SELECT default_contract_version FROM business_units WHERE name = 'erp-europe'").fetchone()
        return row[0]

    result = run("contracts", "pin", "erp-europe", "2.0", config=config)
    assert result.returncode == 0, result.stderr
    assert "pinned to instruction 2.0" in result.stderr
    assert pinned() == "2.0"
    assert run("contracts", "pin", "erp-europe", "--clear", config=config).returncode == 0
    assert pinned() is None
    missing = run("contracts", "pin", "erp-nowhere", "1.1", config=config)
    assert missing.returncode == 2
    assert "no business unit named 'erp-nowhere'" in missing.stderr


def test_partner_contract_docs_are_generated_from_the_partner_schemas() -> None:
    pages = render_partner_docs(REPO / "contracts" / "partners")
    folder = REPO / "docs" / "contracts" / "partners"
    assert (
        {p.name for p in folder.glob("*.md")}
        == set(pages)
        == {f"{p.name}.md" for p in (REPO / "contracts" / "partners").iterdir() if p.is_dir() and p.name[0] not in "_."}
    ), "docs/contracts/partners does not match contracts/partners: run `gateway contracts docs`"
    for name, text in pages.items():
        assert (folder / name).read_text() == text, (
            f"docs/contracts/partners/{name} is stale: run `gateway contracts docs`"
        )


def test_partner_contract_docs_cover_every_message_and_field(tmp_path: Path) -> None:
    result = run("contracts", "docs", "--output", str(tmp_path))
    assert result.returncode == 0, result.stderr

    ach = (tmp_path / "partners" / "ach_nacha.md").read_text()
    rtp = (tmp_path / "partners" / "instant_rtp.md").read_text()
    card = (tmp_path / "partners" / "card_acquirer.md").read_text()
    assert "| [`file-acknowledgement`](#file-acknowledgement) | 1.0 |" in ach
    assert "Exactly one of these alternatives:" in ach and "| `duplicates` | array | yes |" in ach
    assert "| `return_code` | string or null | no | pattern `^R[0-9]{2}$`" in ach
    for message in ("payment-request", "payment-report", "error"):  # flat <message>.json files
        assert f"\n## {message}\n" in rtp
    for message in ("payout-create", "payout", "webhook-event", "error"):  # <message>/<version>.json files
        assert f"\n## {message}\n" in card
