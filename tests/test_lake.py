"""The data-lake export: Parquet read back with DuckDB, every row exactly once across runs and crashes."""

from __future__ import annotations

import hashlib
import json
import signal
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.parquet as pq
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.domain.collection import parse_collection
from gateway.domain.collection_status import CollectionStatus
from gateway.domain.status import Status
from gateway.finance.lake import DATASETS, Exporter, ExportError, advance_watermark, watermarks
from gateway.ledger.rules import load_rules
from gateway.store import collections as collection_store
from gateway.store import repo
from gateway.store.journal import bind
from gateway.store.repo import Transition
from gateway.store.tables import (
    collection_events,
    collections,
    instruction_events,
    instructions,
    ledger_entries,
    ledger_postings,
    recon_match_payments,
    recon_matches,
)
from tests.support import REPO, TEST_CODEC, Database, load_bench

T0 = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)
#: each dataset's table and the column DuckDB must find once per row
TABLES = {
    "instructions": (instructions, "id"),
    "instruction_events": (instruction_events, "chain_seq"),
    "ledger_entries": (ledger_entries, "id"),
    "ledger_postings": (ledger_postings, "entry_id || ':' || line"),
    "collections": (collections, "id"),
    "collection_events": (collection_events, "chain_seq"),
    "recon_matches": (recon_matches, "id"),
    "recon_match_payments": (recon_match_payments, "instruction_id"),
}


def clock() -> datetime:
    return T0


async def seed(engine: AsyncEngine, count: int, start: int) -> None:
    """``count`` instructions, half of them routed, submitted and settled (events and ledger entries)."""
    ids = await load_bench("export").seed(engine, count, start=start, chunk=50)
    bind(engine, load_rules())
    moving = ids[::2]
    for status, extra in (
        (Status.ACCEPTED, {}),
        (Status.ROUTED, {"adapter": "bank"}),
        (Status.SUBMITTED, {"adapter": "bank"}),
        (Status.SETTLED, {}),
    ):
        async with engine.begin() as conn:
            await repo.record_transitions(conn, [Transition(i, status, "dispatcher", **extra) for i in moving], T0)


async def seed_money_in(engine: AsyncEngine, count: int, start: int) -> None:
    """``count`` direct debits, each accepted and submitted, and a reconciliation match for every two
    settled instructions not matched yet (as a run writes them: ids after the largest)."""
    doc = {
        "kind": "direct_debit",
        "amount": {"value": "25.00", "currency": "EUR"},
        "payer": {"name": "Debtor", "iban": "DE89370400440532013000"},
        "mandate": {"id": "M1", "signature_date": "2026-01-15", "sequence_type": "RCUR"},
    }
    for n in range(start, start + count):
        collection_id = f"col_{n:026d}"
        data = parse_collection({**doc, "reference": f"DD-{n}", "due_date": "2026-12-21"})
        async with engine.begin() as conn:
            bu = await repo.ensure_business_unit(conn, "erp", T0)
            row = collection_store.new_collection_row(TEST_CODEC.cipher, collection_id, bu, data, "1.1", T0)
            await collection_store.store_collection(
                conn, row=row, key=f"k{n}", request_hash="h", response={"id": collection_id}, now=T0
            )
            await collection_store.record_collection_transitions(
                conn,
                [
                    collection_store.CollectionTransition(collection_id, status, source="dispatcher")
                    for status in (CollectionStatus.ACCEPTED, CollectionStatus.SUBMITTED)
                ],
                T0,
            )
    async with engine.begin() as conn:
        matched = select(recon_match_payments.c.instruction_id)
        settled = (
            await conn.scalars(
                select(instructions.c.id)
                .where(instructions.c.status == "settled", instructions.c.id.not_in(matched))
                .order_by(instructions.c.id)
            )
        ).all()
        first = int(await conn.scalar(select(func.coalesce(func.max(recon_matches.c.id), 0)))) + 1
        for n, pair in enumerate(zip(settled[::2], settled[1::2], strict=False)):
            await conn.execute(
                recon_matches.insert().values(
                    id=first + n,
                    source="bank",
                    status="confirmed",
                    rule="batch",
                    currency="EUR",
                    lines_minor=195,
                    payments_minor=200,
                    difference_minor=-5,
                    explains="fee",
                    matched_at=T0,
                )
            )
            await conn.execute(
                recon_match_payments.insert(), [{"instruction_id": i, "match_id": first + n} for i in pair]
            )


async def db_counts(engine: AsyncEngine) -> dict[str, int]:
    async with engine.connect() as conn:
        return {
            name: int(await conn.scalar(select(func.count()).select_from(table)) or 0)
            for name, (table, _) in TABLES.items()
        }


def query(sql: str) -> Any:
    """DuckDB's first row of ``sql`` (over the Parquet files), in a connection of its own."""
    with duckdb.connect() as con:
        return con.execute(sql).fetchone()


def lake_counts(folder: Path) -> dict[str, tuple[int, int]]:
    """Per dataset, DuckDB's (rows, distinct rows) over the whole Hive-partitioned folder."""
    out = {}
    for name, (_, unique) in TABLES.items():
        if not list(folder.glob(f"dataset={name}/*/*.parquet")):
            out[name] = (0, 0)
            continue
        files = str(folder / f"dataset={name}" / "*" / "*.parquet")
        out[name] = query(
            f"SELECT count(*), count(DISTINCT {unique}) FROM read_parquet('{files}', hive_partitioning = true)"
        )
    return out


def assert_exactly_once(folder: Path, expected: dict[str, int]) -> None:
    assert lake_counts(folder) == {name: (n, n) for name, n in expected.items()}
    assert not list(folder.rglob("*.tmp"))


async def test_every_row_is_exported_once_across_runs_and_read_back_by_duckdb(
    database: Database, tmp_path: Path
) -> None:
    engine = database.engine()
    out = tmp_path / "lake"
    try:
        await seed(engine, 30, 0)
        await seed_money_in(engine, 5, 0)
        exporter = Exporter(engine, out, clock, chunk_rows=7)
        first = await exporter.run()
        await seed(engine, 12, 30)
        await seed_money_in(engine, 3, 5)
        second = await exporter.run()
        third = await exporter.run()
        expected = await db_counts(engine)
        async with engine.connect() as conn:
            marks = await watermarks(conn)
    finally:
        await engine.dispose()
    assert expected["instructions"] == 42 and expected["ledger_entries"] >= 21 and expected["ledger_postings"] >= 42
    assert (expected["collections"], expected["collection_events"]) == (8, 24)
    assert expected["recon_matches"] >= 10 and expected["recon_match_payments"] == 2 * expected["recon_matches"]
    assert_exactly_once(out, expected)
    assert first.rows + second.rows == sum(expected.values())
    assert third.rows == 0 and third.manifest is None
    assert {name: marks[name]["rows"] for name in TABLES} == expected
    # Hive partitions by date; money as integer minor units with the currency's decimals beside them
    row = query(
        f"SELECT date, amount_minor, currency, minor_units, created_at FROM "
        f"read_parquet('{out}/dataset=instructions/*/*.parquet', hive_partitioning = true) ORDER BY id LIMIT 1"
    )
    assert str(row[0]) == "2026-12-01" and row[1] == 100 and row[2] == "EUR" and row[3] == 2
    assert row[4].tzinfo is not None
    schema = pq.read_schema(next(out.glob("dataset=ledger_postings/*/*.parquet")))
    assert str(schema.field("amount_minor").type) == "int64"
    assert schema.metadata[b"gateway.schema_version"] == b"1"
    # the manifests together list every file once, with its rows and checksum
    listed = [f for m in sorted(out.glob("_manifests/*.json")) for f in json.loads(m.read_text())["files"]]
    on_disk = sorted(str(p.relative_to(out)) for p in out.glob("dataset=*/*/*.parquet"))
    assert sorted(f["path"] for f in listed) == on_disk
    for f in listed:
        assert hashlib.sha256((out / f["path"]).read_bytes()).hexdigest() == f["sha256"]
        assert pq.read_metadata(out / f["path"]).num_rows == f["rows"]
    # money in and reconciliation: the collection's history and the payments a match settles, by SQL
    dd = query(
        f"SELECT c.kind, c.due_date, c.amount_minor, count(e.chain_seq), max(e.status) FROM "
        f"read_parquet('{out}/dataset=collections/*/*.parquet') c JOIN "
        f"read_parquet('{out}/dataset=collection_events/*/*.parquet') e ON e.collection_id = c.id "
        f"WHERE c.reference = 'DD-6' GROUP BY c.kind, c.due_date, c.amount_minor"
    )
    assert (dd[0], str(dd[1]), dd[2], dd[3], dd[4]) == ("direct_debit", "2026-12-21", 2500, 3, "submitted")
    paid = query(
        f"SELECT count(DISTINCT m.id), sum(m.difference_minor) FROM "
        f"read_parquet('{out}/dataset=recon_matches/*/*.parquet') m JOIN "
        f"read_parquet('{out}/dataset=recon_match_payments/*/*.parquet') p ON p.match_id = m.id"
    )
    assert paid == (expected["recon_matches"], -5 * expected["recon_match_payments"])
    assert "payer_instrument" not in pq.read_schema(next(out.glob("dataset=collections/*/*.parquet"))).names
    manifest = json.loads(sorted(out.glob("_manifests/*.json"))[-1].read_text())
    assert manifest["datasets"]["instructions"]["watermark"] == marks["instructions"]["key"]


class Killed(BaseException):
    """Stands in for the process dying at a crash point (nothing after it runs)."""


async def test_an_export_killed_after_writing_files_resumes_without_duplicates(
    database: Database, tmp_path: Path
) -> None:
    engine = database.engine()
    out = tmp_path / "lake"
    stages: list[str] = []

    def die_on_third_write(stage: str) -> None:
        stages.append(stage)
        if stages.count("written") == 3:
            raise Killed

    try:
        await seed(engine, 20, 0)
        with pytest.raises(Killed):
            await Exporter(engine, out, clock, chunk_rows=6, crash_point=die_on_third_write).run()
        # the third chunk's files are on disk, beyond the watermark; a temp file of a write cut short too
        stray = out / "dataset=instructions" / "date=2026-12-01" / ".part-x.parquet.1234.tmp"
        stray.write_bytes(b"half a file")
        result = await Exporter(engine, out, clock, chunk_rows=6).run()
        expected = await db_counts(engine)
    finally:
        await engine.dispose()
    assert result.datasets[0].removed  # the unrecorded files were found and written again
    assert_exactly_once(out, expected)


_KILLER = """
import asyncio, os, signal, sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
sys.path.insert(0, {repo!r})
from gateway.finance.lake import Exporter
from tests.support import Database

written = 0

def crash(stage):
    global written
    written += stage == "written"
    if written == 2:
        os.kill(os.getpid(), signal.SIGKILL)

async def main():
    engine = Database({url!r}, {schema!r}).engine()
    await Exporter(engine, Path({out!r}), lambda: datetime.now(UTC), chunk_rows=5, crash_point=crash).run()

asyncio.run(main())
"""


async def test_an_export_process_killed_with_sigkill_resumes_exactly(database: Database, tmp_path: Path) -> None:
    engine = database.engine()
    out = tmp_path / "lake"
    try:
        await seed(engine, 16, 0)
        script = _KILLER.format(repo=str(REPO), url=database.url, schema=database.schema, out=str(out))
        done = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=120)
        assert done.returncode == -signal.SIGKILL, done.stderr.decode()
        async with engine.connect() as conn:
            assert (await watermarks(conn))["instructions"]["key"] > 0  # it got one chunk in before dying
        await Exporter(engine, out, clock, chunk_rows=5).run()
        expected = await db_counts(engine)
    finally:
        await engine.dispose()
    assert_exactly_once(out, expected)


async def test_two_exports_of_one_watermark_do_not_both_advance_it(database: Database, tmp_path: Path) -> None:
    engine = database.engine()
    try:
        await seed(engine, 4, 0)
        await Exporter(engine, tmp_path / "a", clock).export(DATASETS["instructions"])
        # a second exporter that read the watermark before the first moved it
        with pytest.raises(ExportError, match="moved during this run"):
            async with engine.begin() as conn:
                await advance_watermark(conn, "instructions", 0, 99, 1, T0, 1)
    finally:
        await engine.dispose()


def test_an_unknown_dataset_is_named_with_the_choices() -> None:
    with pytest.raises(ExportError, match="unknown dataset 'payments'; choose from instructions, instruction_events"):
        Exporter.select(["payments"])


def test_the_docs_list_every_column_of_every_dataset() -> None:
    doc = (REPO / "docs" / "data-export.md").read_text()
    for dataset in DATASETS.values():
        assert f"### `{dataset.name}` (schema version {dataset.version})" in doc
        for column in dataset.columns:
            assert f"| `{column.name}` | `{column.type}` |" in doc, (dataset.name, column.name)
