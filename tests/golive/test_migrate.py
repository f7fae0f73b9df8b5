"""History migration (docs/go-live.md): validated, de-duplicated, never dispatched, resumable, feeding risk.

The store tests run on SQLite and PostgreSQL (the ``database`` fixture); the command-line
tests run ``gateway migrate import`` as a subprocess on a SQLite file, one of them killed
with SIGKILL mid-import and re-run.
"""

from __future__ import annotations

import asyncio
import csv
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from gateway.domain.clock import system_clock
from gateway.finance.migration import FileSource, Validator, import_file, load_mapping
from gateway.risk.model import Fingerprinter
from gateway.store.tables import instructions, migrated_payments, migration_checkpoints, outbox, risk_beneficiaries
from tests.risk.test_holds_end_to_end import risk_file
from tests.support import Database, example_instruction, load_bench, start_gateway, stop_gateway

GATEWAY = [sys.executable, "-m", "gateway.cli"]
KEYS = "t1:MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="
DEBTOR = "DE89370400440532013000"
CREDITOR = "FR1420041010050500013M02606"
HEADER = (
    "reference,type,amount,currency,status,created_at,status_at,"
    "debtor_name,debtor_iban,creditor_name,creditor_iban,remittance_information\n"
)


def row(reference: str, amount: str = "100.00", currency: str = "EUR", status: str = "settled", **kw: str) -> str:
    fields = {
        "created_at": "2025-01-02",
        "status_at": "",
        "debtor_iban": DEBTOR,
        "creditor_iban": CREDITOR,
        "remittance": f"Invoice {reference}",
        **kw,
    }
    return (
        f"{reference},credit_transfer,{amount},{currency},{status},{fields['created_at']},{fields['status_at']},"
        f"ACME GmbH,{fields['debtor_iban']},Supplier AG,{fields['creditor_iban']},{fields['remittance']}\n"
    )


MIXED = (
    HEADER
    + row("H-1", status_at="2025-01-03")
    + row("H-2", amount="100.001")  # EUR has 2 decimals
    + row("H-3", currency="XXY")  # not ISO 4217
    + row("H-4", debtor_iban="DE89370400440532013001")  # IBAN checksum
    + row("H-1", amount="5.00")  # duplicate reference
    + row("H-5", status="pending")  # not final
    + row("H-6", created_at="2025-13-02")  # not a date
    + row("H-7", remittance="Invoice H-1")  # H-1 again under another reference: duplicate content
    + row("H-8", status="rejected", creditor_iban="SE4550000000058398257466")
)


async def run_import(
    db: Database,
    path: Path,
    *,
    dry_run: bool = False,
    chunk: int = 3,
    fmt: str = "csv",
    processes: bool = False,
    progress: Any = None,
) -> Any:
    engine = db.engine()
    try:
        return await import_file(
            engine,
            "erp",
            FileSource.open(path, fmt),
            Validator(load_mapping(None), system_clock()),
            Fingerprinter(b"test-fingerprint-key"),
            chunk_size=chunk,
            dry_run=dry_run,
            processes=processes,
            **({"progress": progress} if progress else {}),
        )
    finally:
        await engine.dispose()


async def count(db: Database, table: Any) -> int:
    engine = db.engine()
    try:
        async with engine.connect() as conn:
            return int((await conn.execute(select(func.count()).select_from(table))).scalar_one())
    finally:
        await engine.dispose()


@pytest.mark.parametrize("processes", [False, True], ids=["checked-in-a-thread", "checked-in-a-process"])
async def test_rows_are_checked_deduplicated_and_never_dispatched(
    database: Database, tmp_path: Path, processes: bool
) -> None:
    path = tmp_path / "history.csv"
    path.write_text(MIXED)
    dry = await run_import(database, path, dry_run=True, processes=processes)
    assert (dry.checkpoint.imported, dry.checkpoint.duplicates, dry.checkpoint.rejected) == (2, 2, 5)
    assert [(r.line, r.reference) for r in dry.rejections] == [
        (3, "H-2"),
        (4, "H-3"),
        (5, "H-4"),
        (7, "H-5"),
        (8, "H-6"),
    ]
    assert "2 decimals" in dry.rejections[0].reason and "ISO 4217" in dry.rejections[1].reason
    assert "IBAN" in dry.rejections[2].reason and "not final" in dry.rejections[3].reason
    assert await count(database, migrated_payments) == 0 and await count(database, migration_checkpoints) == 0

    done = await run_import(database, path, processes=processes)
    assert (done.state, done.checkpoint.imported, done.checkpoint.duplicates, done.checkpoint.rejected) == (
        "imported",
        2,
        2,
        5,
    )
    engine = database.engine()
    try:
        async with engine.connect() as conn:
            stored = (await conn.execute(select(migrated_payments).order_by(migrated_payments.c.line))).mappings().all()
    finally:
        await engine.dispose()
    assert [(r["reference"], r["status"], r["amount_minor"], r["line"]) for r in stored] == [
        ("H-1", "settled", 10000, 2),
        ("H-8", "rejected", 10000, 10),
    ]
    assert stored[0]["status_at"].date().isoformat() == "2025-01-03"
    assert DEBTOR not in json.dumps(stored[0]["masked"]) and stored[0]["masked"]["debtor"]["iban"].endswith("3000")
    # history, not instructions: nothing the dispatcher could ever pick up
    assert await count(database, outbox) == 0 and await count(database, instructions) == 0

    again = await run_import(database, path, processes=processes)
    assert again.state == "already imported" and await count(database, migrated_payments) == 2
    # the same payments in another file (another export) are duplicates, not new history
    other = tmp_path / "again.json"
    record = {
        "reference": "H-1",
        "type": "credit_transfer",
        "amount": "100.00",
        "currency": "EUR",
        "debtor": {"name": "ACME GmbH", "account": {"iban": DEBTOR}},
        "creditor": {"name": "Supplier AG", "account": {"iban": CREDITOR}},
        "status": "settled",
        "created_at": "2025-01-04",
    }
    other.write_text(json.dumps(record) + "\n" + json.dumps({**record, "reference": "H-9"}) + "\n[]\n")
    second = await run_import(database, other, fmt="json", processes=processes)
    assert (second.checkpoint.imported, second.checkpoint.duplicates, second.checkpoint.rejected) == (1, 1, 1)
    assert await count(database, migrated_payments) == 3


class _Stop(Exception):
    """Raised by a progress callback: the import stops after the chunk it reports."""


async def test_an_import_checked_in_a_process_stopped_mid_file_continues_and_imports_nothing_twice(
    database: Database, tmp_path: Path
) -> None:
    rows = 1200
    path = tmp_path / "big.csv"
    load_bench("migrate").write_csv(path, rows, creditors=40)
    with path.open("a") as f:  # a duplicate and a bad row near the end
        f.write(path.read_text().splitlines()[1] + "\n")
        f.write("BAD-1,credit_transfer,1.00,EUR,settled,2025-01-01,,A,DE00,B,DE00,x\n")

    def stop_halfway(done: int, total: int | None = None) -> None:
        if done >= 500:
            raise _Stop

    with pytest.raises(_Stop):
        await run_import(database, path, chunk=100, processes=True, progress=stop_halfway)
    engine = database.engine()
    try:
        async with engine.connect() as conn:
            t = migration_checkpoints
            stopped = (await conn.execute(select(t.c.rows_done, t.c.finished))).one()
    finally:
        await engine.dispose()
    # what the checkpoint says is exactly what is stored: chunk and checkpoint commit together
    assert tuple(stopped) == (500, False) and await count(database, migrated_payments) == 500

    done = await run_import(database, path, chunk=100, processes=True)
    assert done.state == "resumed" and done.checkpoint.rows_done == rows + 2
    assert (done.checkpoint.imported, done.checkpoint.duplicates, done.checkpoint.rejected) == (rows, 1, 1)
    assert [(r.line, r.reference) for r in done.rejections] == [(rows + 3, "BAD-1")]
    assert done.rejections[0].reason.startswith("/debtor/account/iban: ")
    assert await count(database, migrated_payments) == rows
    engine = database.engine()
    try:
        async with engine.connect() as conn:
            b = risk_beneficiaries
            learned = (await conn.execute(select(func.count(), func.sum(b.c.count)))).one()
            distinct = (await conn.execute(select(func.count(func.distinct(migrated_payments.c.reference))))).scalar()
    finally:
        await engine.dispose()
    # the risk history learned each settled payment once: 40 suppliers, rows / 40 payments each
    assert tuple(learned) == (40, rows) and distinct == rows


async def test_settled_history_makes_suppliers_known_to_risk_screening(database: Database, tmp_path: Path) -> None:
    """A supplier paid for years is not a new beneficiary on day one; an unknown one still is."""
    gw = await start_gateway(database, risk__file=risk_file(tmp_path))
    try:
        body = example_instruction(amount="9000.00")
        body.pop("remittance_information", None)
        history = {
            **body,
            "reference": "OLD-1",
            "amount": "8000.00",
            "status": "settled",
            "created_at": "2024-06-30T10:00:00Z",
        }
        path = tmp_path / "history.json"
        path.write_text(json.dumps([history]))
        result = await import_file(
            gw.runtime.engine,
            "erp-europe",
            FileSource.open(path, "json"),
            Validator(load_mapping(None), system_clock()),
            gw.runtime.risk.fingerprints,
        )
        assert result.checkpoint.imported == 1 and not result.rejections
        async with gw.runtime.engine.connect() as conn:
            (known,) = (await conn.execute(select(risk_beneficiaries))).mappings().all()
        assert known["business_unit"] == "erp-europe" and known["count"] == 1
        assert known["first_seen"].year == 2024

        resp = await gw.post_instruction(body)
        assert resp.status == 202
        view = await gw.wait_for((await resp.json())["id"])
        assert view["status"] == "settled"
        assert not any(e["reason_code"] == "RISK_HOLD" for e in view["events"])

        other_bu = await gw.new_key("erp-americas")
        resp = await gw.post_instruction(example_instruction(amount="9000.00"), key=other_bu)
        instruction_id = (await resp.json())["id"]
        for _ in range(300):
            view = await gw.get_instruction(instruction_id, key=other_bu)
            if view["status"] == "held":
                break
            await asyncio.sleep(0.05)
        assert view["status"] == "held" and "new_beneficiary" in view["events"][-1]["reason"]
    finally:
        await stop_gateway(gw)


# -- the command line ---------------------------------------------------------------------------------


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "gateway.yaml"
    path.write_text(
        f"database:\n  url: sqlite+aiosqlite:///{tmp_path / 'cli.db'}\npartners: {{}}\nsimulators: {{}}\n"
        f"security:\n  encryption_keys: '{KEYS}'\n"
    )
    assert subprocess.run([*GATEWAY, "--config", str(path), "db", "upgrade"], capture_output=True).returncode == 0
    return path


def gateway(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [*GATEWAY, "--config", str(config), "migrate", "import", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, env={"PATH": "/usr/bin:/bin"})


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nope.csv", "--business-unit", "erp", "--format", "csv"], "no file nope.csv"),
        (["{csv}", "--business-unit", "erp", "--format", "xml"], "invalid choice"),
        (["{csv}", "--format", "csv"], "--business-unit"),
        (["{csv}", "--business-unit", "erp", "--format", "csv", "--mapping", "{bad_mapping}"], "not a column"),
        (["{renamed}", "--business-unit", "erp", "--format", "csv"], "no column 'reference'"),
        (["{csv}", "--business-unit", "erp", "--format", "csv", "--chunk-size", "0"], "at least 1"),
        (["{csv}", "--business-unit", "erp", "--format", "csv", "--chunk-size", "20000"], "at most 10000"),
        (["{csv}", "--business-unit", "erp", "--format", "json", "--mapping", "{bad_mapping}"], "not a column"),
        (["{latin1}", "--business-unit", "erp", "--format", "csv"], "not UTF-8 text near line 2"),
    ],
)
def test_bad_command_lines_exit_2_with_one_line(config: Path, tmp_path: Path, args: list[str], message: str) -> None:
    (tmp_path / "h.csv").write_text(MIXED)
    (tmp_path / "renamed.csv").write_text(MIXED.replace("reference,", "Ref,", 1))
    (tmp_path / "bad.yaml").write_text("columns:\n  colour: Farbe\n")
    (tmp_path / "latin1.csv").write_bytes(MIXED.replace("Supplier AG", "Zulieferer Müller").encode("latin-1"))
    names = {
        "latin1": tmp_path / "latin1.csv",
        "csv": tmp_path / "h.csv",
        "renamed": tmp_path / "renamed.csv",
        "bad_mapping": tmp_path / "bad.yaml",
    }
    result = gateway(config, *(a.format(**names) for a in args))
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1 and message in result.stderr
    assert "Traceback" not in result.stderr


def test_dry_run_reports_every_rejected_row_and_a_mapping_renames_columns(config: Path, tmp_path: Path) -> None:
    header = "Ref;Kind;Betrag;Waehrung;Status;Datum;Erledigt;Zahler;ZahlerIBAN;Empfaenger;EmpfaengerIBAN;Zweck\n"
    body = (MIXED.split("\n", 1)[1]).replace(",", ";").replace("settled", "BEZAHLT").replace("2025-01-02", "02.01.2025")
    body = body.replace("2025-01-03", "03.01.2025").replace("rejected", "ABGELEHNT")
    (tmp_path / "old.csv").write_text(header + body)
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text(
        "columns: {reference: Ref, type: Kind, amount: Betrag, currency: Waehrung, status: Status,\n"
        "  created_at: Datum, status_at: Erledigt, debtor_name: Zahler, debtor_iban: ZahlerIBAN,\n"
        "  creditor_name: Empfaenger, creditor_iban: EmpfaengerIBAN, remittance_information: Zweck}\n"
        "statuses: {bezahlt: settled, abgelehnt: rejected}\n"
        "date_format: '%d.%m.%Y'\n"
        "delimiter: ';'\n"
    )
    report = tmp_path / "rejected.csv"
    args = ["--business-unit", "erp", "--format", "csv", "--mapping", str(mapping), "--dry-run"]
    result = gateway(config, str(tmp_path / "old.csv"), *args, "--report", str(report), "--json")
    assert result.returncode == 1, result.stderr
    doc = json.loads(result.stdout)
    assert doc["dry_run"] and doc["files"][0]["imported"] == 2 and doc["files"][0]["duplicates"] == 2
    assert [r["line"] for r in doc["rejected"]] == [3, 4, 5, 7, 8]
    with report.open() as f:
        rows = list(csv.DictReader(f))
    assert [(r["line"], r["reference"]) for r in rows] == [
        ("3", "H-2"),
        ("4", "H-3"),
        ("5", "H-4"),
        ("7", "H-5"),
        ("8", "H-6"),
    ]
    assert "not final" in rows[3]["reason"] and "%d.%m.%Y" in rows[4]["reason"]
    db = sqlite3.connect(tmp_path / "cli.db")
    assert db.execute("SELECT count(*) FROM migrated_payments").fetchone() == (0,)
    table = gateway(config, str(tmp_path / "old.csv"), *args)
    assert "would import" in table.stdout and "H-6" in table.stdout


def test_an_import_killed_mid_file_continues_and_imports_nothing_twice(config: Path, tmp_path: Path) -> None:
    rows = 6000
    path = tmp_path / "big.csv"
    load_bench("migrate").write_csv(path, rows, creditors=50)
    with path.open("a") as f:  # a duplicate and a bad row near the end
        f.write(path.read_text().splitlines()[1] + "\n")
        f.write("BAD-1,credit_transfer,1.00,EUR,settled,2025-01-01,,A,DE00,B,DE00,x\n")
    cmd = [*GATEWAY, "--config", str(config), "migrate", "import", str(path)]
    cmd += ["--business-unit", "erp", "--format", "csv", "--chunk-size", "100"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={"PATH": "/usr/bin:/bin"})
    db = sqlite3.connect(tmp_path / "cli.db", timeout=30)
    deadline = time.monotonic() + 120
    done = 0
    while done < 1000 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
        found = db.execute("SELECT rows_done FROM migration_checkpoints").fetchone()
        done = found[0] if found else 0
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_at = db.execute("SELECT rows_done, finished FROM migration_checkpoints").fetchone()
    assert 1000 <= killed_at[0] < rows and killed_at[1] == 0, "the import finished before it could be killed"
    # what the checkpoint says is exactly what is stored: chunk and checkpoint commit together
    assert db.execute("SELECT count(*) FROM migrated_payments").fetchone() == (killed_at[0],)

    result = gateway(config, str(path), "--business-unit", "erp", "--format", "csv", "--chunk-size", "100", "--json")
    assert result.returncode == 1, result.stderr  # the bad row
    doc = json.loads(result.stdout)
    assert doc["files"][0]["state"] == "resumed" and doc["files"][0]["rows"] == rows + 2
    assert (doc["files"][0]["imported"], doc["files"][0]["duplicates"], doc["files"][0]["rejected"]) == (rows, 1, 1)
    assert db.execute("SELECT count(*), count(DISTINCT reference) FROM migrated_payments").fetchone() == (rows, rows)
    # the risk history learned each settled payment once: 50 suppliers, rows / 50 payments each
    assert db.execute("SELECT count(*), sum(count) FROM risk_beneficiaries").fetchone() == (50, rows)
    assert db.execute("SELECT count(*) FROM outbox").fetchone() == (0,)


#: rows whose parties a first good row has already made known, each wrong in another field (or not at all)
_AFTER_KNOWN_PARTIES = [
    {"reference": "H-9", "amount": "12.50"},
    {"reference": "H-10", "amount": "100.001"},
    {"reference": "H-11", "amount": "0.00"},
    {"reference": "H-12", "amount": "1e3"},
    {"reference": "H-13", "currency": "XAU"},
    {"reference": "H-14", "currency": "eur"},
    {"reference": "bad ref with ü"},
    {"reference": "R" * 36},
    {"reference": "H-15", "type": "wire"},
    {"reference": "H-16", "remittance_information": "line\nbreak"},
    {"reference": "H-17", "remittance_information": "x" * 141},
    {"reference": "H-18", "status": "pending"},
    {"reference": "H-19", "created_at": "2025-13-01"},
    {"reference": "H-20", "creditor_bic": "NOTABIC"},
    {"reference": "H-21", "creditor_iban": "DE00370400440532013000"},
]


@pytest.mark.parametrize("change", _AFTER_KNOWN_PARTIES, ids=lambda c: ",".join(c))
def test_a_row_whose_parties_are_known_is_judged_as_a_fresh_row_is(change: dict[str, str]) -> None:
    base = {
        "reference": "H-1",
        "amount": "100.00",
        "currency": "EUR",
        "status": "settled",
        "created_at": "2025-01-02",
        "debtor_name": "ACME GmbH",
        "debtor_iban": DEBTOR,
        "creditor_name": "Supplier AG",
        "creditor_iban": CREDITOR,
        "remittance_information": "Invoice 1",
    }
    warm = Validator(load_mapping(None), system_clock())
    first = warm(1, dict(base))
    assert not hasattr(first, "reason"), first
    fresh = Validator(load_mapping(None), system_clock())
    expected = fresh(2, {**base, **change})
    got = warm(2, {**base, **change})
    assert got == expected  # the same payment (parties, money, hash), or the same rejection in the same words


def _children(pid: int) -> list[int]:
    """Ids of the processes whose parent is ``pid`` (from /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def test_a_killed_import_leaves_no_checking_process_behind(tmp_path: Path) -> None:
    bench = Path(__file__).resolve().parents[2] / "bench" / "migrate.py"
    cmd = [sys.executable, str(bench), "--rows", "60000", "--checking", "process", "--cache-dir", str(tmp_path)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    children: list[int] = []
    while time.monotonic() < deadline and proc.poll() is None:
        children = _children(proc.pid)
        if len(children) >= 2:  # multiprocessing's resource tracker and the checking process
            break
        time.sleep(0.1)
    assert proc.poll() is None and len(children) >= 2, "the import never started its checking process"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 15
    alive = children
    while alive and time.monotonic() < deadline:
        time.sleep(0.2)
        alive = [c for c in children if Path(f"/proc/{c}").exists() and "Z" not in _state(c)]
    for c in alive:  # do not leave them running, whatever the outcome
        os.kill(c, signal.SIGKILL)
    assert alive == [], "a checking process outlived the killed import"


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "Z"
