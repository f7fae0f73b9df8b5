"""History migration: payments the old system made, imported with their final statuses (docs/go-live.md).

A migrated payment is *history*, never an instruction: it goes to ``migrated_payments``,
not ``instructions``, so nothing in the dispatch path (outbox, dispatcher, webhooks) can
ever pick it up and send it. Each row is checked as the API checks an instruction — the
newest instruction contract (reference, type, amount pattern, party shapes) and then the
domain (ISO 4217 currency and minor units, IBAN checksums via schwifty, ABA check digits) —
plus a final status and its dates.

- **de-duplication**: by reference and by content hash (the payment without its
  reference: type, amount, currency, both accounts, remittance, when it was made), across
  files and runs and inside one file; a duplicate is counted, never imported twice;
- **resumable**: the file is read in chunks; each chunk's payments, its risk history and the
  file's checkpoint (``migration_checkpoints``: rows consumed, keyed by the file's SHA-256)
  commit in one transaction, so a run killed at any point is continued by re-running it;
- **risk**: settled payments teach the risk history what is usual (known beneficiaries,
  debtor → creditor pairs, the accounts behind a creditor name), so long-standing suppliers
  are not new beneficiaries on day one. Accounts are kept only as keyed fingerprints and masks.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import csv
import hashlib
import json
import multiprocessing
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import islice
from operator import itemgetter
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from gateway.config import read_yaml_file
from gateway.contracts.fastcheck import PropertyChecks
from gateway.contracts.registry import contracts
from gateway.domain.accounts import Account, Party
from gateway.domain.clock import system_clock
from gateway.domain.errors import DomainError
from gateway.domain.instruction import InstructionData, has_control_characters, parse_instruction
from gateway.domain.status import TERMINAL, Status
from gateway.errors import ConfigError
from gateway.risk.history import Lessons
from gateway.risk.model import Fingerprinter, normalise_name
from gateway.risk.store import learn_lessons
from gateway.store.bulk import Query, Write, bind_converter, fetch_all, insert_values, placeholders, write_all
from gateway.store.tables import migrated_payments, migration_checkpoints

__all__ = [
    "CHUNK_SIZES",
    "CSV_FIELDS",
    "DEFAULT_CHUNK_SIZE",
    "FINAL_STATUSES",
    "FORMATS",
    "PROCESS_MIN_RECORDS",
    "ROW_COLUMNS",
    "AccountKeys",
    "Checkpoint",
    "ColumnMapping",
    "DriverValues",
    "FileResult",
    "FileSource",
    "Parsed",
    "RecordReader",
    "Rejection",
    "Staged",
    "Validator",
    "check_file",
    "chunk_size_for",
    "fresh",
    "import_file",
    "instruction_doc",
    "known",
    "lessons",
    "load_mapping",
    "read_checkpoint",
    "read_records",
    "stage",
    "store_chunk",
]

FORMATS = ("csv", "json", "pain001")
#: a reader of one file's records after the first ``skip`` (``read_records``, or the CLI's pain.001 reader)
RecordReader = Callable[["FileSource", "ColumnMapping", int], Iterator[tuple[int, dict[str, Any] | str]]]

#: the statuses history may rest in (a payment still in flight is not history: finish it in the old system)
FINAL_STATUSES: frozenset[str] = frozenset(s.value for s in TERMINAL)

#: the CSV columns, by their canonical names (a mapping file renames them; docs/go-live.md)
CSV_FIELDS: tuple[str, ...] = (
    "reference",
    "type",
    "amount",
    "currency",
    "status",
    "created_at",
    "status_at",
    "debtor_name",
    "debtor_iban",
    "debtor_bic",
    "debtor_account_number",
    "debtor_routing",
    "debtor_wallet",
    "creditor_name",
    "creditor_iban",
    "creditor_bic",
    "creditor_account_number",
    "creditor_routing",
    "creditor_wallet",
    "remittance_information",
)
_REQUIRED = ("reference", "amount", "currency", "status", "created_at", "debtor_name", "creditor_name")
_MAPPING_KEYS = frozenset({"columns", "statuses", "date_format", "defaults", "delimiter"})


@dataclass(frozen=True)
class ColumnMapping:
    """How an old system's CSV export maps onto the canonical columns (``--mapping FILE``)."""

    #: canonical field → the CSV header that holds it
    columns: Mapping[str, str] = field(default_factory=dict)
    #: the old system's status words → a final status (compared case-insensitively)
    statuses: Mapping[str, str] = field(default_factory=dict)
    #: ``strptime`` format of the dates, when they are not ISO 8601
    date_format: str | None = None
    #: values for fields the file lacks (e.g. ``type: payout``)
    defaults: Mapping[str, str] = field(default_factory=dict)
    #: the CSV field separator
    delimiter: str = ","

    def header(self, name: str) -> str:
        return self.columns.get(name, name)


def load_mapping(path: str | Path | None) -> ColumnMapping:
    """Read and check a column-mapping YAML file; ``None``: the canonical column names."""
    if path is None:
        return ColumnMapping()
    doc = read_yaml_file(Path(path), "mapping file")
    if not isinstance(doc, dict):
        raise ConfigError(f"{path}: the mapping file must be a mapping with columns:, statuses:, date_format:")
    unknown = sorted(set(doc) - _MAPPING_KEYS)
    if unknown:
        raise ConfigError(f"{path}: unknown key {unknown[0]!r} (known: {', '.join(sorted(_MAPPING_KEYS))})")
    sections: dict[str, dict[str, str]] = {}
    for key in ("columns", "statuses", "defaults"):
        value = doc.get(key) or {}
        if not isinstance(value, dict) or not all(isinstance(v, str | int) for v in value.values()):
            raise ConfigError(f"{path}: {key}: must map names to text")
        sections[key] = {str(k): str(v) for k, v in value.items()}
    for name in [*sections["columns"], *sections["defaults"]]:
        if name not in CSV_FIELDS:
            raise ConfigError(f"{path}: {name!r} is not a column the import knows (see docs/go-live.md)")
    for word, status in sections["statuses"].items():
        if status not in FINAL_STATUSES:
            raise ConfigError(f"{path}: statuses: {word!r} maps to {status!r}, not a final status")
    date_format = doc.get("date_format")
    if date_format is not None and not isinstance(date_format, str):
        raise ConfigError(f"{path}: date_format must be a strptime format such as '%d.%m.%Y'")
    delimiter = doc.get("delimiter", ",")
    if not isinstance(delimiter, str) or len(delimiter) != 1:
        raise ConfigError(f"{path}: delimiter must be one character, such as ';'")
    return ColumnMapping(
        delimiter=delimiter,
        columns=sections["columns"],
        statuses={k.lower(): v for k, v in sections["statuses"].items()},
        date_format=date_format,
        defaults=sections["defaults"],
    )


# -- reading ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FileSource:
    """One input file: its identity (SHA-256 of its bytes) and an estimate of its records (for progress)."""

    path: Path
    format: str
    sha256: str
    records: int

    @classmethod
    def open(cls, path: Path, fmt: str) -> FileSource:
        digest = hashlib.sha256()
        text = codecs.getincrementaldecoder("utf-8")()  # refused whole, before anything is written
        lines = 0
        last = b"\n"
        try:
            with path.open("rb") as f:
                while block := f.read(1 << 20):
                    digest.update(block)
                    try:
                        text.decode(block)
                    except UnicodeDecodeError as exc:
                        line = lines + block[: exc.start].count(b"\n") + 1
                        raise ConfigError(f"{path}: not UTF-8 text near line {line} (export it as UTF-8)") from None
                    lines += block.count(b"\n")
                    last = block[-1:]
                try:
                    text.decode(b"", final=True)
                except UnicodeDecodeError:
                    raise ConfigError(f"{path}: not UTF-8 text at its end (export it as UTF-8)") from None
        except OSError as exc:
            raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from None
        lines += last != b"\n"
        return cls(path, fmt, digest.hexdigest(), max(0, lines - 1) if fmt == "csv" else lines)


#: a record as read: its line (CSV, JSON Lines) or position (JSON array), and its fields or why it is unreadable
Record = tuple[int, dict[str, Any] | str]


def read_records(source: FileSource, mapping: ColumnMapping, skip: int = 0) -> Iterator[Record]:
    """The file's records in order, after the first ``skip`` (a checkpoint's ``rows_done``).

    Raise ``ConfigError`` when the file as a whole is unusable (missing CSV columns, not JSON).
    """
    if source.format == "csv":
        yield from _csv_records(source.path, mapping, skip)
    elif source.format == "pain001":  # the pain.001 reader is in intake, a sibling: the caller passes it
        raise ConfigError(f"{source.path}: pain.001 files are read by the caller's reader (import_file(reader=...))")
    else:
        yield from _json_records(source.path, skip)


def _columns(path: Path, header: Sequence[str], mapping: ColumnMapping) -> dict[str, int]:
    """Canonical field → its column index; ``ConfigError`` when a required column is missing."""
    index = {name: i for i, name in enumerate(header)}
    wanted: dict[str, int] = {}
    for name in CSV_FIELDS:
        column = mapping.header(name)
        if column in index:
            wanted[name] = index[column]
        elif name in _REQUIRED and name not in mapping.defaults:
            raise ConfigError(
                f"{path}: no column {column!r} for {name} (give a --mapping file naming it; see docs/go-live.md)"
            )
    return wanted


def check_file(source: FileSource, mapping: ColumnMapping) -> None:
    """Refuse a file that cannot be imported as a whole (a CSV without a required column) before anything runs."""
    if source.format != "csv":
        return
    with source.path.open(newline="", encoding="utf-8-sig") as f:
        try:
            header = next(csv.reader(f, delimiter=mapping.delimiter), [])
        except (csv.Error, UnicodeDecodeError) as exc:
            raise ConfigError(f"{source.path}: not a readable CSV file ({exc})") from None
    _columns(source.path, header, mapping)


def _csv_records(path: Path, mapping: ColumnMapping, skip: int) -> Iterator[Record]:
    with path.open(newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f, delimiter=mapping.delimiter)
        try:
            header = next(reader)
        except StopIteration:
            return
        except (csv.Error, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}: not a readable CSV file ({exc})") from None
        wanted = _columns(path, header, mapping)
        names, indexes = tuple(wanted), tuple(wanted.values())
        # the wanted fields of a row, as a tuple (itemgetter of one index gives the value alone)
        values = itemgetter(*indexes) if len(indexes) > 1 else lambda row: tuple(row[i] for i in indexes)
        width = len(header)
        seen = 0
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return
            except (csv.Error, UnicodeDecodeError) as exc:
                seen += 1
                if seen > skip:
                    yield reader.line_num, f"unreadable CSV: {exc}"
                continue
            if not row:
                continue
            seen += 1
            if seen <= skip:
                continue
            if len(row) != width:
                yield reader.line_num, f"{len(row)} columns, the header has {width}"
                continue
            fields = dict(mapping.defaults)
            stripped = zip(names, map(str.strip, values(row)), strict=True)
            fields.update({name: value for name, value in stripped if value})
            yield reader.line_num, fields


def _json_records(path: Path, skip: int) -> Iterator[Record]:
    with path.open(encoding="utf-8") as f:
        start = f.read(1 << 12).lstrip()[:1]
        f.seek(0)
        if start == "[":
            try:
                items = json.load(f)
            except (json.JSONDecodeError, RecursionError) as exc:
                raise ConfigError(f"{path}: not valid JSON ({exc})") from None
            for position, item in enumerate(items, 1):
                if position > skip:
                    yield position, item if isinstance(item, dict) else "not a JSON object"
            return
        seen = 0
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            seen += 1
            if seen <= skip:
                continue
            try:
                item = json.loads(line)
            except json.JSONDecodeError as exc:
                yield number, f"not valid JSON: {exc.msg}"
                continue
            except RecursionError:
                yield number, "not valid JSON: nested too deeply"
                continue
            yield number, item if isinstance(item, dict) else "not a JSON object"


# -- validating ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Rejection:
    line: int
    reference: str
    reason: str


@dataclass(frozen=True, slots=True)
class Parsed:
    """A valid historical payment, ready to store."""

    line: int
    data: InstructionData
    status: str
    created_at: datetime
    status_at: datetime
    content_hash: str


def _party_doc(fields: Mapping[str, Any], role: str) -> dict[str, Any]:
    account: dict[str, str] = {}
    if f"{role}_iban" in fields:
        account["iban"] = fields[f"{role}_iban"]
    elif f"{role}_wallet" in fields:
        account["wallet"] = fields[f"{role}_wallet"]
    else:
        for key, name in (("number", "account_number"), ("routing", "routing")):
            if f"{role}_{name}" in fields:
                account[key] = fields[f"{role}_{name}"]
    party: dict[str, Any] = {"name": fields.get(f"{role}_name", ""), "account": account}
    if f"{role}_bic" in fields:
        party["agent"] = {"bic": fields[f"{role}_bic"]}
    return party


def instruction_doc(fields: Mapping[str, Any]) -> dict[str, Any]:
    """The instruction contract document of a flat (CSV) record."""
    doc: dict[str, Any] = {
        "reference": fields.get("reference", ""),
        "type": fields.get("type", "credit_transfer"),
        "amount": fields.get("amount", ""),
        "currency": fields.get("currency", ""),
        "debtor": _party_doc(fields, "debtor"),
        "creditor": _party_doc(fields, "creditor"),
    }
    if "remittance_information" in fields:
        doc["remittance_information"] = {"unstructured": fields["remittance_information"]}
    return doc


def _instant(value: Any, name: str, date_format: str | None) -> datetime:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name} is missing")
    try:
        at = datetime.strptime(value, date_format) if date_format else datetime.fromisoformat(value)
    except ValueError:
        shown = f"'{date_format}'" if date_format else "ISO 8601 (2026-03-31 or 2026-03-31T14:05:00Z)"
        raise ValueError(f"{name} {value[:40]!r} is not a date in {shown}") from None
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def _content_hash(data: InstructionData, created_at: datetime) -> str:
    parts = (
        data.type,
        str(data.money.amount),
        data.money.currency,
        *data.debtor.account.as_dict().items(),
        *data.creditor.account.as_dict().items(),
        data.remittance_information or data.creditor_reference or "",
        created_at.isoformat(),
    )
    return hashlib.sha256(repr(parts).encode()).hexdigest()


#: the CSV fields that make up each party's contract document (``_party_doc``)
_PARTY_FIELDS = {
    role: tuple(f"{role}_{name}" for name in ("name", "iban", "wallet", "account_number", "routing", "bic"))
    for role in ("debtor", "creditor")
}
_PARTIES = ("debtor", "creditor")
#: the page cache of an importing SQLite connection (64 MiB; a connection setting, SQLite's default is 2 MB)
_SQLITE_CACHE = "PRAGMA cache_size=-65536"
_TEXT, _TEXT_OR_NONE = frozenset({str}), frozenset({str, type(None)})
#: the debtor's and the creditor's fields of one flat record (``_PARTY_FIELDS`` order)
_PartyKeys = tuple[tuple[Any, ...], tuple[Any, ...]]


class Validator:
    """Checks records one by one: the newest instruction contract, the domain, a final status, its dates.

    History pays the same few thousand parties again and again, so a flat (CSV) record
    whose debtor and creditor fields equal those of a record that already passed the whole
    check reuses that record's parsed parties, and the contract is checked for the other
    fields only (``ContractRegistry.fast_properties``: the same verdict, property by
    property). Every other record, and every record that fails, takes the whole check,
    which also words the rejection.
    """

    def __init__(self, mapping: ColumnMapping, now: datetime) -> None:
        registry = contracts()
        self._registry = registry
        self._version = registry.latest("instruction")
        self._fast: Callable[[Any], bool] | None = registry.fast_check("instruction", self._version)
        self._split: PropertyChecks | None = registry.fast_properties("instruction", self._version)
        #: a party's CSV fields → the party a record with those fields was parsed into
        self._parties: dict[tuple[Any, ...], Party] = {}
        self.mapping = mapping
        self._now = now

    @property
    def now(self) -> datetime:
        """The instant no row may be created after (history only)."""
        return self._now

    def __call__(self, line: int, record: dict[str, Any] | str) -> Parsed | Rejection:
        if isinstance(record, str):
            return Rejection(line, "", record)
        keys: _PartyKeys | None = None
        plain = False
        if "debtor" not in record:  # flat: a CSV row (or a JSON record in the CSV's columns)
            doc = instruction_doc(record)
            extra = record
            debtor = tuple(map(record.get, _PARTY_FIELDS["debtor"]))
            creditor = tuple(map(record.get, _PARTY_FIELDS["creditor"]))
            if {*map(type, debtor), *map(type, creditor)} <= _TEXT_OR_NONE:
                keys = (debtor, creditor)
            # all of a CSV row's fields searched at once (the document's strings are among them, or constants)
            values = record.values()
            plain = {*map(type, values)} <= _TEXT and not has_control_characters("".join(values))
        else:
            extra = {k: record.pop(k) for k in ("status", "created_at", "status_at") if k in record}
            doc = record
        reference = str(doc.get("reference", ""))[:35]
        try:
            return self._parse(line, doc, extra, reference, keys, plain)
        except ValueError as exc:
            return Rejection(line, reference, str(exc))

    def _known_parties(self, doc: dict[str, Any], keys: _PartyKeys | None) -> tuple[Party, Party] | None:
        """The parsed parties of a flat record whose parties passed before, if the rest of it fits the contract."""
        if keys is None or self._split is None:
            return None
        debtor = self._parties.get(keys[0])
        creditor = self._parties.get(keys[1])
        if debtor is None or creditor is None or not self._split(doc, _PARTIES):
            return None
        return debtor, creditor

    def _parse(
        self,
        line: int,
        doc: dict[str, Any],
        extra: Mapping[str, Any],
        reference: str,
        keys: _PartyKeys | None = None,
        plain: bool = False,
    ) -> Parsed:
        parties = self._known_parties(doc, keys)
        if parties is None and (self._fast is None or not self._fast(doc)):
            errors = self._registry.errors("instruction", doc, self._version)
            if errors:
                first = errors[0]
                raise ValueError(f"{first.pointer or '/'}: {first.message}")
        try:
            data = parse_instruction(doc, parties, plain_text=plain)
        except DomainError as exc:
            first = exc.errors[0]
            raise ValueError(f"{first.pointer or '/'}: {first.message}") from None
        if parties is None and keys is not None:
            if len(self._parties) > 100_000:
                self._parties.clear()
            self._parties[keys[0]] = data.debtor
            self._parties[keys[1]] = data.creditor
        word = str(extra.get("status", ""))
        status = self.mapping.statuses.get(word.lower(), word.lower())
        if status not in FINAL_STATUSES:
            raise ValueError(
                f"status {word[:20]!r} is not final ({', '.join(sorted(FINAL_STATUSES))}; map it in the mapping file)"
            )
        created_at = _instant(extra.get("created_at"), "created_at", self.mapping.date_format)
        status_at = (
            _instant(extra["status_at"], "status_at", self.mapping.date_format)
            if extra.get("status_at")
            else created_at
        )
        if created_at > self._now:
            raise ValueError("created_at is in the future: history only")
        if status_at < created_at:
            raise ValueError("status_at is before created_at")
        return Parsed(line, data, status, created_at, status_at, _content_hash(data, created_at))


# -- storing ------------------------------------------------------------------------------------------


@dataclass
class Checkpoint:
    """How far one file got for one business unit (one ``migration_checkpoints`` row)."""

    rows_done: int = 0
    imported: int = 0
    duplicates: int = 0
    rejected: int = 0
    finished: bool = False


async def read_checkpoint(conn: AsyncConnection, business_unit: str, sha256: str) -> Checkpoint:
    t = migration_checkpoints
    row = (
        await conn.execute(
            select(t.c.rows_done, t.c.imported, t.c.duplicates, t.c.rejected, t.c.finished).where(
                t.c.business_unit == business_unit, t.c.file_sha256 == sha256
            )
        )
    ).first()
    return Checkpoint(*row) if row else Checkpoint()


#: the ``migrated_payments`` columns of a staged row, in its order (``imported_at`` added when it is written)
ROW_COLUMNS: tuple[str, ...] = (
    "business_unit",
    "reference",
    "content_hash",
    "type",
    "amount",
    "amount_minor",
    "currency",
    "status",
    "debtor_name",
    "debtor_key",
    "creditor_name",
    "creditor_key",
    "masked",
    "remittance_information",
    "created_at",
    "status_at",
    "source_file",
    "line",
    "imported_at",
)
_COLUMN = {name: i for i, name in enumerate(ROW_COLUMNS)}

#: A valid historical payment as it will be stored: its reference, its content hash, its
#: ``migrated_payments`` row as the driver takes it (``ROW_COLUMNS`` but ``imported_at``;
#: ``stage``) and, settled, when it was made (what it teaches the risk history: ``lessons``).
#: Built where the row was checked (a worker thread or process), so that the writer only
#: de-duplicates and writes; plain tuples of plain values, cheap to send between processes
#: (a named tuple or a dict per row costs several microseconds more each way).
Staged = tuple[str, str, tuple[Any, ...], datetime | None]
_REFERENCE, _CONTENT_HASH, _ROW, _SETTLED_AT = 0, 1, 2, 3


@dataclass(frozen=True, slots=True)
class DriverValues:
    """How a staged row's instants and masks are sent to the database's driver (``bulk.bind_converter``).

    Module-level functions, so a checking process gets them and stages rows ready to insert.
    """

    instant: Callable[[datetime], Any]
    masked: Callable[[dict[str, Any]], Any]

    @classmethod
    def of(cls, dialect: Dialect) -> DriverValues:
        t = migrated_payments
        return cls(bind_converter(t.c.created_at, dialect), bind_converter(t.c.masked, dialect))


async def known(conn: AsyncConnection, business_unit: str, chunk: Sequence[Staged]) -> tuple[set[str], set[str]]:
    """References and content hashes of ``chunk`` already imported for the business unit."""
    dialect = conn.dialect
    unit = placeholders(dialect, 1)
    ids = placeholders(dialect, len(chunk), 2)
    # two lookups in one round trip, each on its unique index (an OR of both makes SQLite scan the table)
    references, hashes = await fetch_all(
        conn,
        [
            Query(
                migrated_payments,
                (name,),
                f"WHERE business_unit = {unit} AND {name} IN ({ids})",
                (business_unit, *values),
            )
            for name, values in (
                ("reference", [p[_REFERENCE] for p in chunk]),
                ("content_hash", [p[_CONTENT_HASH] for p in chunk]),
            )
        ],
    )
    return {r[0] for r in references}, {r[0] for r in hashes}


def fresh(chunk: Sequence[Staged], refs: set[str], hashes: set[str]) -> tuple[list[Staged], list[Staged]]:
    """Split ``chunk`` into payments new to ``refs``/``hashes`` and duplicates; adds the new ones to both."""
    new: list[Staged] = []
    dup: list[Staged] = []
    for p in chunk:
        reference, content_hash = p[_REFERENCE], p[_CONTENT_HASH]
        if reference in refs or content_hash in hashes:
            dup.append(p)
        else:
            refs.add(reference)
            hashes.add(content_hash)
            new.append(p)
    return new, dup


class AccountKeys:
    """Risk fingerprints of accounts and normalised names, remembered: history pays the same accounts again."""

    def __init__(self, fingerprints: Fingerprinter, driver: DriverValues | None = None) -> None:
        self._fingerprints = fingerprints
        self._driver = driver
        self._keys: dict[Account, str] = {}
        self._names: dict[str, str] = {}
        self._masks: dict[tuple[Account, Account], Any] = {}

    def key(self, account: Account) -> str:
        found = self._keys.get(account)
        if found is None:
            if len(self._keys) > 100_000:
                self._keys.clear()
            found = self._keys[account] = self._fingerprints.account(account.as_dict())
        return found

    def masked(self, debtor: Account, creditor: Account) -> Any:
        """Both accounts' masks for display, ``{"debtor": …, "creditor": …}``, as the driver takes them."""
        pair = (debtor, creditor)
        found = self._masks.get(pair)
        if found is None:
            if len(self._masks) > 100_000:
                self._masks.clear()
            masks = {"debtor": debtor.masked(), "creditor": creditor.masked()}
            found = self._masks[pair] = self._driver.masked(masks) if self._driver else masks
        return found

    def name(self, name: str) -> str:
        found = self._names.get(name)
        if found is None:
            if len(self._names) > 100_000:
                self._names.clear()
            found = self._names[name] = normalise_name(name)
        return found


_SETTLED = str(Status.SETTLED)


def lessons(staged: Sequence[Staged], keys: AccountKeys) -> Lessons:
    """What the settled payments among ``staged`` teach the risk history (``History.learn_all``), in their order.

    Built from the stored rows, so the writer builds the same from a chunk's fresh rows when
    the chunk held duplicates (which teach nothing). History teaches no duplicate detection
    (docs/go-live.md), the one thing that would read the remittance.
    """
    out = Lessons()
    add, name = out.add, keys.name
    unit, debtor, creditor, currency, minor, creditor_name = (
        _COLUMN[c] for c in ("business_unit", "debtor_key", "creditor_key", "currency", "amount_minor", "creditor_name")
    )
    for p in staged:
        at = p[_SETTLED_AT]
        if at is not None:
            row = p[_ROW]
            add(row[unit], row[debtor], row[creditor], row[currency], row[minor], at, name(row[creditor_name]))
    return out


def stage(p: Parsed, business_unit: str, source_file: str, keys: AccountKeys, driver: DriverValues) -> Staged:
    """The row ``p`` is stored as (``ROW_COLUMNS`` without ``imported_at``, as the driver takes it; see ``Staged``)."""
    data = p.data
    money = data.money
    debtor, creditor = data.debtor.account, data.creditor.account
    instant = driver.instant
    created_at = instant(p.created_at)
    row = (
        business_unit,
        data.reference,
        p.content_hash,
        data.type,
        str(money.amount),
        money.minor,
        money.currency,
        p.status,
        data.debtor.name,
        keys.key(debtor),
        data.creditor.name,
        keys.key(creditor),
        keys.masked(debtor, creditor),
        data.remittance_information,
        created_at,
        created_at if p.status_at is p.created_at else instant(p.status_at),
        source_file,
        p.line,
    )
    return data.reference, p.content_hash, row, p.created_at if p.status == _SETTLED else None


async def store_chunk(
    conn: AsyncConnection,
    business_unit: str,
    source: FileSource,
    new: Sequence[Staged],
    learned: Lessons,
    checkpoint: Checkpoint,
    now: datetime,
) -> None:
    """Write one chunk's new payments, what they teach the risk history (``lessons`` of them), and the checkpoint.

    The caller runs it in one transaction: all three commit together or not at all.
    """
    if new:
        imported_at = bind_converter(migrated_payments.c.imported_at, conn.dialect)(now)
        rows = [(*p[_ROW], imported_at) for p in new]
        await insert_values(conn, migrated_payments, ROW_COLUMNS, rows)
    await learn_lessons(conn, learned, now)
    row = {
        "business_unit": business_unit,
        "file_sha256": source.sha256,
        "file_name": source.path.name[-255:],
        "format": source.format,
        "rows_done": checkpoint.rows_done,
        "imported": checkpoint.imported,
        "duplicates": checkpoint.duplicates,
        "rejected": checkpoint.rejected,
        "finished": checkpoint.finished,
        "updated_at": now,
    }
    await write_all(conn, [Write(migration_checkpoints, [row], ("business_unit", "file_sha256"))])


# -- checking, in a thread or a process ---------------------------------------------------------------

#: a checked chunk: records consumed, the valid ones staged, the rejected ones, what the valid ones teach
Checked = tuple[int, list[Staged], list[Rejection], Lessons]
#: files of at least this many records are checked in a worker process (its start costs about a second)
PROCESS_MIN_RECORDS = 50_000
#: rows per transaction and checkpoint, by database: the risk history a chunk teaches is loaded and written per
#: supplier, once per chunk, so larger chunks cost less per row; PostgreSQL's look-ups of a chunk go as one
#: statement, under its limit of 32,767 parameters
CHUNK_SIZES = {"sqlite": 10_000}
DEFAULT_CHUNK_SIZE = 5000


def chunk_size_for(dialect_name: str) -> int:
    """The default rows per transaction of an import into this kind of database (``CHUNK_SIZES``)."""
    return CHUNK_SIZES.get(dialect_name, DEFAULT_CHUNK_SIZE)


class _Checker:
    """Reads a file's records chunk by chunk and checks and stages each (one chunk per ``next_chunk``)."""

    def __init__(
        self,
        records: Iterator[Record],
        validator: Validator,
        keys: AccountKeys,
        business_unit: str,
        source_file: str,
        chunk_size: int,
        driver: DriverValues,
    ) -> None:
        self._driver = driver
        self._records = records
        self._validator = validator
        self._keys = keys
        self._business_unit = business_unit
        self._source_file = source_file
        self._chunk_size = chunk_size

    def next_chunk(self) -> Checked | None:
        batch = list(islice(self._records, self._chunk_size))
        if not batch:
            return None
        staged: list[Staged] = []
        rejected: list[Rejection] = []
        validator, keys, unit, source_file = self._validator, self._keys, self._business_unit, self._source_file
        driver = self._driver
        for line, record in batch:
            outcome = validator(line, record)
            if isinstance(outcome, Rejection):
                rejected.append(outcome)
            else:
                staged.append(stage(outcome, unit, source_file, keys, driver))
        return len(batch), staged, rejected, lessons(staged, keys)


_worker_checker: list[_Checker] = []  # the checker of this worker process (``_start_worker``)


def _start_worker(
    source: FileSource,
    mapping: ColumnMapping,
    now: datetime,
    skip: int,
    fingerprints: Fingerprinter,
    business_unit: str,
    chunk_size: int,
    driver: DriverValues,
    parent: int,
) -> None:
    """A checking process's initializer: its own reader of the file from ``skip`` on, and its own validator.

    ``parent``: the importing process's id (given, not asked: it may have died before this ran).
    """
    threading.Thread(target=_exit_with_parent, args=(parent,), daemon=True).start()
    records = read_records(source, mapping, skip)
    validator = Validator(mapping, now)
    keys = AccountKeys(fingerprints, driver)
    _worker_checker.append(_Checker(records, validator, keys, business_unit, source.sha256, chunk_size, driver))


def _exit_with_parent(parent: int) -> None:
    """End this checking process once its parent is gone (a killed import: its pool's pipes never close)."""
    while True:
        if os.getppid() != parent:
            os._exit(1)  # only the file was read here: nothing to clean up
        time.sleep(1)


def _worker_next_chunk() -> Checked | None:
    return _worker_checker[0].next_chunk()


# -- one file -----------------------------------------------------------------------------------------


@dataclass
class FileResult:
    """What importing one file did (``checkpoint``: counts over every run of it) and this run's rejections."""

    source: FileSource
    checkpoint: Checkpoint
    state: str  # imported | resumed | already imported | dry run
    rejections: list[Rejection] = field(default_factory=list)


def _no_progress(done: int, total: int | None = None) -> None:
    return None


async def import_file(
    engine: AsyncEngine,
    business_unit: str,
    source: FileSource,
    validator: Validator,
    fingerprints: Fingerprinter,
    *,
    chunk_size: int | None = None,
    dry_run: bool = False,
    progress: Callable[..., None] = _no_progress,
    clock: Callable[[], datetime] = system_clock,
    reader: RecordReader | None = None,
    processes: bool | None = None,
) -> FileResult:
    """Import one file, continuing from its checkpoint; a dry run reads it all and writes nothing.

    ``chunk_size``: rows per transaction and checkpoint (``None``: ``chunk_size_for`` the database).
    ``progress(done, total=None)`` is called with the records consumed so far after each chunk.
    The next chunk is read, checked and staged while one is written: in a worker thread, or
    with ``processes`` in a worker process (the second core; ``None``: for files of
    ``PROCESS_MIN_RECORDS`` or more on a machine with two cores or more). The worker process
    reads the file itself, so a ``reader`` other than ``read_records`` means a thread.
    The process is started with ``spawn``: a script calling this must guard its entry point
    (``if __name__ == "__main__":``), as the CLI and ``bench/migrate.py`` do.
    """
    chunk_size = chunk_size or chunk_size_for(engine.dialect.name)
    async with engine.connect() as conn:
        stored = await read_checkpoint(conn, business_unit, source.sha256)
    if stored.finished and not dry_run:
        progress(stored.rows_done, stored.rows_done)
        return FileResult(source, stored, "already imported")
    checkpoint = Checkpoint() if dry_run else stored
    state = "dry run" if dry_run else ("resumed" if stored.rows_done else "imported")
    result = FileResult(source, checkpoint, state)
    progress(checkpoint.rows_done)
    # a dry run writes nothing, so it remembers the run's references itself; a real run finds them in the table
    run_refs: set[str] = set()
    run_hashes: set[str] = set()
    writer_keys = AccountKeys(fingerprints)  # normalised names, for the lessons of a chunk that held duplicates
    driver = DriverValues.of(engine.dialect)
    if processes is None:
        processes = source.records >= PROCESS_MIN_RECORDS and (os.cpu_count() or 1) >= 2
    pool: Executor | None = None
    if processes and reader is None:
        pool = ProcessPoolExecutor(
            1,
            mp_context=multiprocessing.get_context("spawn"),  # a fork would copy the event loop and its threads
            initializer=_start_worker,
            initargs=(
                source,
                validator.mapping,
                validator.now,
                checkpoint.rows_done,
                fingerprints,
                business_unit,
                chunk_size,
                driver,
                os.getpid(),
            ),
        )
        loop = asyncio.get_running_loop()

        def check_next() -> asyncio.Future[Checked | None]:
            return loop.run_in_executor(pool, _worker_next_chunk)

    else:
        records = (reader or read_records)(source, validator.mapping, checkpoint.rows_done)
        checker = _Checker(
            records, validator, AccountKeys(fingerprints, driver), business_unit, source.sha256, chunk_size, driver
        )

        def check_next() -> asyncio.Future[Checked | None]:
            return asyncio.ensure_future(asyncio.to_thread(checker.next_chunk))

    checking = check_next()
    try:
        while (checked := await checking) is not None:
            count, staged, rejected, taught = checked
            # the next chunk is read and checked while this one is written: SQLite's work runs outside the GIL
            checking = check_next()
            result.rejections += rejected
            checkpoint.rows_done += count
            checkpoint.rejected += len(rejected)
            if dry_run:
                async with engine.connect() as conn:
                    refs, hashes = await known(conn, business_unit, staged) if staged else (set(), set())
                run_refs |= refs
                run_hashes |= hashes
                new, dup = fresh(staged, run_refs, run_hashes)
                checkpoint.imported += len(new)
                checkpoint.duplicates += len(dup)
            else:
                async with engine.begin() as conn:
                    if conn.dialect.name == "sqlite":
                        # the content-hash index takes random keys: with SQLite's default 2 MB page cache each
                        # insert and look-up rereads its pages (a quarter of the write time at 1M rows)
                        await conn.exec_driver_sql(_SQLITE_CACHE)
                    refs, hashes = await known(conn, business_unit, staged) if staged else (set(), set())
                    new, dup = fresh(staged, refs, hashes)
                    checkpoint.imported += len(new)
                    checkpoint.duplicates += len(dup)
                    # duplicates teach nothing: the lessons of the fresh rows alone (the checker's are of all)
                    learned = lessons(new, writer_keys) if dup else taught
                    await store_chunk(conn, business_unit, source, new, learned, checkpoint, clock())
            progress(checkpoint.rows_done)
    finally:
        if not checking.done():
            with contextlib.suppress(Exception):
                await checking  # a worker cannot be cancelled: let it finish its chunk, unused
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
    if not dry_run:
        checkpoint.finished = True
        async with engine.begin() as conn:
            await store_chunk(conn, business_unit, source, [], Lessons(), checkpoint, clock())
    progress(checkpoint.rows_done, checkpoint.rows_done)
    return result
