"""The ledger and audit commands: real runs on a SQLite file; user errors exit 2 with one line."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path

import pytest

from gateway.config import load_settings
from gateway.domain.status import Status
from gateway.errors import ConfigError
from gateway.runtime import Runtime
from gateway.store import repo
from gateway.store.db import create_engine
from gateway.store.journal import bind
from tests.support import NOW, cli_config, insert_instruction, run_cli


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return cli_config(tmp_path)


def _settle_some(config: Path, count: int, *, ledger: bool = True) -> None:
    async def go() -> None:
        engine = create_engine(load_settings(config, env={}).database_url)
        if not ledger:
            bind(engine, None)
        try:
            for _ in range(count):
                instruction_id = await insert_instruction(engine)
                for status in (Status.ACCEPTED, Status.ROUTED, Status.SUBMITTED, Status.SETTLED):
                    async with engine.begin() as conn:
                        await repo.record_status(conn, instruction_id, status, source="test", now=NOW, adapter="bank")
        finally:
            await engine.dispose()

    asyncio.run(go())


def test_rules_check_shows_what_each_transition_posts(config: Path) -> None:
    result = run_cli("ledger", "rules", "check", "--json", config=config)
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    settled = next(t for t in doc["transitions"] if (t["from"], t["to"]) == ("submitted", "settled"))
    assert settled["postings"] == [["partner:{adapter}:bank", -100], ["partner:{adapter}:in_transit", 100]]


def test_an_unbalanceable_rule_is_refused_with_one_line(config: Path, tmp_path: Path) -> None:
    bad = tmp_path / "ledger.yaml"
    shipped = (Path(__file__).resolve().parents[2] / "config" / "ledger.yaml").read_text()
    bad.write_text(shipped.replace('      - credit: "partner:{adapter}:bank"\n', "", 1))
    result = run_cli("ledger", "rules", "check", "--file", str(bad), config=config)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"gateway: {bad}: events.fee.legs: debits and credits differ by 1 * amount, "
        "so it could post an unbalanced entry"
    ]
    settings = load_settings(env={}).with_overrides(ledger__file=str(bad))
    with pytest.raises(ConfigError, match="could post an unbalanced entry"):
        Runtime(settings)  # the gateway does not start


def test_trial_balance_backfill_and_close(config: Path) -> None:
    _settle_some(config, 2, ledger=False)  # moved before the ledger existed
    empty = json.loads(run_cli("ledger", "trial-balance", "--json", config=config).stdout)
    assert empty["currencies"] == {}
    first = run_cli("ledger", "backfill", config=config)
    assert first.returncode == 0 and first.stderr.strip() == "2 instructions checked, 2 entries posted"
    assert run_cli("ledger", "backfill", config=config).stderr.strip() == "2 instructions checked, 0 entries posted"
    _settle_some(config, 1)
    doc = json.loads(run_cli("ledger", "trial-balance", "--json", config=config).stdout)
    assert doc["balanced"] and doc["currencies"]["EUR"]["total"] == 0
    accounts = {a["account"]: a["balance"] for a in doc["currencies"]["EUR"]["accounts"]}
    assert accounts["bu:erp:receivable"] == 3 * 125_000 and accounts["partner:bank:in_transit"] == 0
    before = json.loads(run_cli("ledger", "trial-balance", "--as-of", "2026-11-25", "--json", config=config).stdout)
    assert before["currencies"] == {}
    table = run_cli("ledger", "trial-balance", config=config)
    assert "trial balance EUR" in table.stdout and "3750.00" in table.stdout
    assert run_cli("ledger", "close", "2026-11", config=config).stderr.strip() == "period 2026-11 closed"
    assert run_cli("ledger", "close", "2026-11", config=config).stderr.strip() == "period 2026-11 was already closed"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["ledger", "close", "2026-13"], "gateway: period '2026-13' is not YYYY-MM (e.g. 2026-11)"),
        (["ledger", "close", "2999-01"], "gateway: period 2999-01 has not ended yet; it can be closed from 2999-02-01"),
        (["ledger", "trial-balance", "--as-of", "yesterday"], "gateway: --as-of 'yesterday' is not a date"),
        (["ledger", "reverse", "99"], "gateway: entry 99 does not exist"),
        (["ledger", "export", "--period", "2026-11"], "gateway: period 2026-11 is not closed; close it first"),
    ],
)
def test_user_errors_exit_2_with_one_line(config: Path, args: list[str], message: str) -> None:
    result = run_cli(*args, config=config)
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert result.stderr.startswith(message)


def test_export_writes_a_numbered_batch_and_a_rerun_says_it_is_identical(config: Path, tmp_path: Path) -> None:
    _settle_some(config, 2)
    assert run_cli("ledger", "close", "2026-11", config=config).returncode == 0
    first = run_cli("ledger", "export", "--period", "2026-11", "--output-dir", str(tmp_path), config=config)
    assert first.returncode == 0, first.stderr
    assert "batch 1 (* 2026-11): 6 entries" in first.stderr
    again = run_cli("ledger", "export", "--period", "2026-11", "--output-dir", str(tmp_path), config=config)
    assert again.returncode == 0 and "re-run, identical to the first run" in again.stderr
    assert (tmp_path / "gl-all-2026-11-batch0001.csv").read_text().count("\n") == 13


def test_audit_verify_exits_1_naming_the_tampered_row(config: Path, tmp_path: Path) -> None:
    _settle_some(config, 2)
    clean = run_cli("audit", "verify", config=config)
    assert (
        clean.returncode == 0
        and clean.stderr.strip() == "audit chains intact: 10 events rows, 0 collections rows, 6 journal rows"
    )
    with sqlite3.connect(tmp_path / "cli.db") as db:
        db.execute("UPDATE ledger_postings SET amount = amount * 10 WHERE entry_id = 4 AND line = 1")
    result = run_cli("audit", "verify", config=config)
    assert result.returncode == 1
    assert result.stderr.splitlines()[0] == (
        "TAMPERED: journal chain at position 4: ledger_entries row id=4 was changed "
        "(its content does not match its hash)"
    )
