"""The command line: exit code 2 with one line for user errors; real runs of db, keys, adapters, demo."""

from __future__ import annotations

import argparse
import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.cli.main import build_parser

GATEWAY = [sys.executable, "-m", "gateway.cli"]


def run(*args: str, config: Path | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    cmd = [*GATEWAY, *(["--config", str(config)] if config else []), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env={"PATH": "/usr/bin:/bin"})


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "gateway.yaml"
    path.write_text(f"database:\n  url: sqlite+aiosqlite:///{tmp_path / 'cli.db'}\npartners: {{}}\nsimulators: {{}}\n")
    return path


def test_db_upgrade_then_keys_create_prints_only_the_key(config: Path) -> None:
    assert run("db", "upgrade", config=config).returncode == 0
    result = run("keys", "create", "--business-unit", "erp-europe", "--scope", "instructions", config=config)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("pgw_") and len(result.stdout.strip().splitlines()) == 1


def test_keys_create_before_migration_says_what_to_do(config: Path, tmp_path: Path) -> None:
    result = run("keys", "create", "--business-unit", "erp", config=config)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"gateway: no database at {tmp_path / 'cli.db'} (database.url from {config}): run `gateway db upgrade` first"
    )
    assert not (tmp_path / "cli.db").exists()
    sqlite3.connect(tmp_path / "cli.db").close()  # a database file without the gateway's schema
    result = run("keys", "create", "--business-unit", "erp", config=config)
    assert result.returncode == 2
    assert result.stderr.strip() == "gateway: the database schema is not up to date: run `gateway db upgrade` first"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["keys", "create", "--business-unit", "erp", "--scope", "root"], "invalid choice: 'root'"),
        (["keys", "create"], "--business-unit"),
        (["demo", "--count", "0"], "must be at least 1"),
        (["nonsense"], "invalid choice: 'nonsense'"),
        (["--config", "/nonexistent.yaml", "db", "upgrade"], "cannot read config file /nonexistent.yaml"),
        (["simulate", "nobank"], "no simulator named 'nobank'"),
    ],
)
def test_user_errors_exit_2_with_one_line(args: list[str], message: str) -> None:
    result = run(*args)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr
    assert "Traceback" not in result.stderr


def test_bad_config_file_names_the_key(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("dispatch:\n  lease_secs: 5\n")
    result = run("db", "upgrade", config=path)
    assert result.returncode == 2
    assert "unknown key dispatch.lease_secs" in result.stderr


def test_adapters_list_shows_the_builtin_adapter_from_its_entry_point() -> None:
    result = run("adapters", "list", "--json")
    assert result.returncode == 0, result.stderr
    adapters = {a["name"]: a for a in json.loads(result.stdout)}
    bank = adapters["iso20022_bank"]
    assert bank["enabled"] and bank["simulator"]
    assert bank["module"].startswith("gateway_adapters.")
    assert bank["capabilities"]["account_kinds"] == ["iban"]


def test_demo_reaches_every_predicted_status_and_loses_nothing() -> None:
    result = run("demo", "--count", "60", "--json", timeout=180)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["sent"] == 60 and summary["lost"] == 0 and summary["mismatched"] == 0
    assert sum(summary["by_status"].values()) == 60
    assert summary["by_status"] == summary["expected"]
    assert set(summary["by_status"]) == {"settled", "rejected"}
    # money in: card and wallet charges through the acquirer, each reaching the status it should
    collections = summary["collections"]
    assert collections["sent"] >= 3 and collections["mismatched"] == 0
    assert collections["by_status"] == collections["expected"] and "collected" in collections["by_status"]
    # and SEPA direct debits through the bank (pain.008 out, pain.002 and camt.054 back)
    assert collections["by_kind"]["direct_debit"] >= 3
    # and invoices paid by transfers the bank simulator received, fetched as the scheduled job fetches them:
    # paid by reference or invoice number (matched), over-paid (on account), nobody's (finance's queue)
    receipts = summary["receipts"]
    assert receipts["sent"] >= 4 and receipts["mismatched"] == 0 and receipts["gaps"] == []
    assert receipts["by_status"] == receipts["expected"]
    assert set(receipts["by_status"]) == {"matched", "on_account", "unmatched"}
    # the mixed batch went through all four rails, each instruction by the adapter its rule names
    assert set(summary["by_adapter"]) == {"iso20022_bank", "card_acquirer", "instant_rtp", "ach_nacha", "none"}
    assert summary["by_adapter"]["none"] == {"rejected": sum(summary["by_adapter"]["none"].values())}
    # every payment is final, so the books balance and nothing is left in transit with any partner
    ledger = summary["ledger"]
    assert ledger["balanced"] and ledger["audit_intact"] and ledger["entries"] >= 3 * summary["by_status"]["settled"]
    # (instant payments settle synchronously: they never sit in transit)
    assert set(ledger["in_transit"]) == {
        f"partner:{a}:in_transit" for a in ("iso20022_bank", "card_acquirer", "ach_nacha")
    }
    assert {amount for cur in ledger["in_transit"].values() for amount in cur.values()} == {"0.00"}


def test_route_explain_shows_the_decision_without_sending(tmp_path: Path) -> None:
    from tests.support import example_instruction

    eur, usd, bad = tmp_path / "eur.json", tmp_path / "usd.json", tmp_path / "bad.json"
    eur.write_text(json.dumps(example_instruction()))
    usd.write_text(json.dumps(example_instruction(currency="USD")))
    bad.write_text(json.dumps({"amount": 1}))
    chosen = json.loads(run("route", "explain", str(eur), "--json").stdout)
    assert chosen["adapter"] == "iso20022_bank" and chosen["rule"] == "sepa"
    refused = json.loads(run("route", "explain", str(usd), "--json").stdout)
    assert refused["adapter"] is None
    assert refused["skipped"]["iso20022_bank"] == "currency USD not supported"
    assert refused["reason"] == (
        "no adapter can carry this payment: no routing rule matched, and none of the candidates can "
        "(ach_nacha: iban accounts not supported; card_acquirer: type credit_transfer not supported; "
        "instant_rtp: iban accounts not supported; iso20022_bank: currency USD not supported)"
    )
    result = run("route", "explain", str(bad))
    assert result.returncode == 2
    # every error, as the API lists them, on one line
    assert result.stderr.strip() == (
        f"gateway: {bad} does not match instruction contract 1.1: /reference: required field is missing; "
        '/amount: amount must be a string, not a JSON number: put it in quotes, e.g. "1250.00"; '
        "/type: required field is missing; "
        "/currency: required field is missing; /debtor: required field is missing; /creditor: required field is missing"
    )


def test_a_database_schema_that_is_no_identifier_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "gateway.yaml"
    path.write_text("database:\n  url: postgresql+asyncpg://gw@127.0.0.1:9/gateway?schema=Bad-Name\n")
    result = run("db", "upgrade", config=path)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"gateway: database schema 'Bad-Name': use lower-case letters, digits and _ only (database.url from {path})"
    )


def test_every_command_s_help_renders() -> None:
    """argparse formats help text with %: a stray % in any help string breaks ``--help`` for everyone."""

    def walk(parser: argparse.ArgumentParser, path: str) -> list[str]:
        shown = [f"{path}: {len(parser.format_help())}"]
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    shown += walk(sub, f"{path} {name}")
        return shown

    shown = walk(build_parser(), "gateway")
    assert len(shown) > 60 and all(int(line.rsplit(": ", 1)[1]) > 0 for line in shown)
    assert any(line.startswith("gateway rollout compare:") for line in shown)
