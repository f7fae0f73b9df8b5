"""``gateway reports``: real runs on a SQLite file; a bad name, period or schedule file exits 2 with one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support import run_cli


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "gateway.yaml"
    (tmp_path / "reports.yaml").write_text(
        "schedules:\n  monthly:\n    report: settlement\n    cron: '0 1 1 * *'\n    period: previous-month\n"
    )
    path.write_text(
        f"database:\n  url: sqlite+aiosqlite:///{tmp_path / 'cli.db'}\npartners: {{}}\nsimulators: {{}}\n"
        f"reports:\n  file: reports.yaml\n  folder: {tmp_path / 'out'}\n"
    )
    assert run_cli("db", "upgrade", config=path, cwd=tmp_path).returncode == 0
    return path


def test_run_writes_every_format_prints_one_and_list_shows_it(config: Path, tmp_path: Path) -> None:
    done = run_cli(
        "reports", "run", "settlement", "--period", "2026-12", "--format", "csv", config=config, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("report,settlement,period,2026-12,")
    assert done.stderr.strip().endswith(f"settlement.2026-12 written to {tmp_path / 'out' / 'settlement.2026-12'}")
    assert sorted(p.name for p in (tmp_path / "out" / "settlement.2026-12").iterdir()) == [
        "meta.json",
        "report.csv",
        "report.html",
        "report.json",
    ]
    listed = json.loads(run_cli("reports", "list", "--json", config=config, cwd=tmp_path).stdout)
    assert [w["id"] for w in listed["written"]] == ["settlement.2026-12"]
    assert listed["schedules"] == [
        {"name": "monthly", "report": "settlement", "cron": "0 1 1 * *", "period": "previous-month"}
    ]
    shown = run_cli(
        "reports",
        "list",
        config=config,
        cwd=tmp_path,
    )
    assert shown.returncode == 0 and "settlement.2026-12" in shown.stdout and "monthly" in shown.stdout
    checked = json.loads(run_cli("reports", "anomalies", "--json", config=config, cwd=tmp_path).stdout)
    assert checked == {"opened": [], "still_open": [], "resolved": []}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "settlement", "--period", "2026-Q5"], "gateway: period '2026-Q5': write a day (2026-12-05), a month"),
        (["run", "ledger", "--period", "2026-12"], "gateway: no report called 'ledger': the reports are partners,"),
    ],
)
def test_a_bad_name_or_period_exits_2_with_one_line(
    config: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    result = run_cli("reports", *args, config=config, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith(message) and result.stderr.count("\n") == 1, result.stderr
    assert not (tmp_path / "out").exists()


def test_a_bad_schedule_file_exits_2_naming_the_key(config: Path, tmp_path: Path) -> None:
    (tmp_path / "reports.yaml").write_text(
        "schedules:\n  monthly:\n    report: settlement\n    cron: '0 25 1 * *'\n    period: previous-month\n"
    )
    result = run_cli("reports", "list", config=config, cwd=tmp_path)
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert "reports.yaml: schedules.monthly.cron: '0 25 1 * *' is not a cron expression" in result.stderr
