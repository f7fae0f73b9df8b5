"""History-migration benchmark: ``gateway migrate import`` throughput on SQLite, against raw ``executemany``.

Target (issue 17): 1,000,000 rows at ≥ 20,000 rows/s on SQLite.

* **import**: ``import_file`` (what ``gateway migrate import`` runs) over a CSV of ``--rows``
  settled payments from one debtor to ``--creditors`` suppliers, into a fresh migrated
  SQLite database: every row checked against the instruction contract and the domain
  (IBANs, currency, minor units, dates), de-duplicated, stored with its checkpoint and
  its risk history, in chunks of ``--chunk`` rows; measured twice (``--checking both``): the
  next chunk checked in a worker thread, then in a worker process (the second core; what a
  file of 50,000 records or more gets). CPU seconds count the checking process too;
* **baseline**: the same rows (already parsed, as tuples) inserted by one raw ``sqlite3``
  ``executemany`` per chunk into a table of the same shape, no checks: the floor of what
  writing them costs. The ratio says what the checks, de-duplication and risk history cost.

The CSV is cached under ``var/bench/`` (``--fresh`` rewrites it).

    .venv/bin/python bench/migrate.py [--json] [--rows 1000000] [--chunk 10000]
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import resource
import shutil
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from schwifty import IBAN  # noqa: E402

from gateway.domain.clock import system_clock  # noqa: E402
from gateway.finance.migration import FileSource, Validator, chunk_size_for, import_file, load_mapping  # noqa: E402
from gateway.risk.model import Fingerprinter  # noqa: E402
from gateway.store.db import create_engine  # noqa: E402
from gateway.store.migrate import upgrade  # noqa: E402

HEADER = (
    "reference",
    "type",
    "amount",
    "currency",
    "status",
    "created_at",
    "status_at",
    "debtor_name",
    "debtor_iban",
    "creditor_name",
    "creditor_iban",
    "remittance_information",
)
DEBTOR_IBAN = "DE89370400440532013000"


def creditor_iban(n: int) -> str:
    """A valid German IBAN for supplier ``n`` (check digits computed by schwifty)."""
    return str(IBAN.generate("DE", bank_code="37040044", account_code=str(1_000_000 + n)))


def write_csv(path: Path, rows: int, creditors: int = 2000, *, prefix: str = "H") -> None:
    """``rows`` settled historical payments (2025), one debtor, ``creditors`` suppliers; references unique."""
    ibans = [creditor_iban(n) for n in range(creditors)]
    with path.open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(HEADER)
        for i in range(rows):
            c = i % creditors
            day = 1 + i % 28
            month = 1 + (i // 28) % 12
            out.writerow(
                (
                    f"{prefix}-{i:08d}",
                    "credit_transfer",
                    f"{100 + i % 9000}.{i % 100:02d}",
                    "EUR",
                    "settled",
                    f"2025-{month:02d}-{day:02d}T{i % 24:02d}:{i % 60:02d}:{(i // 60) % 60:02d}Z",
                    "",
                    "ACME Manufacturing GmbH",
                    DEBTOR_IBAN,
                    f"Supplier {c} AG",
                    ibans[c],
                    f"Invoice {i}",
                )
            )


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _children_cpu() -> float:
    """CPU seconds of this process's finished children (the import's checking process, once shut down)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


async def bench_import(work: Path, source: FileSource, chunk: int, processes: bool | None) -> dict[str, Any]:
    engine = create_engine(f"sqlite+aiosqlite:///{work / 'import.db'}")
    try:
        await upgrade(engine)
        validator = Validator(load_mapping(None), system_clock())
        started, cpu, children = time.perf_counter(), time.process_time(), _children_cpu()
        result = await import_file(
            engine,
            "erp-bench",
            source,
            validator,
            Fingerprinter(b"bench-key-0123456789"),
            chunk_size=chunk,
            processes=processes,
        )
        seconds = time.perf_counter() - started
        main_cpu = time.process_time() - cpu
        worker_cpu = _children_cpu() - children
        cpu = main_cpu + worker_cpu
    finally:
        await engine.dispose()
    c = result.checkpoint
    return {
        "rows": c.rows_done,
        "imported": c.imported,
        "rejected": c.rejected,
        "duplicates": c.duplicates,
        "seconds": round(seconds, 2),
        "rows_per_s": round(c.rows_done / seconds),
        "cpu_seconds": round(cpu, 2),
        "writer_cpu_seconds": round(main_cpu, 2),
        "checker_process_cpu_seconds": round(worker_cpu, 2),
        "rows_per_cpu_s": round(c.rows_done / cpu),
        "checking": "process" if worker_cpu else "thread",
    }


def bench_baseline(work: Path, path: Path, chunk: int) -> dict[str, Any]:
    """Raw ``executemany`` of the same rows (read from the CSV beforehand, not timed) into a same-shaped table."""
    with path.open(newline="") as f:
        reader = csv.reader(f)
        next(reader)
        rows = [
            (r[0], f"h{n}", r[1], r[2], int(r[2].replace(".", "")), r[3], r[4], r[7], "k", r[9], "k", "{}", r[11])
            for n, r in enumerate(reader)
        ]
    db = sqlite3.connect(work / "baseline.db", isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, reference TEXT NOT NULL, content_hash TEXT NOT NULL, type TEXT,"
        " amount TEXT, amount_minor INTEGER, currency TEXT, status TEXT, debtor_name TEXT, debtor_key TEXT,"
        " creditor_name TEXT, creditor_key TEXT, masked TEXT, remittance TEXT,"
        " UNIQUE (reference), UNIQUE (content_hash))"
    )
    sql = (
        "INSERT INTO t (reference, content_hash, type, amount, amount_minor, currency, status, debtor_name,"
        " debtor_key, creditor_name, creditor_key, masked, remittance) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)"
    )
    started, cpu = time.perf_counter(), time.process_time()
    for start in range(0, len(rows), chunk):
        db.execute("BEGIN")
        db.executemany(sql, rows[start : start + chunk])
        db.execute("COMMIT")
    seconds = time.perf_counter() - started
    cpu = time.process_time() - cpu
    db.close()
    return {
        "rows": len(rows),
        "seconds": round(seconds, 2),
        "rows_per_s": round(len(rows) / seconds),
        "cpu_seconds": round(cpu, 2),
        "rows_per_cpu_s": round(len(rows) / cpu),
    }


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    cache = Path(args.cache_dir)
    cache.mkdir(parents=True, exist_ok=True)
    path = cache / f"history-{args.rows}-{args.creditors}.csv"
    if args.fresh or not path.exists():
        log(f"writing {args.rows:,} rows to {path} …")
        write_csv(path, args.rows, args.creditors)
    work = Path(tempfile.mkdtemp(prefix="bench-migrate-"))
    try:
        source = FileSource.open(path, "csv")
        thread = None
        if args.checking in ("both", "thread"):
            log("migrate import, checking in a thread …")
            thread = await bench_import(work, source, args.chunk, False)
            (work / "import.db").unlink()
        if args.checking == "thread":
            imported = thread
        else:
            log("migrate import, checking in a worker process …")
            imported = await bench_import(work, source, args.chunk, True)
        log("baseline: raw executemany …")
        baseline = bench_baseline(work, path, args.chunk)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    ratio = round(imported["rows_per_s"] / baseline["rows_per_s"], 3)
    return {
        "import": imported,
        "import_thread": thread,
        "baseline": baseline,
        "ratio": ratio,
        "chunk": args.chunk,
        "targets": {"import_rows_per_s>=20000": imported["rows_per_s"] >= 20_000},
    }


def print_table(result: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    i, b = result["import"], result["baseline"]
    table = Table(title=f"history migration benchmark (SQLite, chunks of {result['chunk']:,})")
    for column in ("measure", "rows", "seconds", "rows/s", "rows per CPU s", "target"):
        table.add_column(column, justify="left" if column == "measure" else "right")
    ok = "ok" if result["targets"]["import_rows_per_s>=20000"] else "MISSED"
    t = result.get("import_thread")
    if t and t is not i:
        table.add_row(
            "migrate import, checking in a thread (one core)",
            f"{t['rows']:,}",
            str(t["seconds"]),
            f"{t['rows_per_s']:,}",
            f"{t['rows_per_cpu_s']:,}",
            "",
        )
    table.add_row(
        f"migrate import, checking in a {i['checking']} (checked, de-duplicated, risk history)",
        f"{i['rows']:,}",
        str(i["seconds"]),
        f"{i['rows_per_s']:,}",
        f"{i['rows_per_cpu_s']:,}",
        f"≥ 20,000: {ok}",
    )
    table.add_row(
        "baseline: raw executemany, no checks",
        f"{b['rows']:,}",
        str(b["seconds"]),
        f"{b['rows_per_s']:,}",
        f"{b['rows_per_cpu_s']:,}",
        "",
    )
    table.add_row("ratio import / baseline", "", "", f"{result['ratio']}", "", "")
    Console(stderr=True).print(table)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="also print one JSON object as the last line")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--creditors", type=int, default=2000, help="distinct suppliers paid")
    parser.add_argument(
        "--chunk", type=int, default=chunk_size_for("sqlite"), help="rows per transaction (the command's default)"
    )
    parser.add_argument(
        "--checking",
        choices=("both", "thread", "process"),
        default="both",
        help="where rows are checked while chunks are written: both runs (thread first), or one",
    )
    parser.add_argument("--fresh", action="store_true", help="rewrite the cached CSV")
    parser.add_argument("--cache-dir", default=str(REPO / "var" / "bench"), help="where the CSV is cached")
    args = parser.parse_args(argv)
    result = asyncio.run(main_async(args))
    print_table(result)
    if args.json:
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
