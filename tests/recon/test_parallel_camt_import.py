"""The parallel camt reader (``StatementFormat.stream_file``): the serial reader's items and rows, or the serial read.

Files here are small, so the reader is run with ``min_bytes=0`` (no size floor) and small runs (``run_bytes``):
each file is cut into many runs read by worker processes, as a 500 MB statement is.
"""

from __future__ import annotations

import io
import logging
from dataclasses import replace
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.domain.statements import StatementFormat, StreamFallback
from gateway.errors import ContractError
from gateway.plugins.manager import Plugins
from gateway.recon.imports import StatementFileError, import_file
from gateway.store.tables import statement_lines, statements
from gateway_adapters.iso20022_bank import camt
from gateway_adapters.iso20022_bank import statements as bank
from gateway_adapters.iso20022_bank.camt import CAMT053_LAYOUT
from tests.support import load_bench

write_camt053 = load_bench("statements").write_camt053

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
FORMATS = Plugins().statement_formats()
NS = "urn:iso:std:iso:20022:tech:xsd:camt.053.001.08"
FAST = "entries read by"  # what the parallel reader logs when it takes a file


def _parallel(path: Path, source: str = bank.SOURCE, run_bytes: int = 700) -> Any:
    return bank.parallel_camt(path, CAMT053_LAYOUT, "camt.053", source, min_bytes=0, run_bytes=run_bytes)


def _serial(path: Path) -> list[Any]:
    fmt = FORMATS["camt.053"]
    assert fmt.stream is not None
    return list(fmt.stream(io.BytesIO(path.read_bytes())))


def _format(source: str, *, parallel: bool) -> dict[str, StatementFormat]:
    """camt.053 as the bank's, its statements ``source``'s, read in parallel (no size floor) or serially only."""
    fmt = bank.camt053_format(name="camt.053", source=source, description="the bank's camt.053, another source")
    stream = partial(_parallel, source=source) if parallel else None
    return {"camt.053": replace(fmt, stream_file=stream)}


def _entry(k: int, amount: str = "1.00", mark: str = "DBIT") -> str:
    return (
        f'<Ntry><Amt Ccy="EUR">{amount}</Amt><CdtDbtInd>{mark}</CdtDbtInd><Sts><Cd>BOOK</Cd></Sts>'
        f"<BookgDt><Dt>2026-12-01</Dt></BookgDt><AcctSvcrRef>R{k}</AcctSvcrRef>"
        f"<NtryDtls><TxDtls><Refs><EndToEndId>E2E-{k}</EndToEndId></Refs></TxDtls></NtryDtls></Ntry>\n"
    )


def _doc(entries: list[str], *, prolog: str = "", declaration: str = '<?xml version="1.0" encoding="UTF-8"?>') -> str:
    total = len(entries)  # every entry a 1.00 debit unless a test changes one
    bal = "".join(
        f'<Bal><Tp><CdOrPrtry><Cd>{code}</Cd></CdOrPrtry></Tp><Amt Ccy="EUR">{v}</Amt>'
        f"<CdtDbtInd>CRDT</CdtDbtInd><Dt><Dt>2026-12-01</Dt></Dt></Bal>"
        for code, v in (("OPBD", f"{total}.00"), ("CLBD", "0.00"))
    )
    acct = "<Acct><Id><IBAN>DE89370400440532013000</IBAN></Id><Ccy>EUR</Ccy></Acct>"
    return (
        f'{declaration}{prolog}<Document xmlns="{NS}"><BkToCstmrStmt><GrpHdr><MsgId>P-1</MsgId></GrpHdr>'
        f"<Stmt><Id>P-STMT</Id>{acct}{bal}\n{''.join(entries)}</Stmt></BkToCstmrStmt></Document>"
    )


def _read(path: Path, caplog: pytest.LogCaptureFixture) -> tuple[list[Any], bool]:
    """The parallel reader's items (``[None]`` if it gave up midway, the refusal if it refused) and whether it
    took the file."""
    caplog.clear()
    with caplog.at_level(logging.INFO, logger=bank.__name__):
        try:
            items = list(_parallel(path))
        except StreamFallback:
            items = [None]
        except Exception as exc:
            items = [type(exc), str(exc)]
    return items, any(FAST in r.getMessage() for r in caplog.records)


def _serial_or_refusal(path: Path) -> list[Any]:
    try:
        return _serial(path)
    except Exception as exc:
        return [type(exc), str(exc)]


async def _rows(engine: AsyncEngine, source: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The statements of ``source`` and their lines, without the keys that differ between two imports."""
    async with engine.connect() as conn:
        heads = (await conn.execute(select(statements).where(statements.c.source == source))).mappings().all()
        pks = [h["id"] for h in heads]
        lines = (
            await conn.execute(
                select(statement_lines)
                .where(statement_lines.c.statement_pk.in_(pks))
                .order_by(statement_lines.c.statement_pk, statement_lines.c.line)
            )
        ).mappings()
        out_lines = [{k: v for k, v in r.items() if k != "statement_pk"} for r in lines]
    out_heads = [{k: v for k, v in h.items() if k not in ("id", "source")} for h in heads]
    return out_heads, out_lines


def test_the_parallel_reader_gives_the_serial_readers_items(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "bench.xml"
    write_camt053(3_000, path)  # the bench's file, cut into ~2,400 runs of one entry or two
    items, fast = _read(path, caplog)
    assert fast and len(items) == 3_001
    assert items == _serial(path)


def test_real_files_read_the_same_in_parallel(
    partner_files: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Each real camt.053 (v2, v4 with a second namespace declared, v8), and each with its entry repeated 50 times."""
    for real in sorted((partner_files / "camt053").glob("*.xml")):
        body = real.read_bytes()
        start, end = body.index(b"<Ntry>"), body.rindex(b"</Ntry>") + len(b"</Ntry>")
        many = tmp_path / f"many-{real.name}"
        many.write_bytes(body[:start] + body[start:end] * 50 + body[end:])
        for path in (real, many):
            items, fast = _read(path, caplog)
            assert fast, path.name
            assert items == _serial(path), path.name
            assert len(items) == (2 if path is real else 51)


async def test_the_parallel_import_stores_the_serial_imports_rows(
    engine: AsyncEngine, tmp_path: Path, partner_files: Path
) -> None:
    path = tmp_path / "bench.xml"
    write_camt053(2_000, path)
    credits = tmp_path / "credits.xml"  # credits too: their receipts are written with each chunk
    credits.write_text(
        _doc([_entry(k, "1.00", "CRDT" if k % 3 else "DBIT") for k in range(30)]).replace(
            '<Cd>CLBD</Cd></CdOrPrtry></Tp><Amt Ccy="EUR">0.00', '<Cd>CLBD</Cd></CdOrPrtry></Tp><Amt Ccy="EUR">40.00'
        )
    )
    files = [path, credits, *sorted((partner_files / "camt053").glob("*.xml"))]
    outcomes = [
        (
            await _outcome(engine, file, f"old{n}", parallel=False),
            await _outcome(engine, file, f"new{n}", parallel=True),
        )
        for n, file in enumerate(files)
    ]
    for (old, new), file in zip(outcomes, files, strict=True):
        assert old == new, file.name
    stored = [old for old, _ in outcomes if not isinstance(old, str)]
    # the real files are refused by both, in the same words: their closing balances are in SEK, their entries EUR
    assert len(stored) == 2 and stored[0][0] == 2_000 and stored[1][0] == 30
    assert all("closing balance is in SEK" in old for old, _ in outcomes[2:])
    assert stored[0][1][0][0]["line_count"] == 2_000 and len(stored[1][1][1]) == 30


async def _outcome(engine: AsyncEngine, path: Path, source: str, *, parallel: bool) -> Any:
    """What importing ``path`` as ``source``'s does: the report's statements and the rows stored, or the refusal."""
    try:
        report = await import_file(engine, _format(source, parallel=parallel), path, now=NOW, given="camt.053")
    except StatementFileError as exc:
        return str(exc)
    done = [s.as_dict() | {"source": None} for s in report.statements]
    return report.as_dict()["lines"], await _rows(engine, source), done


COMMENT = _doc([_entry(0), _entry(1), "<!-- </Ntry> -->", _entry(2)])
FALLBACKS = {
    # a comment, CDATA or processing instruction among the entries: a worker gives up, the import reads again
    "comment": (COMMENT, "midway"),
    "cdata": (_doc([_entry(0), _entry(1)]).replace("<AcctSvcrRef>R1", "<AcctSvcrRef><![CDATA[R1]]>"), "midway"),
    "processing-instruction": (_doc([_entry(0), "<?x </Ntry> ?>", _entry(1)]), "midway"),
    # an entry the reader refuses, or malformed: the serial read refuses it, with its place in the file
    "bad-amount": (_doc([_entry(0), _entry(1, "1,00"), _entry(2)]), "midway"),
    "malformed": (_doc([_entry(0), _entry(1).replace("</AcctSvcrRef>", ""), _entry(2)]), "midway"),
    # a second statement: its entries are not the first's
    "two-statements": (
        _doc([_entry(0), "</Stmt><Stmt><Id>P-2</Id>", _entry(1)]).replace("P-STMT", "P-1"),
        "midway",
    ),
    # files the parallel reader does not take at all
    "empty": ("", "serial"),
    "latin-1": (_doc([_entry(0)], declaration='<?xml version="1.0" encoding="ISO-8859-1"?>'), "serial"),
    "xml-1.1": (_doc([_entry(0)], declaration='<?xml version="1.1" encoding="UTF-8"?>'), "serial"),
    "comment-in-head": (_doc([_entry(0)], prolog="<!-- a comment -->"), "serial"),
    "doctype": (_doc([_entry(0)], prolog="<!DOCTYPE Document>"), "serial"),
    "prefixed": (
        _doc([_entry(0)])
        .replace(f'xmlns="{NS}"', f'xmlns:c="{NS}"')
        .replace("<", "<c:")
        .replace("<c:/", "</c:")
        .replace("<c:?", "<?")
        .replace("<c:![", "<!["),
        "serial",
    ),
    "attribute-on-entry": (_doc([_entry(0).replace("<Ntry>", '<Ntry x="1">'), _entry(1)]), "serial"),
    "entry-after-the-statement": (
        _doc([_entry(0)]).replace("</BkToCstmrStmt>", "<X><Ntry/></X></BkToCstmrStmt>"),
        "serial",
    ),
}


@pytest.mark.parametrize("name", list(FALLBACKS))
async def test_each_file_the_parallel_reader_cannot_vouch_for_is_read_serially(
    name: str, engine: AsyncEngine, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    body, how = FALLBACKS[name]
    path = tmp_path / f"{name}.xml"
    path.write_bytes(body.encode("latin-1" if name == "latin-1" else "utf-8"))
    items, fast = _read(path, caplog)
    if how == "serial":  # read by the serial reader from the start: its items, or its refusal
        assert not fast
        assert items == _serial_or_refusal(path)
    else:  # the parallel reader started, then gave up: the import rolls back and reads it again
        assert fast and items == [None]
    # either way the import stores what the serial import stores, or refuses it with the serial import's words
    assert await _outcome(engine, path, "s0", parallel=False) == await _outcome(engine, path, "s1", parallel=True)


def _outcome_of(read: Any, *args: Any) -> Any:
    """What a run reader gives for ``args``: its entries, or ``None`` when it gives up or refuses the run (a worker
    answers ``None`` either way: the import then reads the file serially, which says why)."""
    try:
        return read(*args)
    except ContractError:
        return None


PIECE_RUNS = {
    "plain": "".join(_entry(k) for k in range(7)),
    "credit-and-pending": _entry(0, mark="CRDT") + _entry(1).replace("BOOK", "PDNG") + _entry(2),
    "bad-amount": _entry(0) + _entry(1, "1,00") + _entry(2),
    "bad-amount-then-malformed": _entry(0) + _entry(1, "1,00") + _entry(2).replace("</AcctSvcrRef>", ""),
    "malformed-then-bad-amount": _entry(0).replace("</AcctSvcrRef>", "") + _entry(1, "1,00"),
    "malformed-last": _entry(0) + _entry(1) + _entry(2).replace("</AcctSvcrRef>", ""),
    "wrapper-closed-and-reopened": _entry(0) + "</w><w>" + _entry(1) + _entry(2),
    "two-wrappers-closed-and-reopened": _entry(0) + "</w></w><w><w>" + _entry(1),
    "another-element-between": _entry(0) + "<X><Ntry/></X>" + _entry(1),
    "another-element-alone": _entry(0) + "<X/>" + _entry(1),
    "an-entry-in-a-statement-in-an-entry": _entry(0).replace(
        "</NtryDtls>", "</NtryDtls><Stmt>" + _entry(9) + "</Stmt>"
    ),
    "an-entry-in-an-entry": _entry(0).replace("</NtryDtls>", "</NtryDtls><X>" + _entry(9) + "</X>") + _entry(1),
    "an-entry-in-a-wrapper-in-an-entry": _entry(0).replace("</NtryDtls>", "</NtryDtls><w>" + _entry(9) + "</w>"),
    "an-entry-in-a-prefixed-statement-in-an-entry": _entry(0).replace(
        "</NtryDtls>", '</NtryDtls><c:Stmt xmlns:c="urn:x">' + _entry(9) + "</c:Stmt>"
    ),
    "an-entry-in-a-prefixed-wrapper-in-an-entry": _entry(0).replace(
        "</NtryDtls>", '</NtryDtls><c:w xmlns:c="urn:x">' + _entry(9) + "</c:w>"
    ),
    "comment": _entry(0) + "<!-- x -->" + _entry(1),
    "entity": _entry(0).replace("R0", "R&amp;0&#x20;&#65;") + _entry(1).replace("R1", "&undeclared;"),
    "prefixed-entry": _entry(0).replace("<Ntry>", '<c:Ntry xmlns:c="urn:x">').replace("</Ntry>", "</c:Ntry>")
    + _entry(1),
    "own-namespace": _entry(0).replace("<Ntry>", f'<Ntry xmlns="{NS}">') + _entry(1),
    "whitespace-and-text": "  \n" + _entry(0) + " text " + _entry(1) + "\n",
    "empty": "",
}


@pytest.mark.parametrize("name", list(PIECE_RUNS))
@pytest.mark.parametrize("piece_bytes", [1, 300, 8 << 10])
def test_the_piecewise_run_reader_reads_as_the_run_reader(
    name: str, piece_bytes: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``read_entry_pieces`` gives ``read_entry_run``'s entries, or gives up as it does, for the same run, pieces of one
    entry or several, whatever the run holds (the usual shape, and each shape it hands to ``read_entry_run``)."""
    monkeypatch.setattr(camt, "PIECE_BYTES", piece_bytes)
    document = _doc([_entry(0)])
    for depth_extra in ("", "<Extra>"):  # the report one level deeper: three wrappers
        sample = document.replace("<Stmt>", f"{depth_extra}<Stmt>").replace(
            "</Stmt>", "</Stmt>" + depth_extra.replace("<", "</")
        )
        wrapper = camt.entry_run_wrapper(sample.encode(), CAMT053_LAYOUT)
        assert wrapper is not None
        opening, closing = wrapper
        depth = closing.count(b"</")
        run = PIECE_RUNS[name].encode()
        expected = _outcome_of(camt.read_entry_run, opening + run + closing, depth)
        assert _outcome_of(camt.read_entry_pieces, run, opening, closing, depth) == expected
        if name == "plain":  # the usual shape: read in pieces, never handed to ``read_entry_run``
            assert len(expected) == 7
            with monkeypatch.context() as m:
                m.setattr(camt, "read_entry_run", None)
                assert camt.read_entry_pieces(run, opening, closing, depth) == expected
