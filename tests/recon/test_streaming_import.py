"""Streaming camt import: large files with bounded memory, all or nothing, hostile XML refused."""

from __future__ import annotations

import io
import json
from dataclasses import fields, replace
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from lxml import etree
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.domain.statements import StatementLine, statement_line
from gateway.plugins.manager import Plugins
from gateway.recon.imports import StatementFileError, import_file, read_file
from gateway.store.statements import item_rows, line_rows, store_streamed
from gateway.store.tables import statement_line_items, statement_lines, statements
from gateway_adapters.iso20022_bank import camt
from tests.support import load_bench

write_camt053 = load_bench("statements").write_camt053

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
FORMATS = Plugins().statement_formats()
NS = "urn:iso:std:iso:20022:tech:xsd:camt.053.001.08"


async def _counts(engine: AsyncEngine) -> tuple[int, int]:
    async with engine.connect() as conn:
        return (
            int(await conn.scalar(select(func.count()).select_from(statements)) or 0),
            int(await conn.scalar(select(func.count()).select_from(statement_lines)) or 0),
        )


def _entry(amount: str, ref: str, mark: str = "DBIT") -> str:
    return (
        f'<Ntry><Amt Ccy="EUR">{amount}</Amt><CdtDbtInd>{mark}</CdtDbtInd><Sts><Cd>BOOK</Cd></Sts>'
        f"<BookgDt><Dt>2026-12-01</Dt></BookgDt><AcctSvcrRef>{ref}</AcctSvcrRef>"
        f"<NtryDtls><TxDtls><Refs><EndToEndId>E2E-{ref}</EndToEndId></Refs></TxDtls></NtryDtls></Ntry>"
    )


def _stmt(sid: str, opening: str, closing: str, entries: list[str], count: int | None = None) -> str:
    summary = f"<TxsSummry><TtlNtries><NbOfNtries>{count}</NbOfNtries></TtlNtries></TxsSummry>" if count else ""
    bal = "".join(
        f'<Bal><Tp><CdOrPrtry><Cd>{code}</Cd></CdOrPrtry></Tp><Amt Ccy="EUR">{v}</Amt>'
        f"<CdtDbtInd>CRDT</CdtDbtInd><Dt><Dt>2026-12-01</Dt></Dt></Bal>"
        for code, v in (("OPBD", opening), ("CLBD", closing))
    )
    acct = "<Acct><Id><IBAN>DE89370400440532013000</IBAN></Id><Ccy>EUR</Ccy></Acct>"
    return f"<Stmt><Id>{sid}</Id>{acct}{bal}{summary}{''.join(entries)}</Stmt>"


def _doc(*stmts: str, prolog: str = "") -> bytes:
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>{prolog}<Document xmlns="{NS}"><BkToCstmrStmt>'
        f"<GrpHdr><MsgId>STREAM-1</MsgId></GrpHdr>{''.join(stmts)}</BkToCstmrStmt></Document>"
    ).encode()


def test_the_streamed_read_gives_what_the_whole_file_read_gives(partner_files: Path) -> None:
    fmt = FORMATS["camt.053"]
    assert fmt.stream is not None
    body = _doc(
        _stmt("S-1", "100.00", "70.00", [_entry("10.00", "A1"), _entry("20.00", "A2")], count=2),
        _stmt("S-2", "70.00", "75.50", [_entry("5.50", "B1", "CRDT")]),
        _stmt("S-3", "75.50", "75.50", []),
    )
    whole = list(fmt.read(body))
    streamed = list(fmt.stream(io.BytesIO(body)))
    heads = whole
    rebuilt = []
    for item in streamed:
        if hasattr(item, "statement_id"):
            rebuilt.append([item, []])
        else:
            rebuilt[-1][1].append(item)
    assert [h.statement_id for h, _ in rebuilt] == ["S-1", "S-2", "S-3"]
    for (head, lines), s in zip(rebuilt, heads, strict=True):
        assert head.lines == ()
        assert tuple(lines) == s.lines
        assert (head.opening_minor, head.closing_minor, head.declared_count) == (
            s.opening_minor,
            s.closing_minor,
            s.declared_count,
        )
    # a real vendored v8 file reads the same both ways too
    real = (partner_files / "camt053/camt053.v8.xml").read_bytes()
    lines = [i for i in fmt.stream(io.BytesIO(real)) if not hasattr(i, "statement_id")]
    assert tuple(lines) == tuple(line for s in fmt.read(real) for line in s.lines)


async def test_a_large_file_streams_from_disk_in_chunks_and_stores_every_line(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    path = tmp_path / "big.xml"
    size = write_camt053(25_000, path)  # more than two chunks of lines, 14 MB: beyond parse_xml's 2 MiB
    assert size > 2 * 1024 * 1024
    report = await import_file(engine, FORMATS, path, now=NOW)
    assert report.as_dict()["lines"] == 25_000
    assert await _counts(engine) == (1, 25_000)
    async with engine.connect() as conn:
        row = (await conn.execute(select(statements))).mappings().one()
        last = await conn.scalar(select(func.max(statement_lines.c.line)))
    assert (row["line_count"], row["credits_minor"], row["closing_minor"]) == (25_000, 0, 0)
    assert row["debits_minor"] == row["opening_minor"] and last == 25_000
    again = await import_file(engine, FORMATS, path, now=NOW)
    assert again.as_dict()["stored"] == 0 and await _counts(engine) == (1, 25_000)


async def test_a_closing_balance_that_does_not_add_up_at_the_end_stores_nothing(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    path = tmp_path / "bad.xml"
    write_camt053(25_000, path)  # the first chunks are written before the end shows the figures are wrong
    body = path.read_bytes().replace(
        b'<Cd>CLBD</Cd></CdOrPrtry></Tp><Amt Ccy="EUR">0.00<', b'<Cd>CLBD</Cd></CdOrPrtry></Tp><Amt Ccy="EUR">0.01<'
    )
    path.write_bytes(body)
    with pytest.raises(StatementFileError, match="closing balance is 1"):
        await import_file(engine, FORMATS, path, now=NOW)
    assert await _counts(engine) == (0, 0)


async def test_a_good_statement_followed_by_a_bad_one_stores_neither(engine: AsyncEngine) -> None:
    body = _doc(
        _stmt("S-1", "100.00", "90.00", [_entry("10.00", "A1")]),
        _stmt("S-2", "90.00", "80.00", [_entry("10.00", "B1"), _entry("1.00", "B2")], count=2),
    )
    with pytest.raises(StatementFileError, match="S-2"):
        await import_file(engine, FORMATS, body, now=NOW)
    assert await _counts(engine) == (0, 0)
    declared = _doc(_stmt("S-3", "100.00", "90.00", [_entry("10.00", "C1")], count=3))
    with pytest.raises(StatementFileError, match="declares 3 entries but holds 1"):
        await import_file(engine, FORMATS, declared, now=NOW)
    assert await _counts(engine) == (0, 0)


async def test_a_file_cut_off_midway_stores_nothing(engine: AsyncEngine, tmp_path: Path) -> None:
    path = tmp_path / "cut.xml"
    write_camt053(25_000, path)
    body = path.read_bytes()
    path.write_bytes(body[: len(body) * 3 // 4])
    with pytest.raises(StatementFileError, match=r"not a valid camt\.053 file"):
        await import_file(engine, FORMATS, path, now=NOW)
    assert await _counts(engine) == (0, 0)


LAUGHS = (
    '<!DOCTYPE Document [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">'
    '<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;"><!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;">]>'
)
EXTERNAL = '<!DOCTYPE Document [<!ENTITY x SYSTEM "file:///etc/passwd">]>'


@pytest.mark.parametrize(
    "body",
    [
        _doc(_stmt("S-1", "1.00", "1.00", [_entry("0.00", "&d;")]), prolog=LAUGHS),
        _doc(_stmt("S-1", "1.00", "1.00", [_entry("0.00", "&x;")]), prolog=EXTERNAL),
        _doc(_stmt("S-1", "1.00", "1.00", []), prolog='<!DOCTYPE Document SYSTEM "http://127.0.0.1:9/x.dtd">'),
        _doc(_stmt("S-1", "1.00", "1.00", [_entry("0.00", "&undeclared;")])),
        _doc(_stmt("S-1", "1.00", "1.00", [_entry("0.00", "<X>" * 5000 + "</X>" * 5000)])),
    ],
    ids=["entity-expansion", "external-entity", "external-dtd", "undeclared-entity", "deep-nesting"],
)
async def test_hostile_xml_is_refused_by_the_streaming_reader(engine: AsyncEngine, body: bytes) -> None:
    with pytest.raises(StatementFileError, match=r"not a valid camt\.053 file") as refused:
        await import_file(engine, FORMATS, body, now=NOW, given="camt.053")
    assert "passwd" not in str(refused.value) and "root:" not in str(refused.value)
    assert await _counts(engine) == (0, 0)


async def test_a_camt054_streams_too(engine: AsyncEngine, partner_files: Path) -> None:
    fmt = FORMATS["camt.054"]
    assert fmt.stream is not None
    files = sorted((partner_files / "camt054").glob("*.xml")) if (partner_files / "camt054").is_dir() else []
    body = _doc(_stmt("N-1", "0", "0", [])).replace(b"camt.053.001.08", b"camt.054.001.08")
    body = body.replace(b"BkToCstmrStmt", b"BkToCstmrDbtCdtNtfctn").replace(b"Stmt>", b"Ntfctn>")
    items = list(fmt.stream(io.BytesIO(body)))
    assert [getattr(i, "statement_id", None) for i in items] == ["N-1"]
    for path in files:
        whole = [line for s in fmt.read(path.read_bytes()) for line in s.lines]
        streamed = [i for i in fmt.stream(io.BytesIO(path.read_bytes())) if not hasattr(i, "statement_id")]
        assert streamed == whole


async def test_streamed_lines_are_stored_as_the_whole_file_path_stores_them(engine: AsyncEngine) -> None:
    """The streamed import writes driver tuples (``line_statement``); the rows read back equal ``line_rows``."""
    refs = [f"R{k}" for k in range(5)]
    entries = [_entry(f"{k + 1}.25", ref, "CRDT" if k % 2 else "DBIT") for k, ref in enumerate(refs)]
    entries[2] = entries[2].replace("<BookgDt>", "<ValDt><Dt>2026-12-02</Dt></ValDt><BookgDt>", 1)
    # opening 0 + credits (2.25 + 4.25) - debits (1.25 + 3.25 + 5.25) = closing -3.25 (its Bal made a debit)
    body = _doc(
        _stmt("ROWS-1", "0", "0", entries).replace(
            '<Amt Ccy="EUR">0</Amt><CdtDbtInd>CRDT</CdtDbtInd><Dt><Dt>2026-12-01</Dt></Dt></Bal><Ntry>',
            '<Amt Ccy="EUR">3.25</Amt><CdtDbtInd>DBIT</CdtDbtInd><Dt><Dt>2026-12-01</Dt></Dt></Bal><Ntry>',
        )
    )
    (statement,) = FORMATS["camt.053"].read(body)
    report = await import_file(engine, FORMATS, body, now=NOW)
    assert report.as_dict()["lines"] == 5
    async with engine.connect() as conn:
        pk = await conn.scalar(select(statements.c.id))
        stored = [
            dict(r) for r in (await conn.execute(select(statement_lines).order_by(statement_lines.c.line))).mappings()
        ]
    assert stored == line_rows(int(pk), statement)
    assert {r["direction"] for r in stored} == {"credit", "debit"}
    assert stored[2]["value_on"] is not None and stored[2]["end_to_end_id"] == "E2E-R2"


async def test_streamed_itemised_lines_store_their_items_with_each_chunk(engine: AsyncEngine) -> None:
    """A streamed chunk with itemised lines (card payout batches) writes their items after its lines, in the same
    hop; the rows read back equal ``item_rows`` of the whole statement, whatever the chunk boundaries."""
    batches = [
        {
            "id": f"pb_S{k}",
            "object": "payout_batch",
            "currency": "eur",
            "day": "2026-12-06",
            "gross": 1000 + k,
            "fees": 39,
            "net": 961 + k,
            "transactions": [
                {"type": "charge", "charge": f"ch_{k}a", "collection_id": f"col_{k}a", "amount": 600, "fee": 20},
                {"type": "charge", "charge": f"ch_{k}b", "collection_id": f"col_{k}b", "amount": 400 + k, "fee": 19},
            ],
        }
        for k in range(5)
    ]
    body = json.dumps({"object": "settlement_report", "day": "2026-12-06", "data": batches}).encode()
    found = read_file(FORMATS["card_settlement"], body)
    stream = [x for s in found for x in (replace(s, lines=()), *s.lines)]
    stored = await store_streamed(engine, stream, digest="itemised", now=NOW, chunk=2)
    assert [s.lines for s in stored] == [len(s.lines) for s in found]
    async with engine.connect() as conn:
        pks = (await conn.scalars(select(statements.c.id).order_by(statements.c.id))).all()
        items = [
            dict(r)
            for r in (
                await conn.execute(
                    select(statement_line_items).order_by(
                        statement_line_items.c.statement_pk, statement_line_items.c.line, statement_line_items.c.item
                    )
                )
            ).mappings()
        ]
    expected = [row for pk, s in zip(pks, found, strict=True) for row in item_rows(int(pk), s)]
    assert len(expected) == 10 and items == expected


_SHAPES = [
    # the bench's shape: one transaction, the creditor by party (v8)
    "<Amt Ccy='EUR'>1.50</Amt><CdtDbtInd>DBIT</CdtDbtInd><Sts><Cd>BOOK</Cd></Sts><BookgDt><Dt>2026-12-01</Dt>"
    "</BookgDt><ValDt><DtTm>2026-12-02T10:00:00</DtTm></ValDt><AcctSvcrRef> S1 </AcctSvcrRef><NtryDtls><TxDtls>"
    "<Refs><InstrId>I1</InstrId><EndToEndId>E1</EndToEndId></Refs><RltdPties><Cdtr><Pty><Nm>Cred  A</Nm></Pty>"
    "</Cdtr><CdtrAcct><Id><IBAN>DE89370400440532013000</IBAN></Id></CdtrAcct><Dbtr><Nm>Deb</Nm></Dbtr>"
    "</RltdPties></TxDtls></NtryDtls>",
    # a credit: the debtor (v2 Nm, Othr account), structured and unstructured remittance, a return
    "<Amt Ccy='EUR'>2</Amt><CdtDbtInd>CRDT</CdtDbtInd><Sts>BOOK</Sts><NtryDtls><TxDtls><RltdPties><Dbtr><Nm> D </Nm>"
    "</Dbtr><DbtrAcct><Id><Othr><Id>ACC-9</Id></Othr></Id></DbtrAcct></RltdPties><RmtInf><Ustrd>a  b</Ustrd>"
    "<Ustrd> c </Ustrd><Strd><CdtrRefInf><Tp><CdOrPrtry><Cd>XXX</Cd></CdOrPrtry></Tp><Ref>no</Ref></CdtrRefInf>"
    "</Strd><Strd><CdtrRefInf><Tp><CdOrPrtry><Cd>SCOR</Cd></CdOrPrtry></Tp><Ref>RF18539007547034</Ref>"
    "</CdtrRefInf></Strd></RmtInf><RtrInf><Rsn><Prtry>P</Prtry></Rsn></RtrInf></TxDtls></NtryDtls>",
    # several transactions: the first non-empty references and return reason of any, the first's parties
    "<Amt Ccy='EUR'>3.00</Amt><CdtDbtInd>DBIT</CdtDbtInd><NtryDtls><TxDtls><Refs><EndToEndId> </EndToEndId></Refs>"
    "</TxDtls></NtryDtls><NtryDtls><!-- c --><TxDtls><Refs><EndToEndId>E2</EndToEndId><InstrId>I2</InstrId></Refs>"
    "<RtrInf><Rsn><Cd>AC04</Cd></Rsn></RtrInf><RltdPties><Cdtr><Nm>second</Nm></Cdtr></RltdPties></TxDtls>"
    "<TxDtls><Refs><InstrId>I3</InstrId></Refs></TxDtls></NtryDtls>",
    # pending (not stored), no details, an unreadable day, repeated elements (the first counts)
    "<Amt Ccy='EUR'>4.00</Amt><Amt Ccy='EUR'>9.00</Amt><CdtDbtInd>CRDT</CdtDbtInd><Sts><Cd>PDNG</Cd></Sts>"
    "<BookgDt><Dt>2026-13-45</Dt></BookgDt><BookgDt><Dt>2026-12-01</Dt></BookgDt>",
    "<Amt Ccy='EUR'>5.00</Amt><CdtDbtInd>DBIT</CdtDbtInd><BookgDt><Dt/><DtTm>2026-12-03T01:00:00Z</DtTm></BookgDt>"
    "<NtryDtls><TxDtls><RltdPties><Cdtr><Pty><Nm>x</Nm></Pty></Cdtr><Cdtr><Nm>y</Nm></Cdtr></RltdPties>"
    "<RmtInf><Ustrd/></RmtInf></TxDtls></NtryDtls>",
    # one child, not the one looked for (read by index, not by an iterator): a comment, another element
    "<Amt Ccy='EUR'>6.00</Amt><CdtDbtInd>DBIT</CdtDbtInd><Sts><Prtry>X</Prtry></Sts><BookgDt><!-- c --></BookgDt>"
    "<ValDt><DtTm>2026-12-04</DtTm></ValDt><NtryDtls><!-- c --></NtryDtls><NtryDtls><TxDtls><Refs><!-- c --></Refs>"
    "<RltdPties><CdtrAcct><Id><Othr><Id>O-1</Id></Othr></Id></CdtrAcct></RltdPties><RtrInf><Rsn><Prtry>P</Prtry>"
    "</Rsn></RtrInf></TxDtls></NtryDtls>",
    # a credit: the debtor's one child a Pty of another namespace (local names count), its account alone
    "<Amt Ccy='EUR'>7.00</Amt><CdtDbtInd>CRDT</CdtDbtInd><Sts><Cd> BOOK </Cd></Sts><NtryDtls><TxDtls><RltdPties>"
    "<Dbtr><o:Pty xmlns:o='urn:o'><Nm> N </Nm></o:Pty></Dbtr></RltdPties></TxDtls></NtryDtls>",
    "<Amt Ccy='EUR'>8.00</Amt><CdtDbtInd>CRDT</CdtDbtInd><NtryDtls><TxDtls><RltdPties><DbtrAcct><Id><IBAN>"
    "DE89370400440532013000</IBAN></Id></DbtrAcct></RltdPties></TxDtls></NtryDtls>",
]


@pytest.mark.parametrize("shape", range(len(_SHAPES)))
def test_the_streamed_entry_reader_reads_what_the_whole_entry_reader_reads(shape: int) -> None:
    """The streamed import's lean reader (``_entry_line``) gives what ``_entry`` then ``entry_line`` give."""
    ntry = etree.fromstring(f'<Ntry xmlns="{NS}">{_SHAPES[shape]}</Ntry>'.encode())
    whole, lean = camt._Reader(), camt._Reader()
    assert camt._entry_line(lean, ntry, "/n") == camt.entry_line(camt._entry(whole, ntry, "/n"))  # type: ignore[arg-type]
    assert lean.errors == whole.errors == []


@pytest.mark.parametrize(
    "body",
    [
        "<CdtDbtInd>DBIT</CdtDbtInd>",
        "<Amt Ccy='EUR'>1,5</Amt><CdtDbtInd>DBIT</CdtDbtInd>",
        "<Amt Ccy='eur'>1.5</Amt><CdtDbtInd>X</CdtDbtInd>",
        "<Amt>1.5</Amt>",
        "<Amt Ccy='EUR'> </Amt><CdtDbtInd>CRDT</CdtDbtInd>",
    ],
)
def test_the_streamed_entry_reader_refuses_what_the_whole_entry_reader_refuses(body: str) -> None:
    ntry = etree.fromstring(f'<Ntry xmlns="{NS}">{body}</Ntry>'.encode())
    whole, lean = camt._Reader(), camt._Reader()
    assert camt._entry_line(lean, ntry, "/n") is camt._entry(whole, ntry, "/n") is None
    assert lean.errors == whole.errors != []


def test_the_readers_fast_statement_line_is_the_dataclasss_line() -> None:
    """``statement_line`` (a reader's hot path) builds the value ``StatementLine(...)`` builds, every field."""
    values = (
        150,
        False,
        "EUR",
        date(2026, 12, 1),
        None,
        "E1",
        "I1",
        "S1",
        "Cred A",
        "****3000",
        "booked",
        None,
        None,
        "RF18 text",
        "RF18",
    )
    fast, slow = statement_line(*values), StatementLine(*values)  # type: ignore[arg-type]
    assert fast == slow and hash(fast) == hash(slow) and repr(fast) == repr(slow)
    assert list(vars(fast)) == [f.name for f in fields(StatementLine)]
