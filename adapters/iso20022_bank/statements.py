"""The bank's statement formats: camt.053 and camt.054 (any version) and MT940, as ``Statement`` values.

camt.053 is read by ``camt053.read_camt053``, camt.054 by
``camt054.read_camt054`` (one ``Statement`` per ``Ntfctn``: no balances, its
``TxsSummry`` control figures checked where the file has them); MT940 by the ``mt-940`` library
(``mt940``), one message at a time: the library folds every message of a file
into one object, so the file is cut at each ``:20:`` (transaction reference, the
tag that opens a message) and each piece is parsed on its own.

``camt053_format`` offers the camt.053 reader as another partner's format (the
instant rail's ``rtp.camt.053``): the same reading, its statements that partner's.
"""

from __future__ import annotations

import io
import logging
import mmap
import os
import pickle
import re
import subprocess
from collections import deque
from collections.abc import Iterator, Sequence
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any, BinaryIO

import mt940

from gateway.domain.accounts import mask
from gateway.domain.statements import (
    Statement,
    StatementFormat,
    StatementLine,
    StreamFallback,
    statement_line,
    to_minor,
)
from gateway.errors import ContractError, GatewayError
from gateway.workers import end_worker, start_worker, worker_command
from gateway_adapters.iso20022_bank.camt import (
    CAMT053_LAYOUT,
    CAMT054_LAYOUT,
    BookEntry,
    EntryLine,
    ReportLayout,
    StatementRead,
    entry_line,
    entry_run_wrapper,
    read_entry_pieces,
    stream_reports,
)
from gateway_adapters.iso20022_bank.camt053 import read_camt053
from gateway_adapters.iso20022_bank.camt054 import read_camt054

__all__ = [
    "CAMT053",
    "CAMT054",
    "MT940",
    "camt053_format",
    "parallel_camt",
    "read_camt053_statements",
    "read_camt054_statements",
    "read_mt940_statements",
    "read_run",
    "stream_camt053_statements",
    "stream_camt054_statements",
]

log = logging.getLogger(__name__)

SOURCE = "iso20022_bank"
_CAMT_SNIFF = re.compile(rb"urn:iso:std:iso:20022:tech:xsd:camt\.053\.001\.[0-9]{2}")
_CAMT054_SNIFF = re.compile(rb"urn:iso:std:iso:20022:tech:xsd:camt\.054\.001\.[0-9]{2}")
_MT940_SNIFF = re.compile(rb"^(?:[^\n]*\n){0,6}:20:", re.MULTILINE)
_MESSAGE_START = re.compile(r"^:20:", re.MULTILINE)


def _bounded(value: str | None, size: int) -> str | None:
    """``value`` with its runs of whitespace made one space, stripped, cut to ``size``; ``None`` if empty."""
    if value is None:
        return None
    # the usual value is already so: printable (every character ``str.split`` splits at but the space is not),
    # no double space, not starting or ending with one, short enough; returned as it is (~4 x cheaper)
    if value.isprintable() and len(value) <= size and "  " not in value and value[:1] != " " != value[-1:]:
        return value or None
    value = " ".join(value.split())
    return value[:size] or None


# -- camt.053 ---------------------------------------------------------------------


def _camt_line(e: EntryLine) -> StatementLine:
    """An entry's statement line: the counterparty by direction, from its first transaction.

    ``text`` is the creditor reference (SCOR, e.g. ISO 11649 RF) followed by the
    unstructured remittance, so text matching finds either.
    """
    return statement_line(*_camt_values(e))


_LineValues = tuple[Any, ...]


def _camt_values(e: EntryLine) -> _LineValues:
    """``statement_line``'s arguments for an entry (``_camt_line``): what a worker process sends back."""
    reference, remittance = e.creditor_reference, e.remittance_text
    account = e.counterparty_account
    return (
        to_minor(e.amount, e.currency),
        e.credit,
        e.currency,
        e.booked_on,
        e.value_on,
        _bounded(e.end_to_end_id, 35),
        _bounded(e.instruction_id, 35),
        _bounded(e.account_servicer_reference, 35),
        _bounded(e.counterparty_name, 140),
        mask(account)[-40:] if account else None,
        "return" if e.return_reason else "booked",
        e.return_reason,
        None,
        _bounded(f"{reference} {remittance}" if reference and remittance else reference or remittance, 140),
        _bounded(reference, 35),
    )


_BOOKED = (None, "BOOK")  # pending and information-only entries are not movements


def _booked(e: BookEntry | EntryLine) -> bool:
    return e.status in _BOOKED


def _camt_statement(
    s: StatementRead, fmt: str = "camt.053", first: EntryLine | None = None, source: str = SOURCE
) -> Statement:
    """``s`` as a ``Statement`` of ``source``; ``first``: its first entry, when ``s`` comes without its entries
    (streamed)."""
    first = first or (entry_line(s.entries[0]) if s.entries else None)
    opening = next((b for b in s.balances if b.code in ("OPBD", "PRCD")), None)
    closing = next((b for b in s.balances if b.code == "CLBD"), None)
    currency = s.currency or (first.currency if first else opening.currency if opening else "")
    problems: list[str] = []
    for name, balance in (("opening", opening), ("closing", closing)):
        if balance is not None and balance.currency != currency:
            problems.append(f"the {name} balance is in {balance.currency}, the statement in {currency}")

    def signed(b: object) -> int | None:
        if b is None or problems:
            return None
        minor = to_minor(b.amount, b.currency)  # type: ignore[attr-defined]
        return minor if b.credit else -minor  # type: ignore[attr-defined]

    return Statement(
        source=source,
        format=fmt,
        statement_id=s.statement_id,
        currency=currency,
        account=mask(s.account) if s.account else None,
        sequence=s.sequence,
        period_start=s.period_from,
        period_end=s.period_to,
        opening_minor=signed(opening),
        closing_minor=signed(closing),
        lines=tuple(_camt_line(entry_line(e)) for e in s.entries if _booked(e)),
        declared_count=s.declared_entries,
        declared_credits_minor=to_minor(s.declared_credits, currency) if s.declared_credits is not None else None,
        declared_debits_minor=to_minor(s.declared_debits, currency) if s.declared_debits is not None else None,
        problems=tuple(problems),
    )


def _stream_camt(
    file: BinaryIO, layout: ReportLayout, fmt: str, source: str = SOURCE
) -> Iterator[Statement | StatementLine]:
    """Each report's ``Statement`` (no lines yet), then its lines, as the file streams."""
    pending: StatementRead | None = None
    for item in stream_reports(file, layout):
        if isinstance(item, StatementRead):
            if pending is not None:
                yield _camt_statement(pending, fmt, source=source)
            pending = item
            continue
        if pending is not None:
            yield _camt_statement(pending, fmt, first=item, source=source)
            pending = None
        if item.status in _BOOKED:  # _booked, inline: once per entry
            yield _camt_line(item)
    if pending is not None:
        yield _camt_statement(pending, fmt, source=source)


#: files smaller than this are read by one process: starting the workers would cost more than they save
PARALLEL_MIN_BYTES = 8 << 20
#: the bytes of entries a worker reads at a time (~3,500 entries of the bank's own statements)
RUN_BYTES = 2 << 20
#: worker processes; with the importing process, they share the machine's cores
WORKERS = 2
#: runs handed out and not yet stored, at most: what bounds the memory of a parallel read
RUNS_AHEAD = 2 * WORKERS + 2
_WORKER = worker_command("gateway_adapters.iso20022_bank.camt_runs")
#: the largest head (everything before the first entry), first entry and tail the fast path takes
_PART_MAX = 1 << 20
_UTF8_DECLARATION = re.compile(
    rb"(?:\xef\xbb\xbf)?(?:<\?xml\s+version\s*=\s*[\"']1\.0[\"']"
    rb"(?:\s+encoding\s*=\s*[\"'](?i:utf-8)[\"'])?(?:\s+standalone\s*=\s*[\"'](?:yes|no)[\"'])?\s*\?>)?\s*<[A-Za-z_]"
)


def read_run(path: str, start: int, end: int, opening: bytes, closing: bytes, depth: int) -> list[_LineValues] | None:
    """A worker's part of a parallel read: the booked lines of the entries in ``path``'s bytes ``start``-``end``."""
    with open(path, "rb") as file:
        file.seek(start)
        run = file.read(end - start)
    entries = read_entry_pieces(run, opening, closing, depth)
    if entries is None:
        return None
    return [_camt_values(e) for e in entries if e.status in _BOOKED]


def _runs(mm: mmap.mmap, start: int, end: int, size: int) -> Iterator[tuple[int, int]]:
    """``start``-``end`` cut after an ``</Ntry>`` about every ``size`` bytes."""
    while start < end:
        cut = mm.find(b"</Ntry>", start + size, end) if end - start > size + (size >> 1) else -1
        stop = end if cut < 0 else cut + len(b"</Ntry>")
        yield start, stop
        start = stop


def _serial(path: Path, layout: ReportLayout, fmt: str, source: str) -> Iterator[Statement | StatementLine]:
    with path.open("rb") as file:
        yield from _stream_camt(file, layout, fmt, source)


def parallel_camt(
    path: Path,
    layout: ReportLayout,
    fmt: str,
    source: str = SOURCE,
    *,
    min_bytes: int = PARALLEL_MIN_BYTES,
    run_bytes: int = RUN_BYTES,
) -> Iterator[Statement | StatementLine]:
    """``_stream_camt`` of a file on disk, its entries read by ``WORKERS`` processes: the same items, in order.

    Taken for a file of ``min_bytes`` or more holding one report whose entries are unprefixed ``<Ntry>``
    children of it, in UTF-8 (XML 1.0), with no comment, CDATA, processing instruction or declaration among
    them; any other file is read by ``_stream_camt`` here. The head (up to the first ``<Ntry>``), the first
    entry and the tail (after the last ``</Ntry>``) are read as one document by ``stream_reports`` (the root,
    group header and report checked, a DOCTYPE refused as in any file); the entries between are cut into runs
    of about ``run_bytes`` at ``</Ntry>`` and read by ``read_entry_pieces`` in the report's namespace context, in
    worker processes, at most ``RUNS_AHEAD`` runs ahead of the lines stored. When a run does not read as the
    file would (an entry's problem, malformed XML, any doubt), ``StreamFallback`` is raised: the import rolls
    back and reads the file with ``_stream_camt``, which reports the problem as ever.
    """
    if path.stat().st_size < max(min_bytes, 1) or (os.cpu_count() or 1) < 2:  # (an empty file cannot be mapped)
        yield from _serial(path, layout, fmt, source)
        return
    with path.open("rb") as file, mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        start, last = mm.find(b"<Ntry>"), mm.rfind(b"</Ntry>")
        first_end = mm.find(b"</Ntry>", start) + len(b"</Ntry>") if start >= 0 else -1
        end = last + len(b"</Ntry>")
        if not (0 <= start < first_end <= end) or max(start, first_end - start, len(mm) - end) > _PART_MAX:
            plan = None
        else:
            head, first, tail = mm[:start], mm[start:first_end], mm[end:]
            plan = _plan(head, first, tail, layout, fmt, source)
        if plan is None:
            yield from _serial(path, layout, fmt, source)
            return
        header, opening, closing, depth = plan
        runs = _runs(mm, start, end, run_bytes)
        log.info("%s: entries read by %d worker processes", path.name, WORKERS)
        yield header
        # worker processes of their own (``camt_runs``, started by ``gateway.workers``: not a fork)
        workers = [start_worker(_WORKER) for _ in range(WORKERS)]
        pending: deque[subprocess.Popen[bytes]] = deque()
        sent = 0

        def send(run: tuple[int, int]) -> None:
            nonlocal sent
            worker = workers[sent % WORKERS]  # each worker answers in order: run k is worker k % WORKERS's
            assert worker.stdin is not None
            pickle.dump((str(path), *run, opening, closing, depth), worker.stdin, protocol=pickle.HIGHEST_PROTOCOL)
            worker.stdin.flush()
            pending.append(worker)
            sent += 1

        try:
            for run in runs:
                send(run)
                if len(pending) >= RUNS_AHEAD:
                    break
            while pending:
                worker = pending.popleft()
                assert worker.stdout is not None
                try:
                    rows = pickle.load(worker.stdout)
                except (EOFError, OSError, pickle.UnpicklingError):
                    rows = None  # the worker is gone
                ahead = next(runs, None)
                if ahead is not None and rows is not None:
                    send(ahead)
                if rows is None:
                    raise StreamFallback(f"{path.name}: entries the parallel reader cannot vouch for")
                for row in rows:
                    yield statement_line(*row)
        finally:
            for worker in workers:
                # stopped early (a refusal, a fallback): what the workers still read is not wanted
                end_worker(worker, kill=bool(pending))


def _plan(
    head: bytes, first: bytes, tail: bytes, layout: ReportLayout, fmt: str, source: str
) -> tuple[Statement, bytes, bytes, int] | None:
    """The report's ``Statement`` and the wrapper of its entries (``entry_run_wrapper``), or ``None`` if the
    file is not one the parallel read takes (``parallel_camt``)."""
    declaration = _UTF8_DECLARATION.match(head)
    if declaration is None or b"<?" in head[declaration.end() :] or b"<!" in head or b"<Ntry" in head:
        return None
    if b"Ntry" in tail or b"<!" in tail or b"<?" in tail:
        return None
    sample = head + first + tail
    try:
        items = list(stream_reports(io.BytesIO(sample), layout))
        wrapper = entry_run_wrapper(sample, layout)
    except (GatewayError, ValueError, KeyError, IndexError, TypeError, AttributeError, ArithmeticError):
        return None  # the serial reader reports it
    if wrapper is None or len(items) != 2:
        return None
    report, entry = items
    if not isinstance(report, StatementRead) or not isinstance(entry, EntryLine):
        return None
    opening, closing = wrapper
    return _camt_statement(report, fmt, first=entry, source=source), opening, closing, closing.count(b"</")


def stream_camt053_statements(source: BinaryIO) -> Iterator[Statement | StatementLine]:
    """A camt.053 file of any size, streamed: each statement (no lines), then its lines."""
    return _stream_camt(source, CAMT053_LAYOUT, "camt.053")


def stream_camt054_statements(source: BinaryIO) -> Iterator[Statement | StatementLine]:
    """A camt.054 file of any size, streamed: each notification (no lines), then its lines."""
    return _stream_camt(source, CAMT054_LAYOUT, "camt.054")


def read_camt053_statements(body: bytes) -> list[Statement]:
    """Every statement of a camt.053 file (any version)."""
    return [_camt_statement(s) for s in read_camt053(body)]


def read_camt054_statements(body: bytes) -> list[Statement]:
    """Every notification of a camt.054 file (any version), as a statement without balances."""
    return [_camt_statement(s, "camt.054") for s in read_camt054(body)]


# -- MT940 ------------------------------------------------------------------------


def _mt940_messages(text: str) -> list[str]:
    starts = [m.start() for m in _MESSAGE_START.finditer(text)]
    if not starts:
        return []
    return [text[a:b] for a, b in zip(starts, [*starts[1:], len(text)], strict=True)]


def _balance(value: object) -> tuple[int, str, date | None] | None:
    if value is None:
        return None
    amount = value.amount  # type: ignore[attr-defined]
    currency = str(amount.currency)
    raw = value.date  # type: ignore[attr-defined]
    on = date(raw.year, raw.month, raw.day) if raw is not None else None
    return to_minor(Decimal(amount.amount), currency), currency, on


def _sequence(number: object) -> int | None:
    text = str(number or "").strip()
    return int(text) if text.isdigit() else None


def _mt940_statement(message: str, index: int) -> Statement:
    parsed = mt940.models.Transactions()
    parsed.parse(message)
    data = parsed.data
    opening = _balance(data.get("final_opening_balance") or data.get("intermediate_opening_balance"))
    closing = _balance(data.get("final_closing_balance") or data.get("intermediate_closing_balance"))
    reference = str(data.get("transaction_reference") or "").strip()
    number = str(data.get("statement_number") or "").strip()
    page = str(data.get("sequence_number") or "").strip()
    account = str(data.get("account_identification") or "").strip()
    if not reference:
        raise ContractError(f"MT940 message {index}: :20: transaction reference is empty")
    currency = opening[1] if opening else closing[1] if closing else ""
    problems = []
    if opening and closing and opening[1] != closing[1]:
        problems.append(f"the closing balance is in {closing[1]}, the opening in {opening[1]}")
    lines = []
    for t in parsed.transactions:
        d = t.data
        amount = d["amount"]
        value = Decimal(amount.amount)
        day = d.get("date")
        entry = d.get("entry_date")
        reference_61 = str(d.get("customer_reference") or "").strip()
        lines.append(
            StatementLine(
                amount_minor=abs(to_minor(value, str(amount.currency))),
                credit=value > 0 or (value == 0 and str(d.get("status", "")).endswith("C")),
                currency=str(amount.currency),
                booked_on=date(entry.year, entry.month, entry.day) if entry else date(day.year, day.month, day.day),
                value_on=date(day.year, day.month, day.day) if day else None,
                partner_reference=None if reference_61 in ("", "NONREF") else reference_61[:35],
                servicer_reference=_bounded(d.get("bank_reference"), 35),
                text=_bounded(d.get("transaction_details"), 140),
            )
        )
    # the statement id: the account's statement number (and page) where given, else the :20: reference
    numbered = number.strip("0") != ""  # Rabobank writes 00000/00: not numbered
    statement_id = f"{account}/{number}/{page}" if numbered else f"{account}/{reference}"
    return Statement(
        source=SOURCE,
        format="mt940",
        statement_id=statement_id[:100],
        currency=currency,
        account=mask(account) if account else None,
        sequence=_sequence(number) if numbered else None,
        period_start=opening[2] if opening else None,
        period_end=closing[2] if closing else None,
        opening_minor=opening[0] if opening else None,
        closing_minor=closing[0] if closing else None,
        lines=tuple(lines),
        problems=tuple(problems),
    )


def read_mt940_statements(body: bytes) -> list[Statement]:
    """Every statement (message) of an MT940 file."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        text = body.decode("latin-1")
    messages = _mt940_messages(text.replace("\r\n", "\n"))
    if not messages:
        raise ContractError("not an MT940 file: no :20: tag")
    return [_mt940_statement(m, i) for i, m in enumerate(messages, start=1)]


CAMT053 = StatementFormat(
    name="camt.053",
    source=SOURCE,
    description="ISO 20022 bank-to-customer statement, camt.053.001.02 and later",
    sniff=lambda head: _CAMT_SNIFF.search(head) is not None,
    read=read_camt053_statements,
    stream=stream_camt053_statements,
    stream_file=lambda path: parallel_camt(path, CAMT053_LAYOUT, "camt.053"),
)

CAMT054 = StatementFormat(
    name="camt.054",
    source=SOURCE,
    description="ISO 20022 bank-to-customer debit/credit notification, camt.054.001.02 and later",
    sniff=lambda head: _CAMT054_SNIFF.search(head) is not None,
    read=read_camt054_statements,
    stream=stream_camt054_statements,
    stream_file=lambda path: parallel_camt(path, CAMT054_LAYOUT, "camt.054"),
)

MT940 = StatementFormat(
    name="mt940",
    source=SOURCE,
    description="SWIFT MT940 customer statement (read with the mt-940 library)",
    sniff=lambda head: _MT940_SNIFF.search(head.replace(b"\r\n", b"\n")) is not None,
    read=read_mt940_statements,
)


def camt053_format(*, name: str, source: str, description: str) -> StatementFormat:
    """camt.053 (any version) read for another partner: ``name``'s statements are ``source``'s (an instant rail's
    participant statement), streamed like the bank's. ``auto`` never picks it: a camt.053 file says nothing of
    which partner's it is, and ``auto`` reads it as the bank's; it is read when named (the fetch names it)."""

    def read(body: bytes) -> list[Statement]:
        return [_camt_statement(s, name, source=source) for s in read_camt053(body)]

    def stream(file: BinaryIO) -> Iterator[Statement | StatementLine]:
        return _stream_camt(file, CAMT053_LAYOUT, name, source)

    def stream_file(path: Path) -> Iterator[Statement | StatementLine]:
        return parallel_camt(path, CAMT053_LAYOUT, name, source)

    return StatementFormat(
        name=name,
        source=source,
        description=description,
        sniff=lambda head: False,
        read=read,
        stream=stream,
        stream_file=stream_file,
    )


def statement_formats() -> Sequence[StatementFormat]:
    return [CAMT053, CAMT054, MT940]
