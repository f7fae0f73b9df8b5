"""CSV statements through a column mapping: the shipped German and US examples, control figures, hostile files.

The CSV files in tests/data/csv are synthetic (tests/data/csv/SOURCES.md).
"""

from __future__ import annotations

import json
import tracemalloc
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.domain.statements import StatementControlError, StatementFormat, check_controls
from gateway.errors import ConfigError
from gateway.hookspecs import hookimpl
from gateway.plugins.manager import Plugins
from gateway.recon.csvformat import load_mapping, parse_mapping, read_csv, stream_csv
from gateway.recon.imports import StatementFileError, import_file
from gateway.recon.rules import load_recon_rules
from gateway.recon.service import run_recon
from gateway.reports.model import Period, Report, Section
from gateway.reports.render import render_csv
from gateway.store.tables import instructions, statement_lines, statements
from tests.support import (
    REPO,
    Database,
    LiveGateway,
    cli_config,
    insert_instruction,
    run_cli,
    start_gateway,
    stop_gateway,
)

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
FORMATS = Plugins().statement_formats()
DATA = REPO / "tests" / "data" / "csv"
DE = load_mapping(REPO / "config" / "csv" / "de-bank.yaml")
US = load_mapping(REPO / "config" / "csv" / "us-bank.yaml")

GERMAN_HEADER = (
    "Buchungstag;Valuta;Auftraggeber/Empfänger;IBAN;Ende-zu-Ende-Referenz;Buchungstext;Verwendungszweck;Betrag\r\n"
)


def _german(*rows: str, opening: str = "10.000,00", closing: str | None = None) -> bytes:
    """A de-bank export (cp1252, three preamble lines) with balance rows; ``closing`` computed unless given."""
    body = "Kontoauszug;x\r\nZeitraum;x\r\n;\r\n" + GERMAN_HEADER
    body += f"01.12.2026;01.12.2026;;;;Anfangssaldo;;{opening}\r\n"
    body += "".join(r + "\r\n" for r in rows)
    if closing is not None:
        body += f"01.12.2026;01.12.2026;;;;Endsaldo;;{closing}\r\n"
    return body.encode("cp1252")


async def _counts(engine: AsyncEngine) -> tuple[int, int]:
    async with engine.connect() as conn:
        return (
            int(await conn.scalar(select(func.count()).select_from(statements)) or 0),
            int(await conn.scalar(select(func.count()).select_from(statement_lines)) or 0),
        )


async def test_the_german_example_is_read_with_comma_decimals_and_its_balances_checked(engine: AsyncEngine) -> None:
    body = (DATA / "de-bank.csv").read_bytes()
    first = await import_file(engine, FORMATS, body, now=NOW, mapping=DE)
    again = await import_file(engine, FORMATS, body, now=NOW, given="csv", mapping=DE)
    async with engine.connect() as conn:
        head = (await conn.execute(select(statements))).mappings().one()
        lines = (await conn.execute(select(statement_lines).order_by(statement_lines.c.line))).mappings().all()

    assert (first.format, first.as_dict()["stored"], first.as_dict()["lines"]) == ("csv", 1, 3)
    assert again.as_dict()["stored"] == 0  # the same export twice adds nothing
    assert (head["source"], head["format"], head["currency"]) == ("iso20022_bank", "csv", "EUR")
    assert head["statement_id"].startswith("de-bank/2026-12-01..2026-12-02/")
    assert (head["opening_minor"], head["closing_minor"], head["account"]) == (1_000_000, 1_065_055, "*" * 18 + "3000")
    assert [(x["amount_minor"], x["direction"], x["end_to_end_id"]) for x in lines] == [
        (125_000, "debit", "E2E-DE-0001"),
        (9_995, "debit", "E2E-DE-0002"),
        (200_050, "credit", None),
    ]
    assert lines[0]["counterparty_name"] == "Müller Bürobedarf GmbH"  # cp1252 decoded
    assert lines[0]["counterparty_account"] == "*" * 18 + "2051"  # masked
    assert lines[1]["value_on"].isoformat() == "2026-12-02"
    assert lines[0]["text"] == "Überweisung Rechnung RE-4711"


async def test_the_us_example_reads_debit_and_credit_columns_and_has_no_control_figures(engine: AsyncEngine) -> None:
    report = await import_file(engine, FORMATS, DATA / "us-bank.csv", now=NOW, mapping=US)
    async with engine.connect() as conn:
        head = (await conn.execute(select(statements))).mappings().one()
        lines = (await conn.execute(select(statement_lines).order_by(statement_lines.c.line))).mappings().all()

    assert report.as_dict()["lines"] == 3
    assert (head["source"], head["currency"], head["opening_minor"], head["closing_minor"]) == (
        "ach_nacha",
        "USD",
        None,
        None,
    )
    assert [(x["amount_minor"], x["direction"], x["partner_reference"]) for x in lines] == [
        (125_000, "debit", "091000010000001"),
        (9_995, "debit", "091000010000002"),
        (200_050, "credit", None),
    ]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (_german("01.12.2026;01.12.2026;A;;;Ü;x;-1,00", closing="9.999,01"), "but the closing balance is 999901"),
        (_german("01.12.2026;01.12.2026;A;;;Ü;x;-1,005", closing="9.998,995"), "line 6: -1.005 has more decimals"),
        (_german("01.12.2026;01.12.2026;A;;;Ü;x;-1.00", closing="9.999,00"), "line 6: '-1.00' is not an amount"),
        (_german("2026-12-01;01.12.2026;A;;;Ü;x;-1,00", closing="9.999,00"), "is not a date as %d.%m.%Y"),
        (_german("01.12.2026;01.12.2026;A;;;Ü;x;-1,00"), "no closing balance row"),
        (_german("01.12.2026;01.12.2026;A;;;Ü;x;1.2.3", closing="9.999,00"), "is not an amount"),
        (_german("01.12.2026;01.12.2026;A;;;Ü;x;0,00", closing="10.000,00"), "an amount of zero"),
        (_german(closing="10.000,00"), "no statement line"),
    ],
    ids=["balances", "decimals", "notation", "date", "no-closing", "garbage", "zero", "empty"],
)
async def test_a_file_that_fails_is_refused_with_one_line_and_nothing_stored(
    engine: AsyncEngine, body: bytes, message: str
) -> None:
    with pytest.raises(StatementFileError, match=r"^csv: |^not a valid csv file: ") as refused:
        await import_file(engine, FORMATS, body, now=NOW, mapping=DE)

    assert message in refused.value.message
    assert "\n" not in refused.value.message
    assert await _counts(engine) == (0, 0)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            "Posting Date,Description,Payee,Trace Number,Bank Reference,Debit,Credit\n12/01/2026,Caf\xe9".encode(
                "latin-1"
            )
            + b",x,1,2,1.00,\n",
            "line 2: byte 0xe9 is not utf-8-sig",
        ),
        (
            b"Posting Date,Description,Payee,Trace Number,Bank Reference,Debit,Credit\n12/01/2026,a\x00b,x,1,2,1.00,\n",
            "line 2: holds a NUL character",
        ),
        (
            b"Posting Date,Description,Payee,Trace Number,Bank Reference,Debit,Credit\n12/01/2026,"
            + b"A" * 200_000
            + b",x,1,2,1.00,\n",
            "field larger than field limit",
        ),
        (
            b"Posting Date,Description,Payee,Trace Number,Bank Reference,Debit,Credit\n12/01/2026,"
            + b"A" * 9_000
            + b",x,1,2,1.00,\n",
            "a record over 8192 characters",
        ),
        (
            b"Posting Date,Description,Payee,Trace Number,Bank Reference,Debit,Credit\n12/01/2026,"
            + b"," * 500
            + b"\n",
            "more than 200",
        ),
        (
            b"Posting Date,Description,Payee,Trace Number,Bank Reference,Debit,Credit\n12/01/2026,a,x,1,2,1.00,2.00\n",
            "exactly one of the debit and credit",
        ),
        (b"Date,Description\n12/01/2026,a\n", "the header has no column 'Posting Date'"),
        (
            b'Posting Date,Description,Payee,Trace Number,Bank Reference,Debit,Credit\n12/01/2026,"a,x,1,2,1.00,\n',
            "not CSV as mapped",
        ),
    ],
    ids=["encoding", "nul", "huge-field", "long-record", "many-fields", "debit-and-credit", "header", "quote"],
)
async def test_hostile_csv_is_refused_in_one_line(engine: AsyncEngine, body: bytes, message: str) -> None:
    with pytest.raises(StatementFileError) as refused:
        await import_file(engine, FORMATS, body, now=NOW, mapping=US)

    assert message in refused.value.message, refused.value.message
    assert "\n" not in refused.value.message
    assert await _counts(engine) == (0, 0)


def test_a_formula_in_a_counterparty_name_is_kept_as_text_and_never_exported_as_a_formula() -> None:
    body = (
        b"Posting Date,Description,Payee,Trace Number,Bank Reference,Debit,Credit\n"
        b'12/01/2026,"=HYPERLINK(""http://x.example/"",""click"")",@SUM(A1),T1,B1,1.00,\n'
    )
    (statement,) = read_csv(US, body)
    line = statement.lines[0]
    report = Report(
        name="recon",
        title="t",
        period=Period("2026-12-01", NOW, NOW),
        generated_at=NOW,
        sections=[Section("breaks", "b", ("detail", "who", "amount"), [(line.text, line.counterparty_name, "-1.00")])],
    )

    assert line.text == '=HYPERLINK("http://x.example/","click")'  # stored as the bank wrote it
    exported = render_csv(report).splitlines()[-1]
    assert exported == 'breaks,"\'=HYPERLINK(""http://x.example/"",""click"")",\'@SUM(A1),-1.00'


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"columns": {"booking_date": "D", "amount": "A", "debit": "X", "credit": "Y"}}, "give amount, or debit and"),
        ({"columns": {"booking_date": "D"}}, "give amount, or debit and credit (not none)"),
        ({"currency": None}, "give currency (one for the file) or columns.currency"),
        ({"currency": "XYZ"}, "currency: 'XYZ' is not an ISO 4217 currency"),
        ({"delimiter": ":"}, "delimiter"),
        ({"header": False}, "without a header row columns are numbers"),
        ({"thousands": ".", "decimal": "."}, "thousands: cannot be the decimal separator"),
        ({"colour": "red"}, "Additional properties are not allowed"),
    ],
)
def test_a_wrong_mapping_is_one_line_naming_the_key(change: dict[str, Any], message: str) -> None:
    doc: dict[str, Any] = {
        "version": 1,
        "source": "bank",
        "currency": "EUR",
        "columns": {"booking_date": "D", "amount": "A"},
    }
    doc.update(change)
    doc = {k: v for k, v in doc.items() if v is not None}
    with pytest.raises(ConfigError, match=r"^m\.yaml: ") as wrong:
        parse_mapping(doc, "m.yaml")
    assert message in wrong.value.message


def test_columns_by_number_a_direction_column_and_trailing_minus_signs() -> None:
    mapping = parse_mapping(
        {
            "version": 1,
            "name": "sh",
            "source": "bank",
            "header": False,
            "delimiter": ";",
            "decimal": ",",
            "thousands": ".",
            "date_format": "%d.%m.%y",
            "columns": {
                "booking_date": 1,
                "currency": 2,
                "amount": 3,
                "direction": {"column": 4, "debit": "S", "credit": "H"},
                "servicer_reference": 5,
            },
        },
        "sh.yaml",
    )
    body = b"01.12.26;EUR;1.250,00;S;R1\n01.12.26;EUR;2,50;H;R2\n02.12.26;JPY;5;S;R3\n"
    with pytest.raises(StatementControlError, match="line 3 is in JPY, the statement in EUR"):
        check_controls(read_csv(mapping, body)[0])  # the check import_file makes
    (statement,) = read_csv(mapping, body[: body.index(b"02.12")])
    assert [(x.amount_minor, x.credit) for x in statement.lines] == [(125_000, False), (250, True)]
    assert mapping.amount("1.234,56-") == mapping.amount("-1.234,56")
    with pytest.raises(ValueError, match="two signs"):
        mapping.amount("-1,00-")


async def test_a_csv_line_is_matched_to_the_payment_its_reference_names(engine: AsyncEngine) -> None:
    instruction_id = await insert_instruction(engine, reference="INV-CSV-1", amount="1250.00")
    async with engine.begin() as conn:
        await conn.execute(
            update(instructions)
            .where(instructions.c.id == instruction_id)
            .values(status="settled", adapter="iso20022_bank", updated_at=NOW)
        )
    body = _german("06.12.2026;06.12.2026;Nordic Parts AB;;INV-CSV-1;Überweisung;x;-1.250,00", closing="8.750,00")
    await import_file(engine, FORMATS, body, now=NOW, mapping=DE)

    run = await run_recon(engine, load_recon_rules(), now=NOW)

    assert (run.lines, run.confirmed, run.breaks_opened) == (1, 1, 0)


def test_cli_imports_through_a_mapping_and_refuses_a_bad_file_in_one_line(tmp_path: Path) -> None:
    config = cli_config(tmp_path)
    mapping = str(REPO / "config" / "csv" / "de-bank.yaml")
    bad = tmp_path / "bad.csv"
    bad.write_bytes(_german("01.12.2026;01.12.2026;A;;;Ü;x;-1,00", closing="1,00"))

    ok = run_cli("recon", "import", str(DATA / "de-bank.csv"), "--mapping", mapping, "--json", config=config)
    refused = run_cli("recon", "import", str(bad), "--mapping", mapping, config=config)
    no_mapping = run_cli("recon", "import", str(bad), "--format", "csv", config=config)

    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["lines"] == 3
    assert refused.returncode == 2 and len(refused.stderr.strip().splitlines()) == 1
    assert "but the closing balance is 100" in refused.stderr
    assert no_mapping.returncode == 2 and "needs a column mapping" in no_mapping.stderr


async def test_the_api_picks_a_configured_mapping_by_name(database: Database) -> None:
    gw: LiveGateway = await start_gateway(
        database,
        simulators=False,
        dispatch=False,
        poll=False,
        partners={},
        reconciliation__csv_mappings={"de-bank": str(REPO / "config" / "csv" / "de-bank.yaml")},
    )
    try:
        finance = await gw.new_key("treasury", ("finance",))
        body = (DATA / "de-bank.csv").read_bytes()
        url = f"{gw.url}/v1/statements"
        async with gw.session.post(f"{url}?mapping=de-bank", data=body, headers=gw.headers(finance)) as resp:
            created = (resp.status, await resp.json())
        async with gw.session.post(f"{url}?mapping=../../etc/passwd", data=body, headers=gw.headers(finance)) as resp:
            unknown = (resp.status, await resp.json(content_type=None))
        async with gw.session.post(f"{url}?format=csv", data=body, headers=gw.headers(finance)) as resp:
            unmapped = (resp.status, await resp.json(content_type=None))
    finally:
        await stop_gateway(gw)

    assert created[0] == 201 and created[1]["format"] == "csv" and created[1]["lines"] == 3
    assert unknown[0] == 400 and "configured CSV mapping (de-bank)" in unknown[1]["detail"]
    assert unmapped[0] == 422 and "needs a column mapping" in unmapped[1]["detail"]


class _CsvThief:
    """A plugin that tries to offer the gateway's own csv format."""

    @hookimpl
    def gateway_statement_formats(self) -> list[StatementFormat]:
        return [StatementFormat("csv", "x", "not allowed", sniff=lambda head: True, read=lambda body: [])]


def test_no_plugin_may_offer_the_csv_format() -> None:
    plugins, thief = Plugins(), _CsvThief()
    plugins.register(thief, name="tests.csv-thief")
    try:
        with pytest.raises(ConfigError, match="offers the statement format 'csv', which is the gateway's own"):
            plugins.statement_formats()
    finally:
        plugins.unregister(thief)


async def test_a_large_csv_file_streams_with_bounded_memory_and_reads_as_the_whole_file_does(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    """A 20,000-line export given by path is read as it is stored; reading it holds a fraction of its size."""
    path = tmp_path / "big.csv"
    with path.open("w", encoding="utf-8-sig", newline="") as f:
        f.write("Posting Date,Description,Payee,Trace Number,Bank Reference,Debit,Credit\r\n")
        for i in range(20_000):
            f.write(f"12/0{1 + i % 3}/2026,ACH DEBIT {i},Payee {i % 97},0910000{i:08d},BR-{i:07d},{i % 500}.25,\r\n")
    size = path.stat().st_size

    tracemalloc.start()
    try:
        with path.open("rb") as source:
            read = sum(1 for _ in stream_csv(US, source))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert read == 1 + 20_000
    assert size > 1_400_000 and peak < size / 3, (size, peak)

    report = await import_file(engine, FORMATS, path, now=NOW, mapping=US)

    assert report.as_dict()["lines"] == 20_000
    assert await _counts(engine) == (1, 20_000)
    [whole] = read_csv(US, path.read_bytes())
    assert report.statements[0].statement_id == whole.statement_id
    assert whole.statement_id.startswith("us-bank/2026-12-01..2026-12-03/")
    assert whole.debits_minor == sum((i % 500) * 100 + 25 for i in range(20_000))


def test_a_utf16_export_with_quoted_newlines_and_a_footer_reads_across_block_boundaries() -> None:
    """Decoded block by block: a UTF-16 file, records with a newline inside quotes, footer rows held back."""
    mapping = parse_mapping(
        {
            "version": 1,
            "name": "utf16-bank",
            "source": "iso20022_bank",
            "currency": "EUR",
            "encoding": "utf-16",
            "delimiter": ";",
            "decimal": ",",
            "footer_rows": 2,
            "date_format": "%d.%m.%Y",
            "columns": {"booking_date": "Tag", "amount": "Betrag", "text": "Text"},
        },
        "test",
    )
    rows = [f'0{1 + i % 9}.12.2026;"Zeile {i}\nzweite Zeile";-{i + 1},50' for i in range(5_000)]
    body = "Tag;Betrag;Text\n".replace("Betrag;Text", "Text;Betrag") + "\n".join(rows) + "\nSumme;x;1\nEnde;x;2\n"
    [statement] = read_csv(mapping, body.encode("utf-16"))

    assert len(statement.lines) == 5_000
    assert statement.lines[0].text == "Zeile 0 zweite Zeile" and statement.lines[-1].text == "Zeile 4999 zweite Zeile"
    assert statement.debits_minor == sum((i + 1) * 100 + 50 for i in range(5_000))
