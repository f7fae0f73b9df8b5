"""NACHA ACH files: strict reading, validation and building of 94-character records.

A file is a file header (1), batches (5 … 6/7 … 8), a file control (9), and
filler records of 9s up to a multiple of ten records (the blocking factor).
``read_file`` checks every rule it knows and reports *all* problems in one
``NachaError``; ``render`` writes a parsed file back byte for byte (trailing
spaces of alphanumeric fields and the line ending included); ``build_file``
makes a balanced file from entries (counts, entry hash, totals, blocks).

Fields are kept as text: alphanumeric fields right-stripped, numeric fields
exactly as read, so nothing a partner sent is lost by reading it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from typing import ClassVar

from gateway.domain.accounts import aba_check_digit_ok
from gateway.errors import ContractError, FieldError

__all__ = [
    "RECORD_LENGTH",
    "RETURN_REASONS",
    "AchFile",
    "Addenda",
    "Batch",
    "EntryDetail",
    "EntryInput",
    "NachaError",
    "Originator",
    "Record",
    "ReturnNotice",
    "alpha_field",
    "build_change_file",
    "build_file",
    "build_return_file",
    "read_file",
    "render",
    "returns_in",
]

RECORD_LENGTH = 94
BLOCKING_FACTOR = 10
FILLER = "9" * RECORD_LENGTH

#: the return reason codes the adapter names (NACHA Operating Rules, Appendix Four)
RETURN_REASONS: dict[str, str] = {
    "R01": "insufficient funds",
    "R02": "account closed",
    "R03": "no account / unable to locate account",
    "R04": "invalid account number structure",
    "R05": "unauthorized debit to consumer account",
    "R06": "returned per ODFI's request",
    "R07": "authorization revoked by customer",
    "R08": "payment stopped",
    "R09": "uncollected funds",
    "R10": "customer advises not authorized",
    "R16": "account frozen",
    "R20": "non-transaction account",
    "R23": "credit entry refused by receiver",
    "R29": "corporate customer advises not authorized",
}


class NachaError(ContractError):
    """A NACHA file breaks the format or its control totals; ``errors`` lists every problem by line."""

    default_message = "invalid NACHA file"
    slug = "invalid-nacha-file"


# -- records -----------------------------------------------------------------------------

# (name, start, end, kind): kind "N" numeric (right-justified, zeros), "A" alphanumeric (left, spaces)
_Layout = tuple[tuple[str, int, int, str], ...]


@dataclass
class Record:
    """One 94-character record as named fields; subclasses give the layout."""

    LAYOUT: ClassVar[_Layout] = ()
    TYPE: ClassVar[str] = ""
    fields: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, line: str) -> Record:
        values = {}
        for name, start, end, kind in cls.LAYOUT:
            raw = line[start:end]
            values[name] = raw.rstrip(" ") if kind == "A" else raw
        return cls(values)

    @classmethod
    def make(cls, **values: str | int) -> Record:
        return cls({k: str(v) if isinstance(v, str) else _num(v, _width(cls.LAYOUT, k)) for k, v in values.items()})

    def get(self, name: str) -> str:
        return self.fields.get(name, "")

    def number(self, name: str) -> int:
        text = self.get(name).strip()
        return int(text) if text.isdigit() else 0

    def render(self) -> str:
        out = []
        for name, start, end, kind in self.LAYOUT:
            width = end - start
            value = self.fields.get(name, "")
            if len(value) > width:
                raise NachaError(f"field {name} is longer than {width} characters")
            out.append(value.ljust(width) if kind == "A" else value.rjust(width, "0" if value.strip() else " "))
        line = self.TYPE + "".join(out)
        assert len(line) == RECORD_LENGTH, (type(self).__name__, len(line))
        return line


def _width(layout: _Layout, name: str) -> int:
    return next(end - start for n, start, end, _ in layout if n == name)


def _num(value: int, width: int) -> str:
    text = str(value)
    if value < 0 or len(text) > width:
        raise NachaError(f"{value} does not fit {width} digits")
    return text.rjust(width, "0")


class FileHeader(Record):
    TYPE = "1"
    LAYOUT = (
        ("priority_code", 1, 3, "N"),
        ("immediate_destination", 3, 13, "A"),
        ("immediate_origin", 13, 23, "A"),
        ("creation_date", 23, 29, "N"),
        ("creation_time", 29, 33, "N"),
        ("file_id_modifier", 33, 34, "A"),
        ("record_size", 34, 37, "N"),
        ("blocking_factor", 37, 39, "N"),
        ("format_code", 39, 40, "N"),
        ("destination_name", 40, 63, "A"),
        ("origin_name", 63, 86, "A"),
        ("reference_code", 86, 94, "A"),
    )


class BatchHeader(Record):
    TYPE = "5"
    LAYOUT = (
        ("service_class_code", 1, 4, "N"),
        ("company_name", 4, 20, "A"),
        ("discretionary_data", 20, 40, "A"),
        ("company_id", 40, 50, "A"),
        ("sec_code", 50, 53, "A"),
        ("entry_description", 53, 63, "A"),
        ("descriptive_date", 63, 69, "A"),
        ("effective_date", 69, 75, "A"),
        ("settlement_date", 75, 78, "A"),
        ("originator_status_code", 78, 79, "A"),
        ("odfi", 79, 87, "N"),
        ("batch_number", 87, 94, "N"),
    )


class EntryDetail(Record):
    TYPE = "6"
    LAYOUT = (
        ("transaction_code", 1, 3, "N"),
        ("rdfi", 3, 11, "N"),
        ("check_digit", 11, 12, "N"),
        ("account", 12, 29, "A"),
        ("amount", 29, 39, "N"),
        ("individual_id", 39, 54, "A"),
        ("name", 54, 76, "A"),
        ("discretionary_data", 76, 78, "A"),
        ("addenda_indicator", 78, 79, "N"),
        ("trace_number", 79, 94, "N"),
    )

    @property
    def routing(self) -> str:
        return self.get("rdfi") + self.get("check_digit")

    @property
    def trace_number(self) -> str:
        return self.get("trace_number")

    @property
    def amount_cents(self) -> int:
        return self.number("amount")

    @property
    def is_credit(self) -> bool:
        # second digit 1-4: credits (return/NOC, live, prenote, zero-dollar); 6-9: the same for debits
        return self.number("transaction_code") % 10 in (1, 2, 3, 4)

    @property
    def is_debit(self) -> bool:
        return self.number("transaction_code") % 10 in (6, 7, 8, 9)


class Addenda(Record):
    TYPE = "7"
    LAYOUT = (
        ("addenda_type", 1, 3, "N"),
        ("payment_information", 3, 83, "A"),
        ("sequence", 83, 87, "N"),
        ("entry_sequence", 87, 94, "N"),
    )

    @property
    def addenda_type(self) -> str:
        return self.get("addenda_type")


class ReturnAddenda(Addenda):
    """Addenda type 99 (return) and 98 (notification of change) share this layout."""

    LAYOUT = (
        ("addenda_type", 1, 3, "N"),
        ("reason_code", 3, 6, "A"),
        ("original_trace", 6, 21, "N"),
        ("date_of_death", 21, 27, "A"),
        ("original_rdfi", 27, 35, "N"),
        ("information", 35, 79, "A"),
        ("trace_number", 79, 94, "N"),
    )


class BatchControl(Record):
    TYPE = "8"
    LAYOUT = (
        ("service_class_code", 1, 4, "N"),
        ("entry_addenda_count", 4, 10, "N"),
        ("entry_hash", 10, 20, "N"),
        ("total_debit", 20, 32, "N"),
        ("total_credit", 32, 44, "N"),
        ("company_id", 44, 54, "A"),
        ("message_authentication_code", 54, 73, "A"),
        ("reserved", 73, 79, "A"),
        ("odfi", 79, 87, "N"),
        ("batch_number", 87, 94, "N"),
    )


class FileControl(Record):
    TYPE = "9"
    LAYOUT = (
        ("batch_count", 1, 7, "N"),
        ("block_count", 7, 13, "N"),
        ("entry_addenda_count", 13, 21, "N"),
        ("entry_hash", 21, 31, "N"),
        ("total_debit", 31, 43, "N"),
        ("total_credit", 43, 55, "N"),
        ("reserved", 55, 94, "A"),
    )


@dataclass
class Entry:
    detail: EntryDetail
    addenda: list[Addenda] = field(default_factory=list)


@dataclass
class Batch:
    header: BatchHeader
    entries: list[Entry] = field(default_factory=list)
    control: BatchControl | None = None

    def totals(self) -> tuple[int, int, int, int]:
        """(entry + addenda count, entry hash, total debit, total credit), computed from the entries."""
        count = sum(1 + len(e.addenda) for e in self.entries)
        entry_hash = sum(e.detail.number("rdfi") for e in self.entries)
        debit = sum(e.detail.amount_cents for e in self.entries if e.detail.is_debit)
        credit = sum(e.detail.amount_cents for e in self.entries if e.detail.is_credit)
        return count, entry_hash, debit, credit


@dataclass
class AchFile:
    header: FileHeader
    batches: list[Batch] = field(default_factory=list)
    control: FileControl | None = None
    filler: int = 0
    line_ending: str = "\n"
    final_newline: bool = False

    def entries(self) -> Iterable[tuple[Batch, Entry]]:
        for batch in self.batches:
            for entry in batch.entries:
                yield batch, entry

    def record_count(self) -> int:
        return 2 + sum(2 + sum(1 + len(e.addenda) for e in b.entries) for b in self.batches)


# -- reading -------------------------------------------------------------------------------


def _lines(text: str) -> tuple[list[str], str, bool]:
    ending = "\r\n" if "\r\n" in text else "\n"
    if ending not in text and len(text) > RECORD_LENGTH and len(text) % RECORD_LENGTH == 0:
        # an unbroken stream of records, as some banks send
        return [text[i : i + RECORD_LENGTH] for i in range(0, len(text), RECORD_LENGTH)], "", False
    final = text.endswith(ending)
    body = text[: -len(ending)] if final else text
    return body.split(ending), ending, final


def read_file(text: str | bytes) -> AchFile:
    """Parse and validate a NACHA file; ``NachaError`` lists every problem (``/line/<n>`` pointers)."""
    if isinstance(text, bytes):
        try:
            text = text.decode("ascii")
        except UnicodeDecodeError as exc:
            raise NachaError(f"not an ASCII file (byte {exc.start})") from None
    problems: list[FieldError] = []

    def problem(line_no: int, message: str) -> None:
        problems.append(FieldError(f"/line/{line_no}", message))

    lines, ending, final = _lines(text)
    if not text.strip():
        raise NachaError("empty file", errors=[FieldError("/line/1", "empty file")])
    ach: AchFile | None = None
    batch: Batch | None = None
    entry: Entry | None = None
    done = False
    for no, raw in enumerate(lines, start=1):
        if len(raw) != RECORD_LENGTH:
            problem(no, f"record is {len(raw)} characters, not {RECORD_LENGTH}")
            raw = raw.ljust(RECORD_LENGTH)  # go on, to report what else is wrong
        kind = raw[0]
        if done:
            if raw == FILLER and ach is not None:
                ach.filler += 1
            else:
                problem(no, "only filler records of 9s may follow the file control")
            continue
        if ach is None:
            if kind != "1":
                problem(no, "the first record must be the file header (1)")
                break
            ach = AchFile(FileHeader.parse(raw), line_ending=ending or "\n", final_newline=final)
            _check_file_header(ach.header, no, problem)
            continue
        if kind == "5":
            if batch is not None:
                problem(no, "batch header inside an open batch")
            batch, entry = Batch(BatchHeader.parse(raw)), None
            ach.batches.append(batch)
        elif kind == "6":
            if batch is None:
                problem(no, "entry detail outside a batch")
                continue
            entry = Entry(EntryDetail.parse(raw))
            batch.entries.append(entry)
            _check_entry(entry.detail, no, problem)
        elif kind == "7":
            if entry is None:
                problem(no, "addenda without an entry detail")
                continue
            cls = ReturnAddenda if raw[1:3] in ("98", "99") else Addenda
            entry.addenda.append(cls.parse(raw))  # type: ignore[arg-type]
            if entry.detail.get("addenda_indicator") != "1":
                problem(no, "addenda follows an entry whose addenda indicator is not 1")
        elif kind == "8":
            if batch is None:
                problem(no, "batch control without a batch header")
                continue
            batch.control = BatchControl.parse(raw)  # type: ignore[assignment]
            _check_batch(batch, no, problem)
            batch, entry = None, None
        elif kind == "9":
            if batch is not None:
                problem(no, "file control inside an open batch")
            ach.control = FileControl.parse(raw)  # type: ignore[assignment]
            done = True
            _check_file_control(ach, no, problem)
        else:
            problem(no, f"unknown record type {kind!r}")
    if ach is not None and not done:
        problem(len(lines), "no file control (9) record")
    if ach is not None and done and (ach.record_count() + ach.filler) % BLOCKING_FACTOR:
        problem(len(lines), f"{ach.record_count() + ach.filler} records, not a multiple of {BLOCKING_FACTOR}")
    if problems or ach is None:
        raise NachaError(f"invalid NACHA file: {problems[0].pointer}: {problems[0].message}", errors=problems)
    return ach


_Problem = Callable[[int, str], None]


def _check_file_header(h: FileHeader, no: int, problem: _Problem) -> None:
    if h.get("priority_code") != "01":
        problem(no, "priority code must be 01")
    if h.get("record_size") != "094" or h.get("blocking_factor") != "10" or h.get("format_code") != "1":
        problem(no, "record size, blocking factor and format code must be 094, 10, 1")
    if not _is_date(h.get("creation_date")):
        problem(no, f"creation date {h.get('creation_date')!r} is not YYMMDD")


def _check_entry(d: EntryDetail, no: int, problem: _Problem) -> None:
    if not d.get("transaction_code").isdigit() or not (d.is_credit or d.is_debit):
        problem(no, f"transaction code {d.get('transaction_code')!r} is not a credit or debit code")
    if not aba_check_digit_ok(d.routing):
        problem(no, f"RDFI routing number {d.routing!r} fails the ABA check digit")
    if not d.get("amount").isdigit():
        problem(no, "amount is not numeric")
    if not d.trace_number.isdigit():
        problem(no, "trace number is not numeric")


def _check_batch(b: Batch, no: int, problem: _Problem) -> None:
    c = b.control
    assert c is not None
    count, entry_hash, debit, credit = b.totals()
    for name, want in (
        ("entry_addenda_count", count),
        ("entry_hash", entry_hash % 10**10),
        ("total_debit", debit),
        ("total_credit", credit),
    ):
        if c.number(name) != want:
            problem(no, f"batch control {name} is {c.get(name).strip()}, the entries give {want}")
    for name in ("service_class_code", "company_id", "odfi", "batch_number"):
        # justification of the company id varies between banks: compare what it says, not its padding
        if c.get(name).strip() != b.header.get(name).strip():
            problem(no, f"batch control {name} {c.get(name)!r} differs from the header's {b.header.get(name)!r}")


def _check_file_control(f: AchFile, no: int, problem: _Problem) -> None:
    c = f.control
    assert c is not None
    sums = [b.totals() for b in f.batches]
    want = {
        "batch_count": len(f.batches),
        "entry_addenda_count": sum(s[0] for s in sums),
        "entry_hash": sum(s[1] for s in sums) % 10**10,
        "total_debit": sum(s[2] for s in sums),
        "total_credit": sum(s[3] for s in sums),
    }
    for name, value in want.items():
        if c.number(name) != value:
            problem(no, f"file control {name} is {c.get(name).strip()}, the batches give {value}")
    blocks = math.ceil(f.record_count() / BLOCKING_FACTOR)
    if c.number("block_count") != blocks:
        problem(no, f"file control block_count is {c.get('block_count')}, the records give {blocks}")


def _is_date(text: str) -> bool:
    try:
        datetime.strptime(text, "%y%m%d")
    except ValueError:
        return False
    return True


# -- writing -------------------------------------------------------------------------------


def render(ach: AchFile) -> str:
    """The file's text: every record, then the filler, with the file's own line ending."""
    records = [ach.header.render()]
    for b in ach.batches:
        records.append(b.header.render())
        for e in b.entries:
            records.append(e.detail.render())
            records.extend(a.render() for a in e.addenda)
        assert b.control is not None
        records.append(b.control.render())
    assert ach.control is not None
    records.append(ach.control.render())
    records.extend([FILLER] * ach.filler)
    text = ach.line_ending.join(records)
    return text + ach.line_ending if ach.final_newline else text


@dataclass(frozen=True)
class Originator:
    """Who sends the file (immediate origin) and, per batch, the company that originates the entries."""

    immediate_destination: str  # the ODFI's (or operator's) routing number, 9 digits
    immediate_origin: str  # 10 characters: usually " " + routing or a 10-digit company number
    destination_name: str
    origin_name: str
    odfi_routing: str  # 9 digits; its first 8 open every trace number


@dataclass(frozen=True)
class EntryInput:
    """One entry to put in a batch."""

    company_id: str
    company_name: str
    transaction_code: int
    routing: str
    account: str
    amount_cents: int
    individual_id: str
    name: str
    trace_number: str
    payment_information: str | None = None


def build_file(
    originator: Originator,
    entries: Sequence[EntryInput],
    *,
    created_at: datetime,
    effective_date: date,
    file_id_modifier: str = "A",
    sec_code: str = "PPD",
    entry_description: str = "PAYMENT",
) -> AchFile:
    """A balanced file: one batch per originating company, controls and blocks computed."""
    header = FileHeader.make(
        priority_code="01",
        immediate_destination=" " + originator.immediate_destination,
        immediate_origin=originator.immediate_origin.rjust(10),
        creation_date=created_at.strftime("%y%m%d"),
        creation_time=created_at.strftime("%H%M"),
        file_id_modifier=file_id_modifier,
        record_size="094",
        blocking_factor="10",
        format_code="1",
        destination_name=alpha_field(originator.destination_name, 23),
        origin_name=alpha_field(originator.origin_name, 23),
        reference_code="",
    )
    ach = AchFile(header)  # type: ignore[arg-type]
    companies: dict[str, list[EntryInput]] = {}
    for e in entries:
        companies.setdefault(e.company_id, []).append(e)
    for number, (company_id, items) in enumerate(sorted(companies.items()), start=1):
        credits = all(i.transaction_code % 10 in (1, 2, 3, 4) for i in items)
        debits = all(i.transaction_code % 10 in (6, 7, 8, 9) for i in items)
        service_class = "220" if credits else "225" if debits else "200"
        bh = BatchHeader.make(
            service_class_code=service_class,
            company_name=alpha_field(items[0].company_name, 16),
            discretionary_data="",
            company_id=alpha_field(company_id, 10),
            sec_code=sec_code,
            entry_description=alpha_field(entry_description, 10),
            descriptive_date="",
            effective_date=effective_date.strftime("%y%m%d"),
            settlement_date="",
            originator_status_code="1",
            odfi=originator.odfi_routing[:8],
            batch_number=number,
        )
        batch = Batch(bh)  # type: ignore[arg-type]
        for i in sorted(items, key=lambda x: x.trace_number):
            detail = EntryDetail.make(
                transaction_code=i.transaction_code,
                rdfi=i.routing[:8],
                check_digit=i.routing[8:],
                account=alpha_field(i.account, 17),
                amount=i.amount_cents,
                individual_id=alpha_field(i.individual_id, 15),
                name=alpha_field(i.name, 22),
                discretionary_data="",
                addenda_indicator="1" if i.payment_information else "0",
                trace_number=i.trace_number,
            )
            entry = Entry(detail)  # type: ignore[arg-type]
            if i.payment_information:
                entry.addenda.append(
                    Addenda.make(  # type: ignore[arg-type]
                        addenda_type="05",
                        payment_information=alpha_field(i.payment_information, 80),
                        sequence=1,
                        entry_sequence=i.trace_number[-7:],
                    )
                )
            batch.entries.append(entry)
        _close_batch(batch)
        ach.batches.append(batch)
    _close_file(ach)
    return ach


def _close_batch(batch: Batch) -> None:
    count, entry_hash, debit, credit = batch.totals()
    h = batch.header
    batch.control = BatchControl.make(  # type: ignore[assignment]
        service_class_code=h.get("service_class_code"),
        entry_addenda_count=count,
        entry_hash=entry_hash % 10**10,
        total_debit=debit,
        total_credit=credit,
        company_id=h.get("company_id"),
        message_authentication_code="",
        reserved="",
        odfi=h.get("odfi"),
        batch_number=h.get("batch_number"),
    )


def _close_file(ach: AchFile) -> None:
    sums = [b.totals() for b in ach.batches]
    records = ach.record_count()
    ach.control = FileControl.make(  # type: ignore[assignment]
        batch_count=len(ach.batches),
        block_count=math.ceil(records / BLOCKING_FACTOR),
        entry_addenda_count=sum(s[0] for s in sums),
        entry_hash=sum(s[1] for s in sums) % 10**10,
        total_debit=sum(s[2] for s in sums),
        total_credit=sum(s[3] for s in sums),
        reserved="",
    )
    ach.filler = -records % BLOCKING_FACTOR
    ach.final_newline = True


def alpha_field(text: str, width: int) -> str:
    """Upper-case printable ASCII, cut to ``width``: what every alphanumeric NACHA field holds."""
    clean = "".join(c if " " <= c <= "~" else " " for c in text.upper())
    return clean[:width].rstrip()


# -- returns -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReturnNotice:
    """One returned entry (addenda 99) or notification of change (addenda 98)."""

    original_trace: str
    reason_code: str
    kind: str  # "return" | "change"
    amount_cents: int
    original_rdfi: str
    information: str

    @property
    def reason(self) -> str:
        return RETURN_REASONS.get(self.reason_code, self.information or self.reason_code)


def returns_in(ach: AchFile) -> list[ReturnNotice]:
    """The returns and notifications of change a (return) file carries."""
    out = []
    for _, entry in ach.entries():
        for a in entry.addenda:
            if isinstance(a, ReturnAddenda):
                out.append(
                    ReturnNotice(
                        original_trace=a.get("original_trace"),
                        reason_code=a.get("reason_code"),
                        kind="return" if a.addenda_type == "99" else "change",
                        amount_cents=entry.detail.amount_cents,
                        original_rdfi=a.get("original_rdfi"),
                        information=a.get("information"),
                    )
                )
    return out


def build_return_file(
    originator: Originator,
    returned: Sequence[tuple[EntryInput, str, str]],
    *,
    created_at: datetime,
    effective_date: date,
) -> AchFile:
    """A return file from the RDFI: each (original entry, reason code, new trace) as a 2x return + addenda 99."""
    entries = [
        EntryInput(
            company_id=orig.company_id,
            company_name=orig.company_name,
            # 22 → 21, 32 → 31, 27 → 26 …: the return code of the original transaction code
            transaction_code=orig.transaction_code - 1,
            routing=orig.routing,
            account=orig.account,
            amount_cents=orig.amount_cents,
            individual_id=orig.individual_id,
            name=orig.name,
            trace_number=trace,
        )
        for orig, _, trace in returned
    ]
    ach = build_file(originator, entries, created_at=created_at, effective_date=effective_date)
    by_trace = {trace: (orig, code) for orig, code, trace in returned}
    for batch in ach.batches:
        for entry in batch.entries:
            orig, code = by_trace[entry.detail.trace_number]
            entry.detail.fields["addenda_indicator"] = "1"
            entry.addenda.append(
                ReturnAddenda.make(  # type: ignore[arg-type]
                    addenda_type="99",
                    reason_code=code,
                    original_trace=orig.trace_number,
                    date_of_death="",
                    original_rdfi=orig.routing[:8],
                    information="",
                    trace_number=entry.detail.trace_number,
                )
            )
        _close_batch(batch)
    _close_file(ach)
    return ach


def build_change_file(
    originator: Originator,
    changes: Sequence[tuple[EntryInput, str, str, str]],
    *,
    created_at: datetime,
    effective_date: date,
) -> AchFile:
    """Notifications of change from the RDFI: each (original entry, C-code, corrected data, new trace)
    as a zero-amount entry with addenda 98; the payment itself stands."""
    ach = build_return_file(
        originator,
        [(replace(orig, amount_cents=0), code, trace) for orig, code, _, trace in changes],
        created_at=created_at,
        effective_date=effective_date,
    )
    corrected = {trace: data for _, _, data, trace in changes}
    for batch in ach.batches:
        for entry in batch.entries:
            for addenda in entry.addenda:
                addenda.fields["addenda_type"] = "98"
                addenda.fields["information"] = alpha_field(corrected[entry.detail.trace_number], 44)
    return ach
