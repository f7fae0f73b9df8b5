"""CSV statements from any bank, read through a column-mapping file (docs/reconciliation.md).

A mapping (YAML, checked against ``csv_mapping_schema.json``) says which column
holds what (booking and value date, a signed amount or debit and credit columns
or an amount with a debit/credit indicator, currency, counterparty, references,
remittance text) and how the bank writes it (encoding, delimiter, decimal and
thousands separators, date format, rows before the header and after the data).
Optional ``balances`` name the rows carrying the opening and closing balance:
then opening + movements = closing is checked like any statement's.

The file is one statement. Its id is the mapping's name, the first and last
booking day and the file's content hash, so the same export imported twice adds
nothing. Nothing here is lenient: an amount that is not a number in the mapped
notation, more decimals than the currency allows, a date not in the mapped
format, a byte that is not the mapped encoding, a NUL, a record over
``MAX_RECORD_CHARS`` or a field over the csv module's limit refuses the file
with one line naming the row.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import json
import re
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from importlib import resources
from pathlib import Path
from typing import Any, BinaryIO

from gateway.config import check_document, read_yaml_file
from gateway.domain.accounts import mask
from gateway.domain.errors import CurrencyError, DomainError
from gateway.domain.money import validate_currency
from gateway.domain.statements import Statement, StatementFormat, StatementLine, to_minor
from gateway.errors import ConfigError, ContractError

__all__ = [
    "CSV_FORMAT",
    "MAX_RECORD_CHARS",
    "CsvMapping",
    "CsvStatementError",
    "csv_format",
    "load_mapping",
    "mappings_by_name",
    "parse_mapping",
    "read_csv",
    "stream_csv",
]

CSV_FORMAT = "csv"
#: a record (one row, all its fields) longer than this refuses the file
MAX_RECORD_CHARS = 8192
#: more fields than this in a row refuses the file
MAX_FIELDS = 200

_TEXT_FIELDS = ("counterparty_name", "end_to_end_id", "partner_reference", "servicer_reference")
_SIZES = {"counterparty_name": 140, "end_to_end_id": 35, "partner_reference": 35, "servicer_reference": 35}


class CsvStatementError(ContractError):
    """A CSV statement cannot be read through its mapping."""

    default_message = "CSV statement refused"
    slug = "statement-refused"


@dataclass(frozen=True)
class CsvMapping:
    """How one bank writes its CSV statements: a checked mapping document."""

    name: str
    source: str
    columns: Mapping[str, Any]
    account: str | None = None
    currency: str | None = None
    encoding: str = "utf-8"
    delimiter: str = ","
    quote: str = '"'
    decimal: str = "."
    thousands: str = ""
    date_format: str = "%Y-%m-%d"
    skip_rows: int = 0
    header: bool = True
    footer_rows: int = 0
    sign: str = "negative_is_debit"
    balances: Mapping[str, Any] | None = None
    _number: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        d, t = re.escape(self.decimal), re.escape(self.thousands)
        grouped = rf"[0-9]{{1,3}}(?:{t}[0-9]{{3}})+" if self.thousands else "(?!)"
        number = rf"(?:{grouped}|[0-9]+)(?:{d}[0-9]+)?"
        object.__setattr__(self, "_number", re.compile(rf"^([+-]?)({number})(-?)$"))

    def amount(self, text: str) -> Decimal:
        """``text`` in the bank's notation (``1.234,56``, ``-12,50``, ``12,50-``) as a Decimal; ValueError otherwise."""
        found = self._number.fullmatch(text.replace("\u00a0", "").strip())
        if found is None:
            raise ValueError(f"{text[:40]!r} is not an amount written {self._example()}")
        lead, digits, trail = found.groups()
        if lead and trail:
            raise ValueError(f"{text[:40]!r} has two signs")
        if self.thousands:
            digits = digits.replace(self.thousands, "")
        value = Decimal(digits.replace(self.decimal, "."))
        return -value if "-" in (lead, trail) else value

    def _example(self) -> str:
        return f"like 1{self.thousands}234{self.decimal}56" if self.thousands else f"like 1234{self.decimal}56"


def _schema() -> dict[str, Any]:
    text = resources.files("gateway.recon").joinpath("csv_mapping_schema.json").read_text(encoding="utf-8")
    return json.loads(text)  # type: ignore[no-any-return]


def parse_mapping(doc: Mapping[str, Any], where: str, name: str | None = None) -> CsvMapping:
    """A mapping document checked; ``ConfigError`` naming the first wrong key."""
    check_document(doc, _schema(), where)
    cols = doc["columns"]
    amounts = [k for k in ("amount", "debit", "credit") if k in cols]
    if amounts not in (["amount"], ["debit", "credit"]):
        raise ConfigError(f"{where}: columns: give amount, or debit and credit (not {', '.join(amounts) or 'none'})")
    if "direction" in cols and "amount" not in cols:
        raise ConfigError(f"{where}: columns.direction: needs the amount column it gives the direction of")
    if ("currency" in doc) == ("currency" in cols):
        raise ConfigError(f"{where}: give currency (one for the file) or columns.currency, exactly one")
    if "currency" in doc:
        try:
            validate_currency(doc["currency"])
        except CurrencyError:
            raise ConfigError(f"{where}: currency: {doc['currency']!r} is not an ISO 4217 currency") from None
    header = doc.get("header", True)
    named = [v for v in _column_refs(doc) if isinstance(v, str)]
    if not header and named:
        raise ConfigError(f"{where}: without a header row columns are numbers (1, 2, …), not {named[0]!r}")
    if doc.get("thousands") and doc.get("thousands") == doc.get("decimal", "."):
        raise ConfigError(f"{where}: thousands: cannot be the decimal separator")
    fmt = doc.get("date_format", "%Y-%m-%d")
    try:
        datetime.strptime(datetime(2026, 12, 31).strftime(fmt), fmt)
    except ValueError:
        raise ConfigError(f"{where}: date_format: {doc.get('date_format')!r} cannot read the dates it writes") from None
    return CsvMapping(
        name=doc.get("name") or name or "csv",
        source=doc["source"],
        columns=cols,
        account=doc.get("account"),
        currency=doc.get("currency"),
        encoding=doc.get("encoding", "utf-8"),
        delimiter=doc.get("delimiter", ","),
        quote=doc.get("quote", '"'),
        decimal=doc.get("decimal", "."),
        thousands=doc.get("thousands", ""),
        date_format=doc.get("date_format", "%Y-%m-%d"),
        skip_rows=doc.get("skip_rows", 0),
        header=header,
        footer_rows=doc.get("footer_rows", 0),
        sign=doc.get("sign", "negative_is_debit"),
        balances=doc.get("balances"),
    )


def _column_refs(doc: Mapping[str, Any]) -> list[Any]:
    cols = doc["columns"]
    out: list[Any] = []
    for key, value in cols.items():
        if key == "direction":
            out.append(value["column"])
        elif key == "text" and isinstance(value, list):
            out.extend(value)
        else:
            out.append(value)
    if doc.get("balances"):
        out.append(doc["balances"]["label_column"])
    return out


def load_mapping(path: str | Path) -> CsvMapping:
    """The mapping in ``path`` (YAML); ``ConfigError`` with one line if it is not a valid one."""
    file = Path(path)
    return parse_mapping(read_yaml_file(file, "CSV mapping"), str(file), name=file.stem[:32])


# -- reading a file ---------------------------------------------------------------------------------


#: bytes read from a CSV file at a time
_BLOCK = 1 << 16
#: a physical line longer than this refuses the file (above the csv module's 128 KiB field limit, so a
#: huge field is named as such; it bounds the memory one line can take)
MAX_LINE_CHARS = 1 << 19


def _text_lines(m: CsvMapping, source: BinaryIO) -> Iterator[str]:
    """The file's text line by line (line ends kept), decoded block by block as it is read.

    A byte that is not the mapping's encoding, a NUL or an overlong line
    refuses the file with one line naming the line of the file.
    """
    decoder = codecs.getincrementaldecoder(m.encoding)("strict")
    seen = 0  # newlines in the text decoded so far
    pending = ""
    first = True
    while True:
        block = source.read(_BLOCK)
        try:
            text = decoder.decode(block, final=not block)
        except UnicodeDecodeError as exc:
            bad = block[max(exc.start, 0) : exc.start + 1] or b"?"
            line = seen + pending.count("\n") + block[: max(exc.start, 0)].count(b"\n") + 1
            raise CsvStatementError(
                f"line {line}: byte {bad[0]:#04x} is not {m.encoding} (the mapping's encoding)"
            ) from None
        if first and text:
            text, first = text.removeprefix("\ufeff"), False
        if "\x00" in text:
            line = seen + (pending + text[: text.index("\x00")]).count("\n") + 1
            raise CsvStatementError(f"line {line}: holds a NUL character; not a text file")
        pending += text
        *done, pending = pending.split("\n")
        for piece in done:
            seen += 1
            yield piece + "\n"
        if len(pending) > MAX_LINE_CHARS:
            raise CsvStatementError(f"line {seen + 1}: a line over {MAX_LINE_CHARS} characters")
        if not block:
            if pending:
                yield pending
            return


def _rows(m: CsvMapping, source: BinaryIO) -> Iterator[tuple[int, list[str]]]:
    """(line number, fields) of every non-blank record after ``skip_rows`` lines (header included), streamed.

    The last ``footer_rows`` records are held back (at most that many in memory) and never given.
    """
    lines = _text_lines(m, source)
    for _ in range(m.skip_rows):
        next(lines, None)
    reader = csv.reader(lines, delimiter=m.delimiter, quotechar=m.quote, strict=True)
    held: deque[tuple[int, list[str]]] = deque()
    try:
        for row in reader:
            where = m.skip_rows + reader.line_num
            if len(row) > MAX_FIELDS:
                raise CsvStatementError(f"line {where}: {len(row)} fields, more than {MAX_FIELDS}")
            if sum(len(f) for f in row) > MAX_RECORD_CHARS:
                raise CsvStatementError(f"line {where}: a record over {MAX_RECORD_CHARS} characters")
            if any(f.strip() for f in row):
                held.append((where, row))
                if len(held) > m.footer_rows:
                    yield held.popleft()
    except csv.Error as exc:
        raise CsvStatementError(f"line {m.skip_rows + reader.line_num}: not CSV as mapped: {exc}") from None


def _index(m: CsvMapping, header: list[str] | None, ref: Any) -> int:
    if isinstance(ref, int):
        return ref - 1
    assert header is not None
    names = [h.strip() for h in header]
    if ref not in names:
        raise CsvStatementError(f"the header has no column {ref!r} (the mapping {m.name!r} names it)")
    return names.index(ref)


def _cell(row: list[str], i: int) -> str:
    return row[i].strip() if i < len(row) else ""


def _bounded(value: str, size: int) -> str | None:
    value = " ".join(value.split())
    return value[:size] or None


@dataclass
class _Reader:
    m: CsvMapping
    at: dict[str, int]
    text_at: list[int]

    def day(self, row: list[str], key: str, n: int, required: bool) -> date | None:
        if key not in self.at:
            return None
        raw = _cell(row, self.at[key])
        if not raw:
            if required:
                raise CsvStatementError(f"line {n}: no {key.replace('_', ' ')}")
            return None
        try:
            return datetime.strptime(raw, self.m.date_format).date()
        except ValueError:
            raise CsvStatementError(f"line {n}: {raw[:30]!r} is not a date as {self.m.date_format}") from None

    def signed(self, row: list[str], n: int, currency: str) -> int:
        """The row's amount in minor units, credit positive."""
        m = self.m
        try:
            if "amount" in self.at:
                raw = _cell(row, self.at["amount"])
                value = m.amount(raw)
                if "direction" in self.at:
                    if value < 0:
                        raise ValueError(f"{raw!r} is signed, but the direction column gives the sign")
                    flag = _cell(row, self.at["direction"])
                    marks = m.columns["direction"]
                    if flag not in (marks["debit"], marks["credit"]):
                        raise ValueError(
                            f"direction {flag[:20]!r} is neither {marks['debit']!r} nor {marks['credit']!r}"
                        )
                    value = -value if flag == marks["debit"] else value
                elif m.sign == "positive_is_debit":
                    value = -value
            else:
                debit, credit = _cell(row, self.at["debit"]), _cell(row, self.at["credit"])
                if bool(debit) == bool(credit):
                    raise ValueError("give exactly one of the debit and credit columns")
                value = -abs(m.amount(debit)) if debit else abs(m.amount(credit))
            return to_minor(value, currency)
        except ValueError as exc:
            raise CsvStatementError(f"line {n}: {exc}") from None
        except DomainError as exc:  # more decimals than the currency allows
            raise CsvStatementError(f"line {n}: {exc.message}") from None
        except InvalidOperation:
            raise CsvStatementError(f"line {n}: not an amount") from None

    def currency(self, row: list[str], n: int) -> str:
        if self.m.currency:
            return self.m.currency
        code = _cell(row, self.at["currency"]).upper()
        try:
            return validate_currency(code)
        except CurrencyError:
            raise CsvStatementError(f"line {n}: {code[:10]!r} is not an ISO 4217 currency") from None

    def line(self, row: list[str], n: int) -> StatementLine:
        currency = self.currency(row, n)
        signed = self.signed(row, n, currency)
        if signed == 0:
            raise CsvStatementError(f"line {n}: an amount of zero is no movement")
        fields: dict[str, Any] = {}
        for key in _TEXT_FIELDS:
            if key in self.at:
                fields[key] = _bounded(_cell(row, self.at[key]), _SIZES[key])
        if "counterparty_account" in self.at:
            account = _cell(row, self.at["counterparty_account"]).replace(" ", "")
            fields["counterparty_account"] = mask(account)[-40:] if account else None
        text = " ".join(_cell(row, i) for i in self.text_at)
        return StatementLine(
            amount_minor=abs(signed),
            credit=signed > 0,
            currency=currency,
            booked_on=self.day(row, "booking_date", n, True),
            value_on=self.day(row, "value_date", n, False),
            text=_bounded(text, 140),
            **fields,
        )


@dataclass
class _Figures:
    """What a first pass over the file learns before any line is given: the statement's header."""

    currency: str | None
    opening: int | None = None
    closing: int | None = None
    first_day: date | None = None
    last_day: date | None = None
    lines: int = 0


def _walk(m: CsvMapping, source: BinaryIO, figures: _Figures) -> Iterator[StatementLine]:
    """Every statement line of the file, read through the mapping; balance rows go into ``figures``."""
    rows = _rows(m, source)
    header: list[str] | None = None
    if m.header:
        first = next(rows, None)
        if first is None:
            raise CsvStatementError("no header row")
        header = first[1]
    cols = m.columns
    at: dict[str, int] = {}
    for key, ref in cols.items():
        if key == "direction":
            at[key] = _index(m, header, ref["column"])
        elif key != "text":
            at[key] = _index(m, header, ref)
    texts = cols.get("text", [])
    text_at = [_index(m, header, r) for r in (texts if isinstance(texts, list) else [texts])]
    reader = _Reader(m, at, text_at)
    label_at = _index(m, header, m.balances["label_column"]) if m.balances else None
    for n, row in rows:
        if label_at is not None and m.balances is not None:
            label = _cell(row, label_at)
            if label in (m.balances["opening"], m.balances["closing"]):
                cur = reader.currency(row, n)
                figures.currency = figures.currency or cur
                value = reader.signed(row, n, cur) if _has_amount(reader, row) else 0
                if label == m.balances["opening"]:
                    if figures.opening is not None:
                        raise CsvStatementError(f"line {n}: a second opening balance")
                    figures.opening = value
                else:
                    if figures.closing is not None:
                        raise CsvStatementError(f"line {n}: a second closing balance")
                    figures.closing = value
                continue
        line = reader.line(row, n)
        figures.currency = figures.currency or line.currency
        yield line


def stream_csv(m: CsvMapping, source: BinaryIO) -> Iterator[Statement | StatementLine]:
    """The file as one ``Statement`` (without lines) and then its lines, with bounded memory.

    Three passes over the (seekable) file: its content hash, then every row read
    and checked for the header's figures (its first and last day, the balance
    rows), then the lines given one by one. A file that fails is refused with
    ``CsvStatementError`` (one line) before its statement is given.
    """
    start = source.tell()
    digest = hashlib.sha256()
    while block := source.read(_BLOCK):
        digest.update(block)
    source.seek(start)
    figures = _Figures(m.currency)
    for line in _walk(m, source, figures):
        figures.lines += 1
        if line.booked_on is not None:
            if figures.first_day is None or line.booked_on < figures.first_day:
                figures.first_day = line.booked_on
            if figures.last_day is None or line.booked_on > figures.last_day:
                figures.last_day = line.booked_on
    if not figures.lines:
        raise CsvStatementError("no statement line in the file")
    if m.balances and (figures.opening is None or figures.closing is None):
        missing = "opening" if figures.opening is None else "closing"
        raise CsvStatementError(f"the mapping declares balances but the file has no {missing} balance row")
    assert figures.currency is not None and figures.first_day is not None and figures.last_day is not None
    account = mask(m.account.replace(" ", "")) if m.account else None
    statement_id = f"{m.name}/{figures.first_day.isoformat()}..{figures.last_day.isoformat()}/{digest.hexdigest()[:16]}"
    yield Statement(
        source=m.source,
        format=CSV_FORMAT,
        statement_id=statement_id,
        currency=figures.currency,
        account=account,
        period_start=figures.first_day,
        period_end=figures.last_day,
        opening_minor=figures.opening,
        closing_minor=figures.closing,
    )
    source.seek(start)
    yield from _walk(m, source, _Figures(m.currency))


def read_csv(m: CsvMapping, body: bytes) -> list[Statement]:
    """The file as one ``Statement`` through the mapping; ``CsvStatementError`` (one line) otherwise."""
    header, *lines = stream_csv(m, io.BytesIO(body))
    assert isinstance(header, Statement)
    return [replace(header, lines=tuple(x for x in lines if isinstance(x, StatementLine)))]


def _has_amount(reader: _Reader, row: list[str]) -> bool:
    keys = ("amount",) if "amount" in reader.at else ("debit", "credit")
    return any(_cell(row, reader.at[k]) for k in keys)


def csv_format(m: CsvMapping) -> StatementFormat:
    """The mapping as a ``StatementFormat`` (never recognised by ``auto``: a CSV says nothing of its bank)."""
    return StatementFormat(
        name=CSV_FORMAT,
        source=m.source,
        description=f"CSV through the mapping {m.name!r}",
        sniff=lambda head: False,
        read=lambda body: read_csv(m, body),
        stream=lambda source: stream_csv(m, source),
    )


def mappings_by_name(configured: Mapping[str, Path]) -> dict[str, CsvMapping]:
    """Every configured mapping loaded (``reconciliation.csv_mappings``), so a wrong one stops start-up."""
    return {name: parse_mapping(read_yaml_file(p, "CSV mapping"), str(p), name=name) for name, p in configured.items()}
