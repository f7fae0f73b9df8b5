"""Ledger benchmark: posting throughput, its cost on intake + dispatch, hot-account reads and audit verify at 1M.

Targets (the issue), SQLite:

* posting throughput in the dispatcher's batch path ≥ 20,000 entries/s;
* intake + dispatch with the ledger on ≥ 0.8 x the same with it off;
* the balance of a hot account at 1,000,000 entries: median read < 2 ms;
* ``gateway audit verify`` over 1,000,000 entries < 10 s.

Every figure has a baseline measured in the same run:

* **posting**: ``record_transitions`` batches of ``--batch`` (256) payments
  ``submitted → settled`` (one entry of two postings each), alternating rounds
  with the ledger on and off on two identical databases (transitions/s, both).
  Posting throughput is entries / the time the ledger's own work takes inside
  those batches (building the entries from the rules; in SQLite's thread:
  the journal head, balances, entry and posting rows). ``journal.post`` called
  alone, each batch in its own committed transaction, is shown too.
* **pipeline**: intake (the real ``IntakeWriter``, group commit) then the
  dispatcher's store work per batch of 32 (``accepted``+``routed`` in one
  transaction, ``submitted`` in one, ``settled`` in one, as callbacks do),
  ledger on vs off, alternating rounds; instructions per second and the ratio.
* **hot read**: ``account_balances`` of the account every entry touches, now
  and as of an instant, against the API's own read of one instruction by id.
* **verify**: ``audit.verify`` over the journal, against a plain read of the
  same rows (entries and postings) without hashing.

The 1M-entry database is cached under ``var/bench/`` (``--fresh`` rebuilds).

    .venv/bin/python bench/ledger.py [--json] [--entries 1000000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sqlalchemy import select  # noqa: E402
from sqlalchemy.ext.asyncio import AsyncEngine  # noqa: E402

from gateway.contracts.registry import contracts  # noqa: E402
from gateway.contracts.versions import parse_as_latest  # noqa: E402
from gateway.domain.instruction import parse_instruction  # noqa: E402
from gateway.domain.status import Status  # noqa: E402
from gateway.finance import books  # noqa: E402
from gateway.ledger.model import Entry, Posting  # noqa: E402
from gateway.ledger.rules import load_rules  # noqa: E402
from gateway.store import repo  # noqa: E402
from gateway.store.audit import JOURNAL_QUERIES, verify  # noqa: E402
from gateway.store.codec import InstructionCodec  # noqa: E402
from gateway.store.db import create_engine  # noqa: E402
from gateway.store.encryption import FieldCipher, parse_key_ring  # noqa: E402
from gateway.store.intake import IntakeItem, IntakeWriter  # noqa: E402
from gateway.store.journal import bind, post  # noqa: E402
from gateway.store.migrate import upgrade  # noqa: E402
from gateway.store.repo import Transition  # noqa: E402
from gateway.store.tables import instructions  # noqa: E402

S = Status
NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
CODEC = InstructionCodec(FieldCipher(parse_key_ring("b:" + "YmVuY2gtb25seS1rZXktYmVuY2gtb25seS1rZXktMDE=")))
_IDS = itertools.count(1)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


async def fresh_db(folder: Path, name: str, *, ledger: bool) -> AsyncEngine:
    engine = create_engine(f"sqlite+aiosqlite:///{folder / name}")
    await upgrade(engine)
    bind(engine, load_rules() if ledger else None)
    return engine


def _data() -> Any:
    example = contracts().schema("instruction", "1.0")["examples"][0]
    return parse_as_latest(contracts(), "instruction", "1.1", dict(example), parse_instruction)


async def intake(engine: AsyncEngine, count: int, bu_id: str) -> list[str]:
    """``count`` instructions through the real group-commit writer, as the API hands them over."""
    data = _data()
    writer = IntakeWriter(engine)
    await writer.start()
    ids = []
    items = []
    for _ in range(count):
        n = next(_IDS)
        instruction_id = f"ins_bench{n:017d}"
        row = CODEC.new_row(instruction_id, bu_id, data, "1.1", NOW)
        row["reference"] = f"B{n:020d}"
        ids.append(instruction_id)
        items.append(
            IntakeItem.received(
                business_unit_id=bu_id,
                idempotency_key=f"k{n}",
                request_hash="h",
                instruction=row,
                response={"id": instruction_id},
                now=NOW,
            )
        )
    try:
        await asyncio.gather(*(writer.submit(i) for i in items))
    finally:
        await writer.stop()
    return ids


async def dispatch(engine: AsyncEngine, ids: list[str], batch: int) -> None:
    """The dispatcher's store work: routing, submission and settlement, one transaction each per batch."""
    for start in range(0, len(ids), batch):
        chunk = ids[start : start + batch]
        steps = [
            [
                t
                for i in chunk
                for t in (
                    Transition(i, S.ACCEPTED, "dispatcher"),
                    Transition(i, S.ROUTED, "dispatcher", adapter="bank"),
                )
            ],
            [Transition(i, S.SUBMITTED, "dispatcher", adapter="bank", partner_reference=f"P{i[-8:]}") for i in chunk],
            [Transition(i, S.SETTLED, "callback") for i in chunk],
        ]
        for transitions in steps:
            async with engine.begin() as conn:
                await repo.record_transitions(conn, transitions, NOW)


async def business_unit(engine: AsyncEngine) -> str:
    async with engine.begin() as conn:
        return await repo.ensure_business_unit(conn, "erp-bench", NOW)


# -- 1. posting in the batch path --------------------------------------------------------------


class _LedgerClock:
    """Times the ledger's own work inside ``record_transitions`` (building the entries, posting them)."""

    def __init__(self) -> None:
        import gateway.store.journal as journal

        self.journal = journal
        self.spent = 0.0
        self.originals = (journal._entries_of, journal._post_in_thread)

    def _timed(self, fn: Any) -> Any:
        def run(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.spent += time.perf_counter() - started

        return run

    def __enter__(self) -> _LedgerClock:
        self.journal._entries_of, self.journal._post_in_thread = (self._timed(f) for f in self.originals)
        return self

    def __exit__(self, *exc: object) -> None:
        self.journal._entries_of, self.journal._post_in_thread = self.originals


async def bench_posting(folder: Path, count: int, batch: int, rounds: int) -> dict[str, Any]:
    engines = {on: await fresh_db(folder, f"posting-{on}.db", ledger=on) for on in (True, False)}
    timings: dict[bool, list[float]] = {True: [], False: []}
    ledger_work: list[float] = []
    post_only: list[float] = []
    try:
        for r in range(rounds):
            for on in (True, False) if r % 2 == 0 else (False, True):
                engine = engines[on]
                ids = await intake(engine, count, await business_unit(engine))
                await dispatch(engine, ids, 256)  # (routed → submitted: the settlement below is measured)
                async with engine.begin() as conn:
                    await conn.execute(
                        instructions.update().where(instructions.c.id.in_(ids)).values(status="submitted")
                    )
                with _LedgerClock() as clock:
                    started = time.perf_counter()
                    for start in range(0, count, batch):
                        async with engine.begin() as conn:
                            transitions = [Transition(i, S.SETTLED, "callback") for i in ids[start : start + batch]]
                            await repo.record_transitions(conn, transitions, NOW)
                    timings[on].append(time.perf_counter() - started)
                if on:
                    ledger_work.append(clock.spent)
            engine = engines[True]
            entries = [
                Entry(
                    "payment",
                    (
                        Posting("partner:bank:in_transit", "EUR", 1000 + n),
                        Posting("partner:bank:bank", "EUR", -1000 - n),
                    ),
                    "bench",
                )
                for n in range(count)
            ]
            started = time.perf_counter()
            for start in range(0, count, batch):
                async with engine.begin() as conn:
                    await post(conn, entries[start : start + batch], NOW)
            post_only.append(time.perf_counter() - started)
    finally:
        for engine in engines.values():
            await engine.dispose()
    on, off, alone = statistics.median(timings[True]), statistics.median(timings[False]), statistics.median(post_only)
    return {
        "batch": batch,
        "transitions": count,
        "with_ledger_per_s": round(count / on),
        "without_ledger_per_s": round(count / off),
        "ledger_work_entries_per_s": round(count / statistics.median(ledger_work)),
        "post_alone_entries_per_s": round(count / alone),
    }


# -- 2. intake + dispatch, ledger on vs off ----------------------------------------------------


async def bench_pipeline(folder: Path, count: int, rounds: int) -> dict[str, Any]:
    results: dict[bool, list[float]] = {True: [], False: []}
    for r in range(rounds):
        for on in (True, False) if r % 2 == 0 else (False, True):
            engine = await fresh_db(folder, f"pipeline-{r}-{on}.db", ledger=on)
            try:
                bu = await business_unit(engine)
                started = time.perf_counter()
                ids = await intake(engine, count, bu)
                await dispatch(engine, ids, 32)
                results[on].append(count / (time.perf_counter() - started))
            finally:
                await engine.dispose()
    on, off = statistics.median(results[True]), statistics.median(results[False])
    return {
        "instructions": count,
        "with_ledger_per_s": round(on),
        "without_ledger_per_s": round(off),
        "ratio": round(on / off, 3),
    }


# -- 3 and 4. a journal of 1M entries: hot-account reads, audit verify -----------------------------


async def big_journal(path: Path, entries: int, fresh: bool) -> AsyncEngine:
    """A journal of ``entries`` fee-like entries, every one touching the hot account (cached file)."""
    ready = path.with_suffix(".ready")
    if fresh or not ready.exists():
        path.unlink(missing_ok=True)
        ready.unlink(missing_ok=True)
        engine = await fresh_db(path.parent, path.name, ledger=True)
        log(f"building a journal of {entries:,} entries in {path} (cached for later runs)")
        started = time.perf_counter()
        chunk = 5000
        for start in range(0, entries, chunk):
            at = NOW - timedelta(days=30) + timedelta(seconds=start)
            batch = [
                Entry(
                    "fee",
                    (
                        Posting(f"fees:p{n % 7}", "EUR", 100 + n % 900),
                        Posting("partner:bank:bank", "EUR", -(100 + n % 900)),
                    ),
                    "bench fee",
                )
                for n in range(start, min(start + chunk, entries))
            ]
            async with engine.begin() as conn:
                await post(conn, batch, at)
            if start and start % 200_000 == 0:
                log(f"  {start:,} entries ({time.perf_counter() - started:.0f} s)")
        ready.write_text("ok")
        return engine
    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    bind(engine, load_rules())
    return engine


def _ms(samples: list[float]) -> float:
    return round(statistics.median(samples) * 1000, 3)


async def bench_reads(engine: AsyncEngine, reads: int) -> dict[str, Any]:
    from gateway.store.tables import ledger_entries

    now_s, as_of_s, base_s = [], [], []
    async with engine.connect() as conn:
        last = int(await conn.scalar(select(ledger_entries.c.id).order_by(ledger_entries.c.id.desc()).limit(1)) or 0)
        for n in range(reads):
            instant = NOW - timedelta(days=30) + timedelta(seconds=(n * 7919) % max(last, 1))
            t = time.perf_counter()
            await books.account_balances(conn, "partner:bank:bank")
            now_s.append(time.perf_counter() - t)
            t = time.perf_counter()
            await books.account_balances(conn, "partner:bank:bank", as_of=instant)
            as_of_s.append(time.perf_counter() - t)
            t = time.perf_counter()
            (await conn.execute(select(ledger_entries).where(ledger_entries.c.id == 1 + (n * 7919) % last))).first()
            base_s.append(time.perf_counter() - t)
    return {
        "entries": last,
        "hot_account_postings": await _postings(engine),
        "balance_now_ms": _ms(now_s),
        "balance_as_of_ms": _ms(as_of_s),
        "baseline_one_row_by_id_ms": _ms(base_s),
    }


async def _postings(engine: AsyncEngine) -> int:
    from gateway.store.tables import ledger_balances

    async with engine.connect() as conn:
        return int(
            await conn.scalar(
                select(ledger_balances.c.postings).where(ledger_balances.c.account == "partner:bank:bank")
            )
            or 0
        )


def _plain_read(path: Path) -> float:
    """The journal's rows read in chain order, as verify reads them, without hashing (the baseline)."""
    started = time.perf_counter()
    with sqlite3.connect(path) as db:
        for sql in JOURNAL_QUERIES:
            for _ in db.execute(sql):
                pass
    return time.perf_counter() - started


async def bench_verify(engine: AsyncEngine, path: Path) -> dict[str, Any]:
    baseline = _plain_read(path)
    started = time.perf_counter()
    async with engine.connect() as conn:
        report = await verify(conn)
    seconds = time.perf_counter() - started
    return {
        "ok": report.ok,
        "entries": report.checked.get("journal", 0),
        "seconds": round(seconds, 2),
        "baseline_plain_read_seconds": round(baseline, 2),
    }


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="bench-ledger-"))
    cache = Path(args.cache_dir)
    cache.mkdir(parents=True, exist_ok=True)
    try:
        log("posting in the batch path …")
        posting = await bench_posting(work, args.transitions, args.batch, args.rounds)
        log("intake + dispatch, ledger on and off …")
        pipeline = await bench_pipeline(work, args.pipeline, args.rounds)
        path = cache / f"ledger-{args.entries}.db"
        engine = await big_journal(path, args.entries, args.fresh)
        try:
            log("hot-account reads …")
            reads = await bench_reads(engine, args.reads)
            log("audit verify …")
            audit = await bench_verify(engine, path)
        finally:
            await engine.dispose()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    targets = {
        "posting_entries_per_s>=20000": posting["ledger_work_entries_per_s"] >= 20_000,
        "pipeline_ratio>=0.8": pipeline["ratio"] >= 0.8,
        "hot_balance_median_ms<2": max(reads["balance_now_ms"], reads["balance_as_of_ms"]) < 2,
        "verify_1M_seconds<10": audit["seconds"] < 10 * max(1, args.entries / 1_000_000) and audit["ok"],
    }
    return {"posting": posting, "pipeline": pipeline, "reads": reads, "verify": audit, "targets": targets}


def print_table(result: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    p, pl, r, v = result["posting"], result["pipeline"], result["reads"], result["verify"]
    table = Table(title="ledger benchmark (SQLite)")
    for column in ("measure", "ledger", "baseline", "ratio / target"):
        table.add_column(column, justify="right" if column != "measure" else "left")
    table.add_row(
        f"settle batches of {p['batch']} (transitions/s)",
        f"{p['with_ledger_per_s']:,}",
        f"{p['without_ledger_per_s']:,} (off)",
        f"{p['with_ledger_per_s'] / p['without_ledger_per_s']:.2f}",
    )
    table.add_row("posting in the batch path (entries/s)", f"{p['ledger_work_entries_per_s']:,}", "", "≥ 20,000")
    table.add_row("journal.post with its commit (entries/s)", f"{p['post_alone_entries_per_s']:,}", "", "")
    table.add_row(
        "intake + dispatch (instructions/s)",
        f"{pl['with_ledger_per_s']:,}",
        f"{pl['without_ledger_per_s']:,} (off)",
        f"{pl['ratio']:.2f} (≥ 0.8)",
    )
    base = r["baseline_one_row_by_id_ms"]
    table.add_row(
        f"hot balance now, {r['entries']:,} entries (ms)", f"{r['balance_now_ms']}", f"{base} (row by id)", "< 2 ms"
    )
    table.add_row("hot balance as of an instant (ms)", f"{r['balance_as_of_ms']}", f"{base} (row by id)", "< 2 ms")
    table.add_row(
        f"audit verify, {v['entries']:,} entries (s)",
        f"{v['seconds']}",
        f"{v['baseline_plain_read_seconds']} (plain read)",
        "< 10 s",
    )
    Console(stderr=False).print(table)
    met = result["targets"]
    print("targets: " + ", ".join(f"{k} {'met' if ok else 'MISSED'}" for k, ok in met.items()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="also print one JSON object as the last line")
    parser.add_argument("--entries", type=int, default=1_000_000, help="journal size for reads and verify")
    parser.add_argument("--transitions", type=int, default=20_000, help="settlements per posting round")
    parser.add_argument("--batch", type=int, default=256, help="transitions per transaction in the posting rounds")
    parser.add_argument("--pipeline", type=int, default=4_000, help="instructions per intake + dispatch round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--reads", type=int, default=2000)
    parser.add_argument("--fresh", action="store_true", help="rebuild the cached 1M-entry journal")
    parser.add_argument("--cache-dir", default=str(REPO / "var" / "bench"), help="where the big journal is cached")
    args = parser.parse_args(argv)
    result = asyncio.run(main_async(args))
    print_table(result)
    if args.json:
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
