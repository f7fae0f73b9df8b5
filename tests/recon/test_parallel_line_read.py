"""A large run on SQLite reads its open lines in a worker process (``LineReader``): the same lines, the same
matches, and a worker that dies, fails or hands over half is a run that reads its lines itself."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterable, Sequence
from datetime import timedelta
from pathlib import Path
from typing import BinaryIO

import pytest
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from gateway.domain.statements import Statement, StatementLine
from gateway.recon import matching, service
from gateway.recon.matching import LineReader, LineView, PaymentView, load_open_lines
from gateway.recon.service import run_recon
from gateway.store.statements import store_statements
from tests.recon.test_matching_rules import RULES, TODAY, _line, _matches, _payment, _statement
from tests.support import NOW, load_bench


def _values(lines: Sequence[LineView]) -> list[tuple[object, ...]]:
    return [
        (
            x.pk,
            x.line,
            x.source,
            x.amount_minor,
            x.direction,
            x.currency,
            x.day,
            x.refs,
            x.counterparty,
            x.words,
            x.kind,
            x.items,
        )
        for x in lines
    ]


async def _book(engine: AsyncEngine) -> None:
    """Payments and lines of every shape the rules read: each reference alone and together, names and texts or
    none, a value day, a credit, a line matched by nothing."""
    for k in range(1, 7):
        await _payment(engine, f"INV-{k}", partner_reference=f"BANKREF-{k}")
    await _payment(engine, "INV-7", amount="99.99")
    shapes = [
        _line(end_to_end_id="INV-1", partner_reference="BANKREF-1"),
        _line(end_to_end_id="INV-2"),
        _line(partner_reference="BANKREF-3", servicer_reference="SVC-3", counterparty_name="  ACME   Gmbh "),
        _line(servicer_reference="SVC-4", text="paid INV-4 thanks"),
        _line(end_to_end_id="INV-5", partner_reference="", servicer_reference="SVC-5"),
        _line(text="invoice INV-6 ü ß", counterparty_name="Zoë Müller"),
        _line(amount_minor=9999, credit=True, counterparty_name="Nobody"),
        _line(amount_minor=777, end_to_end_id="UNKNOWN-1"),
        StatementLine(
            amount_minor=125000, credit=False, currency="EUR", value_on=TODAY - timedelta(days=1), text="x y"
        ),
    ]
    await _statement(engine, "S-1", *shapes[:5])
    await _statement(engine, "S-2", *shapes[5:])


@pytest.fixture
def parallel(monkeypatch: pytest.MonkeyPatch) -> None:
    """The worker for runs of any size."""
    monkeypatch.setattr(matching, "PARALLEL_MIN_LINES", 0)


async def _read(engine: AsyncEngine, source: str | None = None) -> tuple[LineReader | None, list[LineView]]:
    async with engine.connect() as conn:
        reader = await LineReader.start(conn, source)
        if reader is None:
            return None, await load_open_lines(conn, source)
        try:
            return reader, await reader.lines(conn, source)
        finally:
            await reader.close()


async def test_the_worker_reads_the_lines_the_run_would_read(engine: AsyncEngine, parallel: None) -> None:
    await _book(engine)
    async with engine.connect() as conn:
        here = await load_open_lines(conn)
        narrowed = await load_open_lines(conn, "bank")
    reader, lines = await _read(engine)
    if engine.dialect.name != "sqlite":
        assert reader is None  # PostgreSQL: the run reads its lines itself
    else:
        assert reader is not None and reader.worker.returncode == 0
        assert reader.cpu_seconds > 0
    assert len(here) == 9
    assert _values(lines) == _values(here)
    assert _values((await _read(engine, "bank"))[1]) == _values(narrowed)
    assert (await _read(engine, "elsewhere"))[1] == []


async def test_small_runs_read_their_lines_here(engine: AsyncEngine) -> None:
    await _book(engine)
    reader, lines = await _read(engine)
    assert reader is None and len(lines) == 9


async def _run_both_ways(engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch) -> None:
    """A dry run read here, then the run by the worker (or its fallback): the same report and matches."""
    monkeypatch.setattr(matching, "PARALLEL_MIN_LINES", 10**12)
    serial = await run_recon(engine, RULES, now=NOW, dry_run=True)
    monkeypatch.setattr(matching, "PARALLEL_MIN_LINES", 0)
    run = await run_recon(engine, RULES, now=NOW)
    assert serial.confirmed == run.confirmed == 6 and serial.suggested == run.suggested == 0
    assert serial.lines == run.lines == 9
    assert len(serial.would_open) == run.breaks_opened == 3
    found = await _matches(engine)
    assert [(m[2], m[3]) for m in found] == [(m["status"], m["rule"]) for m in serial.would_match]
    assert len(found) == 6


async def test_a_run_whose_lines_a_worker_read_matches_as_one_that_read_them_here(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    await _book(engine)
    started: list[subprocess.Popen[bytes]] = []
    start = matching.start_worker

    def start_and_watch(command: Sequence[str]) -> subprocess.Popen[bytes]:
        proc = start(command)
        started.append(proc)
        return proc

    monkeypatch.setattr(matching, "start_worker", start_and_watch)
    await _run_both_ways(engine, monkeypatch)
    if engine.dialect.name == "sqlite":  # the worker read them: it ended well and nothing was read again here
        assert len(started) == 1 and started[0].returncode == 0
        assert "reading the lines here" not in caplog.text
    else:  # no worker for PostgreSQL: the run read them itself
        assert started == []


def _fake_worker(code: str) -> list[str]:
    return [sys.executable, "-c", code]


@pytest.mark.parametrize(
    "worker",
    [
        "killed",
        _fake_worker("import sys; sys.stdin.buffer.read(); sys.exit(3)"),  # fails: no end frame
        # half a frame (8 bytes of length, 3 of a 16-byte body), then a clean exit
        _fake_worker("import sys; sys.stdin.buffer.read(); sys.stdout.buffer.write(b'\\x10' + bytes(7) + b'abc')"),
        # every frame, the end frame, and a failure after it
        _fake_worker("import sys; sys.stdin.buffer.read(); sys.stdout.buffer.write(bytes(8)); sys.exit(1)"),
    ],
    ids=["killed", "failed", "half-a-frame", "failed-after-the-end"],
)
async def test_a_worker_that_does_not_hand_over_every_line_leaves_the_run_to_read_them(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch, worker: str | list[str], caplog: pytest.LogCaptureFixture
) -> None:
    await _book(engine)
    started: list[subprocess.Popen[bytes]] = []
    start = matching.start_worker

    def start_and_watch(command: Sequence[str]) -> subprocess.Popen[bytes]:
        proc = start(command if worker == "killed" else worker)
        started.append(proc)
        return proc

    drain = matching._drain

    def killed_then_drained(stream: BinaryIO) -> list[bytes] | None:
        started[0].kill()  # the real worker, killed once it has its job, before it has said all
        started[0].wait()
        return drain(stream)

    monkeypatch.setattr(matching, "start_worker", start_and_watch)
    if worker == "killed":
        monkeypatch.setattr(matching, "_drain", killed_then_drained)
    await _run_both_ways(engine, monkeypatch)
    if engine.dialect.name == "sqlite":
        assert len(started) == 1 and started[0].returncode is not None  # ended and waited for
        assert "reading the lines here" in caplog.text
    else:
        assert started == []


async def test_a_run_that_fails_while_the_worker_reads_ends_the_worker(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch, parallel: None
) -> None:
    await _book(engine)
    started: list[subprocess.Popen[bytes]] = []
    start = matching.start_worker

    def start_and_watch(command: Sequence[str]) -> subprocess.Popen[bytes]:
        # a worker that would never end by itself: it reads its job, then waits
        proc = start(_fake_worker("import sys, time; sys.stdin.buffer.read(); time.sleep(600)"))
        started.append(proc)
        return proc

    async def broken(*_: object) -> None:
        raise RuntimeError("the payments could not be read")

    monkeypatch.setattr(matching, "start_worker", start_and_watch)
    monkeypatch.setattr("gateway.recon.service.load_open_payments", broken)
    with pytest.raises(RuntimeError, match="could not be read"):
        await run_recon(engine, RULES, now=NOW)
    if engine.dialect.name == "sqlite":
        assert len(started) == 1 and started[0].returncode is not None  # killed and waited for, not left behind
    assert await _matches(engine) == []


async def test_the_bench_mix_matches_the_same_with_its_lines_read_by_a_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every shape of the bench (references, remittance, counterparty, batches with fees, breaks), on SQLite."""
    bench = load_bench("recon")
    data = bench.generate(1500, seed=5)
    results = []
    for smallest in (sys.maxsize, 0):
        monkeypatch.setattr(matching, "PARALLEL_MIN_LINES", smallest)
        result = await bench.sqlite_run(data, ledger=True)
        shutil.rmtree(Path(result["database"]).parent)
        results.append(result)
    serial, parallel = results
    assert not serial["lines_read_by_worker"] and parallel["lines_read_by_worker"]
    assert parallel["report"] == serial["report"]
    assert serial["report"]["confirmed"] > 1000 and serial["report"]["suggested"] > 0


async def test_lines_of_fewer_sources_than_the_statements_have_are_matched_the_same(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The run reads the payments of every statement's source while the worker reads the lines: a day whose lines
    are of fewer sources reads their payments again, and matches as the serial read does."""
    await _book(engine)
    other = Statement(
        source="elsewhere",
        format="test",
        statement_id="O-1",
        currency="EUR",
        period_start=TODAY - timedelta(days=3),
        period_end=TODAY - timedelta(days=3),
        lines=(StatementLine(amount_minor=5, credit=True, currency="EUR", booked_on=TODAY - timedelta(days=3)),),
    )
    await store_statements(engine, [other], digest="o" * 64, now=NOW)
    monkeypatch.setattr(matching, "PARALLEL_MIN_LINES", sys.maxsize)
    serial = await run_recon(engine, RULES, now=NOW, on=TODAY, dry_run=True)
    monkeypatch.setattr(matching, "PARALLEL_MIN_LINES", 0)
    reread: list[set[str]] = []
    load = service.load_open_payments

    async def watched(conn: AsyncConnection, adapters: Iterable[str]) -> list[PaymentView]:
        reread.append(set(adapters))
        return await load(conn, adapters)

    monkeypatch.setattr(service, "load_open_payments", watched)
    run = await run_recon(engine, RULES, now=NOW, on=TODAY)
    if engine.dialect.name == "sqlite":
        assert reread == [{"bank", "elsewhere"}, {"bank"}]
    assert (run.lines, run.confirmed, run.suggested) == (serial.lines, serial.confirmed, serial.suggested) == (8, 6, 0)
    assert [(m[2], m[3]) for m in await _matches(engine)] == [(m["status"], m["rule"]) for m in serial.would_match]
