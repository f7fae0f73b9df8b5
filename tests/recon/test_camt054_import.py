"""Importing camt.054 notifications: real files and our own, control figures checked, once only, from the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.plugins.manager import Plugins
from gateway.recon.imports import StatementFileError, detect_format, import_file
from gateway.store.tables import statement_lines, statements
from gateway_adapters.iso20022_bank.camt054 import NotificationEntry, build_camt054

NOW = datetime(2026, 12, 21, 18, 0, tzinfo=UTC)
FORMATS = Plugins().statement_formats()


def notification(*, sequence: int = 1) -> bytes:
    """Our own camt.054: a collected direct debit, its return later, and an incoming transfer."""
    day = date(2026, 12, 21)
    entries = [
        NotificationEntry("collected", Decimal("49.90"), "EUR", day, "INV-1", "BANKREF-1", "col_0001", "MANDATE-1"),
        NotificationEntry(
            "returned", Decimal("49.90"), "EUR", day, "INV-1", "BANKREF-2", "col_0001", reason_code="AM04"
        ),
        NotificationEntry(
            "credit_transfer",
            Decimal("1190.00"),
            "EUR",
            day,
            "DIST-PAY-77",
            "BANKREF-3",
            debtor_name="Nordic Distributors AB",
            debtor_iban="SE4550000000058398257466",
            creditor_reference="RF18539007547034",
        ),
    ]
    return build_camt054(
        entries,
        account_iban="DE89370400440532013000",
        currency="EUR",
        message_id=f"NTF-{sequence}",
        notification_id=f"NTF-{sequence}",
        created_at=NOW,
        sequence=sequence,
    )


async def _counts(engine: AsyncEngine) -> tuple[int, int]:
    async with engine.connect() as conn:
        return (
            int(await conn.scalar(select(func.count()).select_from(statements)) or 0),
            int(await conn.scalar(select(func.count()).select_from(statement_lines)) or 0),
        )


@pytest.mark.parametrize("name", ["camt054.v2.xml", "camt054.v8.xml"])
def test_real_camt054_files_are_recognised(partner_files: Path, name: str) -> None:
    assert detect_format(FORMATS, (partner_files / "camt054" / name).read_bytes()).name == "camt.054"


async def test_a_real_camt054_imports_once(engine: AsyncEngine, partner_files: Path) -> None:
    body = (partner_files / "camt054/camt054.v8.xml").read_bytes()

    first = await import_file(engine, FORMATS, body, now=NOW)
    again = await import_file(engine, FORMATS, body, now=NOW, given="camt.054")

    assert (first.format, [s.stored for s in first.statements], [s.stored for s in again.statements]) == (
        "camt.054",
        [True],
        [False],
    )
    assert await _counts(engine) == (1, 1)


async def test_our_camt054_imports_with_returns_and_remittance(engine: AsyncEngine) -> None:
    report = await import_file(engine, FORMATS, notification(), now=NOW)

    assert report.as_dict()["lines"] == 3
    async with engine.connect() as conn:
        rows = (await conn.execute(select(statement_lines).order_by(statement_lines.c.line))).mappings().all()
    assert [(r["kind"], r["direction"], r["amount_minor"], r["reason_code"], r["end_to_end_id"]) for r in rows] == [
        ("booked", "credit", 4990, None, "INV-1"),
        ("return", "debit", 4990, "AM04", "INV-1"),
        ("booked", "credit", 119000, None, "DIST-PAY-77"),
    ]
    assert rows[2]["text"] == "RF18539007547034" and rows[2]["counterparty_account"].endswith("7466")
    assert "SE45" not in rows[2]["counterparty_account"]


async def test_a_camt054_whose_declared_figures_do_not_add_up_is_refused_whole(engine: AsyncEngine) -> None:
    body = notification().replace(b"<Sum>1239.90</Sum>", b"<Sum>1239.00</Sum>")

    with pytest.raises(StatementFileError, match="declares credits of 123900 but its lines sum to 123990") as caught:
        await import_file(engine, FORMATS, body, now=NOW)

    assert caught.value.message.startswith("camt.054: ") and "\n" not in caught.value.message
    assert await _counts(engine) == (0, 0)


async def test_a_gap_in_the_notification_sequence_is_reported(engine: AsyncEngine) -> None:
    await import_file(engine, FORMATS, notification(sequence=1), now=NOW)
    later = await import_file(engine, FORMATS, notification(sequence=3), now=NOW)

    assert len(later.gaps) == 1 and later.gaps[0].startswith("statement 2 of iso20022_bank account")


def test_gateway_recon_import_takes_a_camt054_file(tmp_path: Path) -> None:
    config = tmp_path / "gateway.yaml"
    config.write_text(
        f"database:\n  url: sqlite+aiosqlite:///{tmp_path / 'cli.db'}\npartners: {{}}\nsimulators: {{}}\n"
    )
    file = tmp_path / "notification.xml"
    file.write_bytes(notification())
    broken = tmp_path / "broken.xml"
    broken.write_bytes(notification().replace(b"<NbOfNtries>3</NbOfNtries>", b"<NbOfNtries>4</NbOfNtries>", 1))

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, "-m", "gateway.cli", "--config", str(config), *args]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=120, env={"PATH": "/usr/bin:/bin"})

    assert run("db", "upgrade").returncode == 0
    refused = run("recon", "import", str(broken))
    imported = json.loads(run("recon", "import", str(file), "--json").stdout)
    again = json.loads(run("recon", "import", str(file), "--format", "camt.054", "--json").stdout)

    assert refused.returncode == 2 and refused.stderr.strip().count("\n") == 0
    assert "declares 4 entries but holds 3" in refused.stderr
    assert (imported["format"], imported["stored"], imported["lines"]) == ("camt.054", 1, 3)
    assert again["stored"] == 0
