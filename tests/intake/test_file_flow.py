"""Files through the whole gateway: the pain.002 follows the payments to their final statuses; inbox folders; CLI."""

from __future__ import annotations

import asyncio
import base64
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from lxml import etree
from sqlalchemy import func, select

from gateway.store.tables import instructions, payment_files
from tests.intake.test_files import P002, generated_pain001_09, post_file, real_pain001_03
from tests.support import Database, LiveGateway, start_gateway, stop_gateway


@pytest.fixture
async def busy_gateway(database: Database) -> AsyncIterator[LiveGateway]:
    """Gateway + bank simulator, file jobs every 0.2 s."""
    gw = await start_gateway(database, files__report_seconds=0.2, files__scan_seconds=0.2)
    try:
        yield gw
    finally:
        await stop_gateway(gw)


def _statuses(raw: bytes) -> tuple[str, list[tuple[str, str, str | None]]]:
    root = etree.fromstring(raw)
    group = root.findtext(".//p:OrgnlGrpInfAndSts/p:GrpSts", namespaces=P002)
    lines = [
        (
            tx.findtext("p:OrgnlEndToEndId", namespaces=P002),
            tx.findtext("p:TxSts", namespaces=P002),
            tx.findtext("p:StsRsnInf/p:Rsn/p:Cd", namespaces=P002),
        )
        for tx in root.iterfind(".//p:TxInfAndSts", namespaces=P002)
    ]
    return group or "", lines


async def _wait_for_report(path: Path, done: str, timeout: float = 20) -> tuple[str, list]:
    """Until the report's group status is ``done`` and no payment is still in progress (ACCP, ACSP)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        found = _statuses(path.read_bytes()) if path.exists() else ("", [])
        if found[0] == done and all(status in ("ACSC", "RJCT") for _, status, _ in found[1]):
            return found
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"report still says {found}")
        await asyncio.sleep(0.1)


async def test_the_outbox_report_follows_payments_to_their_final_status(busy_gateway: LiveGateway) -> None:
    gw = busy_gateway
    xml = generated_pain001_09(3).replace(b"Nordic Parts AB 1", b"Nordic Parts AB REJECT-AC04")
    status, body, _ = await post_file(gw, xml)
    assert status == 202 and body["accepted"] == 3
    path = gw.runtime.files.report_path("erp-europe", body["message_id"], body["id"])
    assert path.exists()  # written at intake: every payment accepted (ACCP)
    group, lines = await _wait_for_report(path, "PART")  # one rejected by the bank, two settled: final
    assert sorted(s for _, s, _ in lines) == ["ACSC", "ACSC", "RJCT"]
    assert [code for _, s, code in lines if s == "RJCT"] == ["AC04"]
    deadline = asyncio.get_running_loop().time() + 10
    while True:  # the row is updated just after the file is written
        async with gw.runtime.engine.connect() as conn:
            row = (await conn.execute(select(payment_files))).mappings().one()
            total = await conn.scalar(select(func.sum(instructions.c.event_count)))
        if row["report_final"] or asyncio.get_running_loop().time() > deadline:
            break
        await asyncio.sleep(0.05)
    assert row["report_final"] is True and row["report_events"] == total
    # the API says the same
    async with gw.session.get(f"{gw.url}{body['status_report']}", headers=gw.headers()) as resp:
        assert _statuses(await resp.read()) == (group, lines)
    async with gw.session.get(f"{gw.url}/v1/files/{body['id']}", headers=gw.headers()) as resp:
        assert (await resp.json())["by_status"] == {"rejected": 1, "settled": 2}


async def test_status_changes_bring_the_report_forward(database: Database) -> None:
    """With an hour between scheduled rounds, the status-change hook alone keeps the outbox report current."""
    gw = await start_gateway(database, files__report_seconds=3600, files__scan_seconds=3600)
    try:
        status, body, _ = await post_file(gw, generated_pain001_09(2))
        assert status == 202
        path = gw.runtime.files.report_path("erp-europe", body["message_id"], body["id"])
        _, lines = await _wait_for_report(path, "ACSC")
        assert [s for _, s, _ in lines] == ["ACSC", "ACSC"]
    finally:
        await stop_gateway(gw)


async def test_a_report_lost_from_the_outbox_is_written_again(busy_gateway: LiveGateway, partner_files: Path) -> None:
    gw = busy_gateway
    status, body, _ = await post_file(gw, real_pain001_03(partner_files))
    assert status == 202
    path = gw.runtime.files.report_path("erp-europe", body["message_id"], body["id"])
    await _wait_for_report(path, "ACSC")
    # a crash between the status change and the report: the row still says what it was written at
    async with gw.runtime.engine.begin() as conn:
        await conn.execute(payment_files.update().values(report_final=False, report_events=0))
    path.unlink()
    assert await gw.runtime.files.write_due_reports() == 1
    assert _statuses(path.read_bytes())[0] == "ACSC"
    assert await gw.runtime.files.write_due_reports() == 0  # final now: nothing more to write


async def test_inbox_folders_are_scanned_and_files_moved(busy_gateway: LiveGateway, partner_files: Path) -> None:
    gw = busy_gateway
    inbox = Path(gw.runtime.settings.files.inbox_dir)
    (inbox / "erp-europe").mkdir()
    (inbox / "nobody").mkdir()  # not a business unit: left alone
    good = inbox / "erp-europe" / "payments-1.xml"
    good.write_bytes(real_pain001_03(partner_files))
    bad = inbox / "erp-europe" / "payments-2.xml"
    bad.write_bytes(
        real_pain001_03(partner_files).replace(b"<CtrlSum>6655.86", b"<CtrlSum>1.00").replace(b"4711<", b"4712<")
    )
    hostile = inbox / "erp-europe" / "payments-3.xml"
    hostile.write_bytes(b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY e SYSTEM "file:///etc/passwd">]><d>&e;</d>')
    ignored = inbox / "nobody" / "x.xml"
    ignored.write_bytes(b"<x/>")
    deadline = asyncio.get_running_loop().time() + 20
    while any(p.exists() for p in (good, bad, hostile)):
        assert asyncio.get_running_loop().time() < deadline, list((inbox / "erp-europe").rglob("*"))
        await asyncio.sleep(0.1)
    assert (inbox / "erp-europe" / "done" / "payments-1.xml").exists()
    assert not (inbox / "erp-europe" / "done" / "payments-1.xml.reason.txt").exists()
    assert "do not add up" in (inbox / "erp-europe" / "failed" / "payments-2.xml.reason.txt").read_text()
    assert "DTD" in (inbox / "erp-europe" / "failed" / "payments-3.xml.reason.txt").read_text()
    assert ignored.exists()
    async with gw.runtime.engine.connect() as conn:
        rows = (await conn.execute(select(payment_files.c.source, payment_files.c.status))).all()
    assert sorted(rows) == [("inbox", "accepted"), ("inbox", "rejected")]
    # the file refused for its control figures is a file too: its pain.002 says RJCT
    outbox = Path(gw.runtime.settings.files.outbox_dir) / "erp-europe"
    reports = {p.name.split(".")[0]: _statuses(p.read_bytes())[0] for p in outbox.glob("*.pain002.xml")}
    assert reports["Message-ID-4712"] == "RJCT" and reports["Message-ID-4711"] in ("ACCP", "ACSP", "ACSC")
    assert len(reports) == 2


GATEWAY = [sys.executable, "-m", "gateway.cli"]


def _cli(*args: str, config: Path) -> subprocess.CompletedProcess[str]:
    cmd = [*GATEWAY, "--config", str(config), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, env={"PATH": "/usr/bin:/bin"})


def test_cli_files_submit(tmp_path: Path, partner_files: Path) -> None:
    config = tmp_path / "gateway.yaml"
    config.write_text(
        f"database:\n  url: sqlite+aiosqlite:///{tmp_path / 'cli.db'}\npartners: {{}}\nsimulators: {{}}\n"
        f"files:\n  outbox_dir: {tmp_path / 'outbox'}\n  inbox_dir: {tmp_path / 'inbox'}\n"
        f"security:\n  encryption_keys: 'test:{base64.b64encode(bytes(range(32))).decode()}'\n"
    )
    assert _cli("db", "upgrade", config=config).returncode == 0
    assert _cli("keys", "create", "--business-unit", "erp-europe", config=config).returncode == 0
    sample = partner_files / "pain001" / "pain.001.001.03.xml"
    first = _cli("files", "submit", str(sample), "--business-unit", "erp-europe", config=config)
    assert first.returncode == 0, first.stderr
    file_id = first.stdout.strip()
    assert file_id.startswith("fil_") and "2 payments, 2 taken in, 0 refused" in first.stderr
    again = _cli("files", "submit", str(sample), "--business-unit", "erp-europe", config=config)
    assert again.returncode == 0 and again.stdout.strip() == file_id and "nothing new" in again.stderr
    assert list((tmp_path / "outbox" / "erp-europe").glob(f"*.{file_id}.pain002.xml"))
    # user errors: exit 2, one line
    bad = tmp_path / "bad.xml"
    bad.write_bytes(sample.read_bytes().replace(b"<CtrlSum>6655.86", b"<CtrlSum>6655.80").replace(b"4711<", b"4712<"))
    for args in (
        ("files", "submit", str(bad), "--business-unit", "erp-europe"),
        ("files", "submit", str(sample), "--business-unit", "nobody"),
        ("files", "submit", str(tmp_path / "missing.xml"), "--business-unit", "erp-europe"),
    ):
        result = _cli(*args, config=config)
        assert result.returncode == 2, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert (
        "CtrlSum says 6655.80"
        in _cli(*("files", "submit", str(bad), "--business-unit", "erp-europe"), config=config).stderr
    )
    scan = _cli("files", "scan", config=config)
    assert scan.returncode == 0 and "0 inbox files processed" in scan.stderr
