"""Statement import at scale: a camt.053 of N entries streamed into the database, against raw lxml.

Writes one camt.053 (v8, one statement, N booked entries rendered as the bank
adapter renders them, TxsSummry and balances adding up) to a temporary file,
then runs, each in its own child process so that each reports its own peak RSS:

- ``baseline``: raw ``lxml.etree.iterparse`` of the same file, each ``Ntry``
  cleared as it ends, nothing read out of it: the floor for any reader;
- ``read``: the gateway's streaming reader (``StatementFormat.stream``):
  every entry read into a ``StatementLine``, nothing stored;
- ``import``: ``gateway recon import``'s path (``import_file`` on the path):
  read, checked and stored in one transaction into a fresh SQLite file (or the
  PostgreSQL database of ``--database-url``, in a fresh schema); the entries are
  read by worker processes (``StatementFormat.stream_file``), whose CPU time and
  peak RSS are reported beside the importing process's (``workers_*``);
- ``import_serial``: the same import read by one process (``stream`` alone, as
  before the parallel reader): the old path, measured in the same run.

    .venv/bin/python bench/statements.py --entries 1000000 [--json] [--database-url postgresql+asyncpg://…]

Target (issue 14): 1M entries at >= 50,000 entries/s with peak RSS < 300 MB.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import resource
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import replace
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from lxml import etree  # noqa: E402
from sqlalchemy import text  # noqa: E402

from gateway.plugins.manager import Plugins  # noqa: E402
from gateway.recon.imports import import_file  # noqa: E402
from gateway.store.db import create_engine  # noqa: E402
from gateway.store.migrate import upgrade  # noqa: E402
from gateway_adapters.iso20022_bank.camt053 import build_camt053  # noqa: E402
from gateway_adapters.iso20022_bank.statements import WORKERS  # noqa: E402
from gateway_simulators.core.partner import Statement, StatementEntry  # noqa: E402

DAY = date(2026, 3, 2)
NOW = datetime(2026, 3, 2, 18, 0, tzinfo=UTC)


def _entry(k: int, amount: Decimal) -> StatementEntry:
    return StatementEntry(
        amount=amount,
        currency="EUR",
        credit=False,
        booked_on=DAY,
        reference=f"INV-{k:010d}",
        partner_reference=f"BNK{k:012d}",
        instruction_id=f"ins_{k:012d}",
        counterparty_name=f"Creditor {k}",
    )


def write_camt053(n: int, path: Path) -> int:
    """An ``n``-entry camt.053 written as it is generated: one entry rendered by the adapter, repeated."""
    rng = random.Random(53)
    amounts = [Decimal(rng.randint(1_00, 50_000_00)) / 100 for _ in range(n)]
    total = sum(amounts, Decimal(0))
    # render two entries with the real builder; the file is its head, n entries like these, its tail
    sample = Statement(
        statement_id="BENCH-CAMT-1",
        account_iban="DE89370400440532013000",
        currency="EUR",
        day=DAY,
        created_at=NOW,
        opening_balance=total,
        closing_balance=Decimal(0),
        entries=(_entry(0, Decimal("1.00")), _entry(1, Decimal("2.00"))),
    )
    body = build_camt053([sample], message_id="BENCH-CAMT", created_at=NOW).decode()
    first, last = body.index("<Ntry>"), body.rindex("</Ntry>") + len("</Ntry>")
    second = body.index("<Ntry>", first + 1)
    template = body[first:second]
    head, tail = body[:first], body[last:]
    # the builder's TxsSummry counts the two sample entries; the file's own figures are its balances
    head = re.sub(r"<TxsSummry>.*?</TxsSummry>", "", head, flags=re.DOTALL)
    # the head's balances already hold the real figures: opening = all entries' debits, closing 0
    with path.open("w", encoding="utf-8") as out:
        out.write(head)
        for k, amount in enumerate(amounts):
            chunk = (
                template.replace("INV-0000000000", f"INV-{k:010d}")
                .replace("BNK000000000000", f"BNK{k:012d}")
                .replace("ins_000000000000", f"ins_{k:012d}")
                .replace("Creditor 0<", f"Creditor {k}<")
                .replace(">1.00<", f">{amount:.2f}<")
            )
            out.write(chunk)
        out.write(tail)
    return path.stat().st_size


def _cpu(since: float) -> float:
    """CPU seconds of this process (every thread) since ``since``: the fairer figure on a loaded machine."""
    return round(time.process_time() - since, 3)


def _rss() -> float:
    """This process's peak resident set in MB: ``VmHWM``, the high-water mark of its own memory since ``exec``.

    Not ``ru_maxrss``: Linux carries the parent's peak at ``fork`` over ``exec`` into it, so a child of a
    parent that has just written a 1M-entry file would report the parent's memory.
    """
    return round(_hwm("self") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def child_baseline(path: str) -> dict[str, Any]:
    clock, cpu, count = time.perf_counter(), time.process_time(), 0
    for _event, element in etree.iterparse(path, events=("end",), tag="{*}Ntry", resolve_entities=False):
        count += 1
        element.clear()
        while element.getprevious() is not None:
            del element.getparent()[0]
    return {
        "seconds": round(time.perf_counter() - clock, 3),
        "cpu_seconds": _cpu(cpu),
        "entries": count,
        "peak_rss_mb": _rss(),
    }


def child_read(path: str) -> dict[str, Any]:
    fmt = Plugins().statement_formats()["camt.053"]
    assert fmt.stream is not None
    clock, cpu, count = time.perf_counter(), time.process_time(), 0
    with open(path, "rb") as source:
        for _item in fmt.stream(source):
            count += 1
    return {
        "seconds": round(time.perf_counter() - clock, 3),
        "cpu_seconds": _cpu(cpu),
        "items": count,
        "peak_rss_mb": _rss(),
    }


def _children_cpu() -> float:
    """CPU seconds of this process's ended children (the import's workers)."""
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


def _hwm(pid: str) -> float:
    """``VmHWM`` of process ``pid`` (or ``self``) in MB; 0 when it cannot be read."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for row in status:
                if row.startswith("VmHWM:"):
                    return int(row.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


class _ChildrenPeak(threading.Thread):
    """The largest ``VmHWM`` of this process's children (the workers), looked at every 0.2 s while they run.

    Not ``RUSAGE_CHILDREN``'s ``ru_maxrss``: a spawned worker inherits its parent's peak at ``fork`` (see ``_rss``).
    """

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peak = 0.0
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.2):
            for task in Path("/proc/self/task").iterdir():
                try:
                    pids = (task / "children").read_text().split()
                except OSError:
                    continue
                for pid in pids:
                    self.peak = max(self.peak, _hwm(pid))


def child_import(path: str, url: str | None, serial: bool = False) -> dict[str, Any]:
    async def run() -> dict[str, Any]:
        if url:
            schema = f"bench_statements_{os.getpid()}"
            admin = create_engine(url)
            async with admin.begin() as conn:
                await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
            engine = create_engine(url, schema=schema)
        else:
            folder = Path(tempfile.mkdtemp(prefix="bench-statements-"))
            engine = create_engine(f"sqlite+aiosqlite:///{folder / 'import.db'}")
        try:
            await upgrade(engine)
            formats = Plugins().statement_formats()
            if serial:
                formats = {name: replace(f, stream_file=None) for name, f in formats.items()}
            watch = _ChildrenPeak()
            watch.start()
            clock, cpu, before = time.perf_counter(), time.process_time(), _children_cpu()
            report = await import_file(engine, formats, Path(path), now=NOW)
            seconds, cpu_seconds = time.perf_counter() - clock, _cpu(cpu)
            workers_cpu = _children_cpu()
            watch.done.set()
        finally:
            await engine.dispose()
            if url:
                async with admin.begin() as conn:
                    await conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
                await admin.dispose()
        return {
            "seconds": round(seconds, 3),
            # the importing process's and its workers': the CPU the import cost
            "cpu_seconds": round(cpu_seconds + workers_cpu - before, 3),
            "main_cpu_seconds": cpu_seconds,
            "workers_cpu_seconds": round(workers_cpu - before, 3),
            "lines": report.as_dict()["lines"],
            "database": "postgresql" if url else "sqlite",
            "peak_rss_mb": _rss(),
            "workers_peak_rss_mb": round(watch.peak, 1),
        }

    return asyncio.run(run())


def _child(*args: str) -> dict[str, Any]:
    done = subprocess.run([sys.executable, __file__, "--child", *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"bench child {args[0]} failed: {done.stderr.strip().splitlines()[-1:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--database-url", help="import into this PostgreSQL database too (a fresh schema)")
    parser.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, path, *rest = args.child
        if kind == "baseline":
            result = child_baseline(path)
        elif kind == "read":
            result = child_read(path)
        elif kind == "import_serial":
            result = child_import(path, rest[0] if rest else None, serial=True)
        else:
            result = child_import(path, rest[0] if rest else None)
        print(json.dumps(result))
        return

    folder = Path(tempfile.mkdtemp(prefix="bench-statements-"))
    path = folder / "camt053.xml"
    clock = time.perf_counter()
    size = write_camt053(args.entries, path)
    print(
        f"wrote {args.entries} entries ({size / 2**20:.1f} MB) in {time.perf_counter() - clock:.1f} s", file=sys.stderr
    )
    runs: dict[str, dict[str, Any]] = {
        "baseline_iterparse": _child("baseline", str(path)),
        "stream_read": _child("read", str(path)),
        "import_sqlite_serial": _child("import_serial", str(path)),
        "import_sqlite": _child("import", str(path)),
    }
    if args.database_url:
        runs["import_postgresql_serial"] = _child("import_serial", str(path), args.database_url)
        runs["import_postgresql"] = _child("import", str(path), args.database_url)
    path.unlink()
    for run in runs.values():
        run["entries_per_second"] = round(args.entries / run["seconds"]) if run["seconds"] else None
        run["entries_per_cpu_second"] = round(args.entries / run["cpu_seconds"]) if run["cpu_seconds"] else None
    floor = runs["baseline_iterparse"]
    for run in runs.values():
        run["ratio_vs_iterparse"] = round(floor["seconds"] / run["seconds"], 3) if run["seconds"] else None
    result = {
        "entries": args.entries,
        "file_mb": round(size / 2**20, 1),
        "load_average": round(os.getloadavg()[0], 1),
        **runs,
        "targets": {
            name: {
                "50k_per_s": run["entries_per_second"] >= 50_000,
                # the importing process and each of its workers at their peaks at once: an upper bound
                "rss_under_300mb": run["peak_rss_mb"] + WORKERS * run["workers_peak_rss_mb"] < 300,
            }
            for name, run in runs.items()
            if name.startswith("import") and not name.endswith("_serial")
        },
    }
    print(f"{'':<24} {'wall':>10} {'per s':>10} {'CPU':>10} {'per CPU s':>10} {'vs raw':>7}  peak RSS")
    for name, run in runs.items():
        workers = f" (+ workers {run['workers_peak_rss_mb']} MB each)" if run.get("workers_peak_rss_mb") else ""
        print(
            f"{name:<24} {run['seconds']:>8.2f} s {run['entries_per_second']:>10} {run['cpu_seconds']:>8.2f} s "
            f"{run['entries_per_cpu_second']:>10} {run['ratio_vs_iterparse']:>7}  {run['peak_rss_mb']} MB{workers}"
        )
    if args.json:
        print(json.dumps(result))


if __name__ == "__main__":
    main()
