"""``gateway migrate import --format pain001``: an ERP's pain.001 files as history (SQLite and PostgreSQL).

The file is the published pain.001.001.03 example in tests/data/partner-files (provenance in
its SOURCES.md): 1 PmtInf, 2 transactions, CreDtTm 2010-11-11T09:30:47Z, ReqdExctnDt 2010-11-25.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select

from gateway.store.tables import instructions, migrated_payments
from tests.golive.test_legacy_rollout import cli_config, run
from tests.support import REPO, Database

SAMPLE = REPO / "tests/data/partner-files/pain001/pain.001.001.03.xml"


async def test_pain001_payments_become_history_with_the_status_given(database: Database, tmp_path: Path) -> None:
    config = cli_config(tmp_path, database)
    args = ["migrate", "import", str(SAMPLE), "--business-unit", "erp", "--format", "pain001"]
    done = run(config, *args, "--status", "rejected", "--json")
    assert done.returncode == 0, done.stderr
    [file] = json.loads(done.stdout)["files"]
    assert (file["rows"], file["imported"], file["rejected"], file["state"]) == (2, 2, 0, "imported")

    engine = database.engine()
    try:
        async with engine.connect() as conn:
            rows = (await conn.execute(select(migrated_payments).order_by(migrated_payments.c.line))).mappings().all()
            assert (await conn.execute(select(instructions.c.id))).all() == []  # history, never dispatched
    finally:
        await engine.dispose()
    assert [(r["reference"], r["amount"], r["currency"], r["status"], r["line"]) for r in rows] == [
        ("OriginatorID1234", "6543.14", "EUR", "rejected", 1),
        ("OriginatorID1235", "112.72", "EUR", "rejected", 2),
    ]
    assert rows[0]["created_at"] == datetime(2010, 11, 11, 9, 30, 47, tzinfo=UTC)
    assert rows[0]["status_at"] == datetime(2010, 11, 25, tzinfo=UTC)  # the requested execution date
    assert rows[0]["creditor_name"] == "Creditor Name" and "DE21500500009876543210" not in json.dumps(rows[0]["masked"])

    again = run(config, *args, "--json")  # the same file: already imported, nothing twice
    assert again.returncode == 0 and json.loads(again.stdout)["files"][0]["state"] == "already imported"


async def test_a_pain001_that_does_not_add_up_or_a_bad_status_exits_2(database: Database, tmp_path: Path) -> None:
    config = cli_config(tmp_path, database)
    wrong_sum = tmp_path / "wrong.xml"
    wrong_sum.write_text(SAMPLE.read_text().replace("<CtrlSum>6655.86</CtrlSum>", "<CtrlSum>6655.87</CtrlSum>", 1))
    not_pain = tmp_path / "not.xml"
    not_pain.write_text("<Document xmlns='urn:example'><x/></Document>")
    base = ["migrate", "import", "--business-unit", "erp"]
    cases = [
        ([str(wrong_sum), "--format", "pain001"], "CtrlSum says 6655.87"),
        ([str(not_pain), "--format", "pain001"], "wrong namespace"),
        ([str(SAMPLE), "--format", "pain001", "--status", "pending"], "--status must be a final status"),
        ([str(SAMPLE), "--format", "json", "--status", "settled"], "--status is for --format pain001"),
    ]
    for args, message in cases:
        done = run(config, *base, *args)
        assert done.returncode == 2, (args, done.stdout, done.stderr)
        assert len(done.stderr.strip().splitlines()) == 1 and message in done.stderr, done.stderr
    engine = database.engine()
    try:
        async with engine.connect() as conn:
            assert (await conn.execute(select(migrated_payments.c.id))).all() == []  # nothing written
    finally:
        await engine.dispose()
