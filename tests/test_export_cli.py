"""``gateway export``: real runs on a SQLite file, the scheduled job, the benchmark at a tiny size."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.config import load_settings
from gateway.errors import ConfigError
from gateway.finance.offload import export_in_child
from gateway.runtime import Runtime
from gateway.store.db import create_engine
from gateway.store.watermarks import watermarks
from tests.support import Database, cli_config, load_bench, make_settings, run_cli
from tests.test_lake import lake_counts


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return cli_config(tmp_path)


def seed(config: Path, count: int) -> None:
    async def go() -> None:
        engine = create_engine(load_settings(config, env={}).database_url)
        try:
            await load_bench("export").seed(engine, count, chunk=100)
        finally:
            await engine.dispose()

    asyncio.run(go())


def test_export_run_writes_each_row_once_and_status_shows_the_watermarks(config: Path, tmp_path: Path) -> None:
    seed(config, 9)
    out = tmp_path / "lake"
    first = run_cli("export", "run", "--to", str(out), "--json", config=config)
    assert first.returncode == 0, first.stderr
    doc = json.loads(first.stdout)
    assert doc["datasets"]["instructions"]["rows"] == 9 and doc["manifest"]
    seed_more = run_cli("export", "run", "--to", str(out), "--dataset", "instructions", config=config)
    assert seed_more.returncode == 0 and "instructions: 0 rows" in seed_more.stderr
    assert lake_counts(out)["instructions"] == (9, 9)
    status = run_cli("export", "status", "--json", config=config)
    marks = json.loads(status.stdout)
    assert marks["instructions"]["rows"] == 9 and marks["instruction_events"]["rows"] == 9
    table = run_cli("export", "status", config=config)
    assert table.returncode == 0 and "instructions" in table.stdout and "_manifest" in table.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["export", "run", "--dataset", "payments"], "unknown dataset 'payments'; choose from instructions"),
        (["export", "publish"], "no event sink is configured: set event_sinks.nats_url"),
    ],
)
def test_export_user_errors_exit_2_with_one_line(config: Path, args: list[str], message: str) -> None:
    result = run_cli(*args, config=config)
    assert result.returncode == 2
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_export_publish_sends_new_events_to_jetstream(config: Path, nats_url: str) -> None:
    seed(config, 3)
    stream = f"CLI_{config.parent.name[-8:].replace('-', '_')}"
    text = config.read_text() + f"event_sinks:\n  nats_url: {nats_url}\n  nats_stream: {stream}\n"
    config.write_text(text + f"  nats_subject: cli{stream.lower()}\n")
    first = run_cli("export", "publish", config=config)
    again = run_cli("export", "publish", config=config)
    assert first.returncode == 0, first.stderr
    assert f"published 3 event(s) to nats:{stream}" in first.stderr and "published 0 event(s)" in again.stderr


async def test_the_scheduled_export_is_off_by_default_and_runs_when_configured(tmp_path: Path) -> None:
    base = load_settings(env={}).with_overrides(
        database__url=f"sqlite+aiosqlite:///{tmp_path / 'gw.db'}",
        partners={},
        risk__file=None,
        reconciliation__inbox_dir=None,  # only the export's job is asked about here
    )
    assert base.export.scheduled is False and base.event_sinks.enabled is False
    settings = base.with_overrides(export__scheduled=True, export__dir=str(tmp_path / "lake"))
    runtime = Runtime(settings)
    try:
        await load_bench("export").upgrade(runtime.engine)
        await load_bench("export").seed(runtime.engine, 4)
        jobs = {job.id: job for job in runtime.new_scheduler().extra}
        assert set(jobs) == {"data-export"}
        assert await jobs["data-export"].run() == 8  # 4 instructions and their 4 events
    finally:
        await runtime.close()
    assert lake_counts(tmp_path / "lake")["instructions"] == (4, 4)
    with pytest.raises(ConfigError, match="no sink is configured"):
        Runtime(base.with_overrides(event_sinks__enabled=True)).new_scheduler()


def test_bench_runs_tiny_and_reports_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert load_bench("export").main(["--instructions", "3000", "--cache-dir", str(tmp_path), "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["rows_exported"] == 3000 and result["rows_on_rerun"] == 0 and result["target_met"]
    assert result["baseline_select_seconds"] > 0 and result["ratio_to_select"] > 0


def test_neither_the_serving_process_nor_the_command_line_loads_arrow() -> None:
    """The export runs in a child process (gateway.finance.offload): Arrow's ~65 MB stay out of `gateway serve`."""
    probe = (
        "import sys, gateway.cli, gateway.runtime; print(sorted(m for m in ('pyarrow', 'duckdb') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True)
    assert result.stdout.strip() == "[]"


async def test_the_export_child_opens_the_database_the_parent_uses_schema_included(
    database: Database, tmp_path: Path
) -> None:
    """On PostgreSQL the child gets the parent's schema (tests pin one per test), not the URL's default."""
    engine = database.engine()
    try:
        await load_bench("export").seed(engine, 3)
        settings = make_settings(database, export__dir=str(tmp_path / "lake"))
        assert await export_in_child(engine, settings) == 6  # 3 instructions and their 3 first events
        assert await export_in_child(engine, settings) == 0  # each row once: the watermark moved in this schema
        async with engine.connect() as conn:
            assert (await watermarks(conn))["instructions"]["rows"] == 3
    finally:
        await engine.dispose()
    assert lake_counts(tmp_path / "lake")["instructions"] == (3, 3)
