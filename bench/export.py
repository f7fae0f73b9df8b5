"""Data-lake export benchmark: 1,000,000 instructions to Parquet, with baselines from the same run.

Target (issue 17), SQLite: ``gateway export run --dataset instructions`` over
1,000,000 instructions in < 20 s.

Baselines, measured in the same run on the same rows:

* **select**: the export's own ``SELECT`` of the same rows straight through
  ``sqlite3``, all fetched in one call (the floor: what any export pays to read them);
* **arrow write**: ``pyarrow.parquet.write_table`` of the same rows already in
  memory as one Arrow table (what any Parquet export must pay to write them).

The export's time is also shown as a ratio of their sum: the rest is the
export's own work (chunking, partitioning, checksums, fsync, the watermark).
The 1M-instruction database is cached under ``var/bench/`` (``--fresh`` rebuilds).

    .venv/bin/python bench/export.py [--json] [--instructions 1000000] [--fresh] [--cache-dir DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sqlite3
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
from sqlalchemy.ext.asyncio import AsyncEngine  # noqa: E402

from gateway.contracts.registry import contracts  # noqa: E402
from gateway.contracts.versions import parse_as_latest  # noqa: E402
from gateway.domain.instruction import parse_instruction  # noqa: E402
from gateway.finance.lake import DATASETS, Exporter, _array  # noqa: E402
from gateway.store import repo  # noqa: E402
from gateway.store.audit import canonical_time, seal_events, seal_events_in_thread  # noqa: E402
from gateway.store.codec import InstructionCodec  # noqa: E402
from gateway.store.db import create_engine  # noqa: E402
from gateway.store.encryption import FieldCipher, parse_key_ring  # noqa: E402
from gateway.store.migrate import upgrade  # noqa: E402
from gateway.store.repo import Decision  # noqa: E402
from gateway.store.tables import instruction_events, instructions  # noqa: E402

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
CODEC = InstructionCodec(FieldCipher(parse_key_ring("b:" + "YmVuY2gtb25seS1rZXktYmVuY2gtb25seS1rZXktMDE=")))
TARGET_SECONDS = 20.0


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _data() -> Any:
    example = contracts().schema("instruction", "1.0")["examples"][0]
    return parse_as_latest(contracts(), "instruction", "1.1", dict(example), parse_instruction)


async def seed(engine: AsyncEngine, count: int, *, start: int = 0, days: int = 3, chunk: int = 5000) -> list[str]:
    """``count`` received instructions (row + first event, linked into the audit chain), over ``days`` days."""
    data = _data()
    template = CODEC.new_row("ins_x", "x", data, "1.1", NOW)
    ids = []
    async with engine.begin() as conn:
        bu = await repo.ensure_business_unit(conn, "erp-bench", NOW)
    for first in range(start, start + count, chunk):
        rows, events = [], []
        for n in range(first, min(first + chunk, start + count)):
            at = NOW + timedelta(seconds=n * days * 86400 // max(count + start, 1))
            instruction_id = f"ins_{n:026d}"  # a valid id (API paths and cursors check ids)
            ids.append(instruction_id)
            rows.append(
                {
                    **template,
                    "id": instruction_id,
                    "business_unit_id": bu,
                    "reference": f"B{n:020d}",
                    "amount_minor": 100 + n % 100_000,
                    "amount": str(1 + n % 1000),
                    "created_at": at,
                    "updated_at": at,
                }
            )
            events.append(
                repo.event_row(
                    instruction_id,
                    1,
                    None,
                    repo.Status.RECEIVED,
                    Decision(True, "applied"),
                    source="api",
                    occurred_at=at,
                )
            )
        async with engine.begin() as conn:
            await conn.execute(instructions.insert(), rows)
            await seal_events(conn, events)
            await conn.execute(instruction_events.insert(), events)
    return ids


def _sql_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return canonical_time(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, dict | list):
        return json.dumps(value)
    return value


def seed_sqlite(path: Path, count: int, *, days: int = 3, chunk: int = 50_000) -> None:
    """Like :func:`seed`, straight through ``sqlite3`` (1M rows in minutes); linked into the audit chain alike."""
    data = _data()
    template = CODEC.new_row("ins_x", "erp-bench", data, "1.1", NOW)
    dialect = create_engine(f"sqlite+aiosqlite:///{path}").dialect
    db = sqlite3.connect(path)
    try:
        db.execute(
            "INSERT OR IGNORE INTO business_units (id, name, created_at) VALUES ('erp-bench', 'erp-bench', ?)",
            (canonical_time(NOW),),
        )
        columns = list(template)
        event_columns: list[str] = []
        for first in range(0, count, chunk):
            rows, events = [], []
            for n in range(first, min(first + chunk, count)):
                at = NOW + timedelta(seconds=n * days * 86400 // count)
                instruction_id = f"ins_{n:026d}"  # a valid id (API paths and cursors check ids)
                row = {
                    **template,
                    "id": instruction_id,
                    "reference": f"B{n:020d}",
                    "amount_minor": 100 + n % 100_000,
                    "created_at": at,
                    "updated_at": at,
                }
                rows.append(tuple(_sql_value(row[c]) for c in columns))
                events.append(
                    repo.event_row(
                        instruction_id,
                        1,
                        None,
                        repo.Status.RECEIVED,
                        Decision(True, "applied"),
                        source="api",
                        occurred_at=at,
                    )
                )
            seal_events_in_thread(db, dialect, events)
            event_columns = event_columns or list(events[0])
            db.executemany(
                f"INSERT INTO instructions ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})", rows
            )
            db.executemany(
                f"INSERT INTO instruction_events ({', '.join(event_columns)}) "
                f"VALUES ({', '.join('?' * len(event_columns))})",
                [tuple(_sql_value(e[c]) for c in event_columns) for e in events],
            )
            db.commit()
    finally:
        db.close()


async def cached_db(path: Path, count: int, fresh: bool) -> AsyncEngine:
    ready = path.with_suffix(f".{count}.v2.ready")  # v2: ids the API accepts
    if fresh or not ready.exists():
        path.unlink(missing_ok=True)
        for old in path.parent.glob(path.with_suffix("").name + ".*.ready"):
            old.unlink()
        engine = create_engine(f"sqlite+aiosqlite:///{path}")
        await upgrade(engine)
        log(f"building {count:,} instructions in {path} (cached for later runs)")
        started = time.perf_counter()
        await engine.dispose()
        seed_sqlite(path, count)
        log(f"  built in {time.perf_counter() - started:.0f} s")
        ready.write_text("ok")
        return engine
    return create_engine(f"sqlite+aiosqlite:///{path}")


def baseline_select(path: Path, dialect: Any) -> tuple[float, float, list[str], list[Any]]:
    """The same rows, read with the export's own query straight through ``sqlite3`` in one go (the floor).

    Its wall and CPU seconds, the column names, the rows.
    """
    compiled = DATASETS["instructions"].rows(0, 2**62).compile(dialect=dialect)
    params = tuple(compiled.params[name] for name in compiled.positiontup or ())
    db = sqlite3.connect(path)
    try:
        started, cpu = time.perf_counter(), time.process_time()
        cursor = db.execute(str(compiled), params)
        rows = cursor.fetchall()
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
        return elapsed, cpu, [d[0] for d in cursor.description], rows
    finally:
        db.close()


def baseline_write(names: list[str], rows: list[Any], folder: Path) -> float:
    """The same rows, already in memory as one Arrow table, written as one Parquet file."""
    dataset = DATASETS["instructions"]
    columns = list(zip(*rows, strict=True))
    arrays = [_array(columns[names.index(col.name)], col) for col in dataset.columns]
    table = pa.Table.from_arrays(arrays, schema=dataset.schema)
    started = time.perf_counter()
    pq.write_table(table, folder / "baseline.parquet", compression="zstd")
    return time.perf_counter() - started


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    folder = Path(args.cache_dir) if args.cache_dir else REPO / "var" / "bench"
    folder.mkdir(parents=True, exist_ok=True)
    engine = await cached_db(folder / "export.db", args.instructions, args.fresh)
    out = Path(tempfile.mkdtemp(prefix="export-bench-", dir=folder))
    try:
        select_s, select_cpu, names, rows = baseline_select(folder / "export.db", engine.dialect)
        write_s = baseline_write(names, rows, out)
        del rows
        lake = out / "lake"
        # a fresh watermark each run: the bench database is reused, so reset the export's state in it
        async with engine.begin() as conn:
            await conn.exec_driver_sql("DELETE FROM export_files")
            await conn.exec_driver_sql("DELETE FROM export_watermarks")
        exporter = Exporter(engine, lake, lambda: datetime.now(UTC))
        started, cpu = time.perf_counter(), time.process_time()
        result = await exporter.run(["instructions"])
        export_s, export_cpu = time.perf_counter() - started, time.process_time() - cpu
        again = time.perf_counter()
        second = await exporter.run(["instructions"])
        rerun_s = time.perf_counter() - again
        files = sorted(lake.glob("dataset=instructions/*/*.parquet"))
        size = sum(f.stat().st_size for f in files)
    finally:
        await engine.dispose()
        shutil.rmtree(out, ignore_errors=True)
    return {
        "instructions": args.instructions,
        "rows_exported": result.rows,
        "rows_on_rerun": second.rows,
        "files": len(files),
        "parquet_mb": round(size / 1e6, 1),
        "export_seconds": round(export_s, 2),
        "rerun_seconds": round(rerun_s, 3),
        "rows_per_second": round(result.rows / export_s),
        "export_cpu_seconds": round(export_cpu, 2),
        "baseline_select_seconds": round(select_s, 2),
        "baseline_select_cpu_seconds": round(select_cpu, 2),
        "baseline_arrow_write_seconds": round(write_s, 2),
        "ratio_to_select": round(export_s / select_s, 2),
        "ratio_to_select_plus_write": round(export_s / (select_s + write_s), 2),
        "cpu_ratio_to_select": round(export_cpu / select_cpu, 2),
        "target_seconds": TARGET_SECONDS,
        "target_met": export_s < TARGET_SECONDS and result.rows == args.instructions,
    }


def print_table(result: dict[str, Any]) -> None:
    log(f"\nexport of {result['instructions']:,} instructions (SQLite) → {result['files']} Parquet files")
    log(f"{'measure':38} {'seconds':>9} {'ratio':>7} {'CPU s':>7} {'ratio':>7}")
    log(
        f"{'baseline: raw sqlite3 SELECT':38} {result['baseline_select_seconds']:9.2f} {1:7.2f}"
        f" {result['baseline_select_cpu_seconds']:7.2f} {1:7.2f}"
    )
    log(f"{'baseline: pyarrow write from memory':38} {result['baseline_arrow_write_seconds']:9.2f}")
    log(
        f"{'gateway export run':38} {result['export_seconds']:9.2f} {result['ratio_to_select']:7.2f}"
        f" {result['export_cpu_seconds']:7.2f} {result['cpu_ratio_to_select']:7.2f}"
    )
    log(f"{'  vs SELECT + write':38} {'':9} {result['ratio_to_select_plus_write']:7.2f}")
    log(f"{'re-run (nothing new)':38} {result['rerun_seconds']:9.3f}")
    verdict = "met" if result["target_met"] else "MISSED"
    log(f"rows/s {result['rows_per_second']:,}; target < {result['target_seconds']:.0f} s: {verdict}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", action="store_true", help="print the result as one JSON object")
    parser.add_argument("--instructions", type=int, default=1_000_000)
    parser.add_argument("--fresh", action="store_true", help="rebuild the cached database")
    parser.add_argument("--cache-dir", help="folder of the cached database (default: var/bench)")
    args = parser.parse_args(argv)
    result = asyncio.run(main_async(args))
    print_table(result)
    if args.json:
        print(json.dumps(result))
    return 0 if result["target_met"] else 1


if __name__ == "__main__":
    sys.exit(main())
