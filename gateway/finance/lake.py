"""Data-lake export: incremental Parquet files, Hive-partitioned by date, every row exactly once.

A *dataset* (``instructions``, ``instruction_events``, ``ledger_entries``,
``ledger_postings``, ``collections``, ``collection_events``, ``recon_matches``,
``recon_match_payments``) is exported in key order. Its key is commit-ordered: the
position in the audit hash chains (``gateway.store.audit``), which a transaction
takes under the chain head's lock and keeps until it commits. So once a key is
visible every smaller key is too, and a watermark (the last key exported, kept
in ``export_watermarks``) never skips a row a slower transaction commits later
— no time lag or guess is needed (docs/data-export.md).

A run exports each dataset in chunks of ``chunk_rows`` keys. Each chunk becomes
one file per date (``dataset=X/date=YYYY-MM-DD/part-<first>-<last>.parquet``):
written under a temporary name, fsynced, renamed; then, in one transaction,
the files are recorded in ``export_files`` and the watermark moves. A run killed
anywhere leaves either temporary files or files beyond the watermark; the next
run deletes both and writes the chunk again from the watermark. At the end a
manifest (JSON) lists the files recorded since the previous manifest, with row
counts, checksums and the watermarks.

A new dataset is one :class:`Dataset` definition, added with :func:`register_dataset`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import re
import sqlite3
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from sqlalchemy import Boolean, Float, Integer, Select, and_, func, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from gateway.domain.clock import Clock
from gateway.domain.money import minor_units
from gateway.store.audit import COLLECTION_EVENT_FIELDS, EVENT_FIELDS
from gateway.store.sqlite_thread import sqlite_thread
from gateway.store.tables import (
    collection_events,
    collections,
    export_files,
    instruction_events,
    instructions,
    ledger_entries,
    ledger_postings,
    recon_match_payments,
    recon_matches,
)
from gateway.store.watermarks import ExportError, advance_watermark, read_watermark, watermarks

__all__ = [
    "DATASETS",
    "MANIFEST",
    "MANIFEST_VERSION",
    "Column",
    "Dataset",
    "DatasetResult",
    "ExportError",
    "Exporter",
    "RunResult",
    "advance_watermark",
    "read_watermark",
    "register_dataset",
    "watermarks",
]

MANIFEST_VERSION = 1
MANIFEST = "_manifest"  # the watermark of the files already listed in a manifest
_PART = re.compile(r"^part-(\d{12})-(\d{12})\.parquet$")


@dataclass(frozen=True)
class Column:
    """One Parquet column: its name (the label the query selects), Arrow type, documentation, converter."""

    name: str
    type: pa.DataType
    doc: str
    convert: Callable[[Any], Any] | None = None


@dataclass(frozen=True)
class Dataset:
    """What to export and how: see docs/data-export.md ("Adding a dataset").

    ``keys`` selects the commit-ordered key (one column, a key may stand for several
    rows, e.g. an entry's postings); ``rows(lo, hi)`` selects the rows with a key in
    ``(lo, hi]``: a column labelled ``_key``, one labelled ``_date`` (the partition
    date, a datetime or date) and one per :class:`Column`, in any order.
    """

    name: str
    version: int
    columns: tuple[Column, ...]
    keys: Callable[[], Select[Any]]
    rows: Callable[[int, int], Select[Any]]
    key_doc: str

    @property
    def schema(self) -> pa.Schema:
        meta = {"gateway.dataset": self.name, "gateway.schema_version": str(self.version)}
        return pa.schema([pa.field(c.name, c.type) for c in self.columns], metadata=meta)


DATASETS: dict[str, Dataset] = {}


def register_dataset(dataset: Dataset) -> Dataset:
    """Add a dataset to the export (its name must be new)."""
    if dataset.name in DATASETS or dataset.name.startswith(("_", "sink:")):
        raise ExportError(f"dataset name {dataset.name!r} is taken or reserved")
    DATASETS[dataset.name] = dataset
    return dataset


@lru_cache(maxsize=256)
def _minor_units(currency: str) -> int:
    return minor_units(currency)


def _json_text(value: Any) -> str | None:
    if value is None or isinstance(value, str):  # SQLite hands JSON over as its text
        return value
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


_TS = pa.timestamp("us", tz="UTC")
_S, _I64, _I32, _I8 = pa.string(), pa.int64(), pa.int32(), pa.int8()

# -- the built-in datasets -----------------------------------------------------------------------

_first_event = instruction_events.alias("first_event")

register_dataset(
    Dataset(
        name="instructions",
        version=1,
        key_doc="the audit-chain position (chain_seq) of the instruction's first event: commit-ordered",
        columns=(
            Column("id", _S, "the instruction id"),
            Column("business_unit_id", _S, "the business unit that sent it"),
            Column("reference", _S, "the business unit's reference (unique per business unit)"),
            Column("type", _S, "the payment type (e.g. credit_transfer)"),
            Column("amount_minor", _I64, "the amount in the currency's minor units (EUR cents)"),
            Column("currency", _S, "ISO 4217 code"),
            Column("minor_units", _I8, "the currency's decimals: amount = amount_minor / 10^minor_units"),
            Column("debtor_name", _S, "the payer's name"),
            Column("debtor_agent", _S, "the payer's BIC, if given"),
            Column("creditor_name", _S, "the payee's name"),
            Column("creditor_agent", _S, "the payee's BIC, if given"),
            Column("purpose", _S, "ISO 20022 purpose code, if given"),
            Column("requested_execution_date", pa.date32(), "the requested execution date, if given"),
            Column("urgency", _S, "the urgency the business unit asked for"),
            Column("channel", _S, "the channel asked for, if any"),
            Column("contract_version", _S, "the contract version it was sent in"),
            Column("metadata", _S, "the business unit's metadata, as JSON text", _json_text),
            Column("submitted_by", _S, "the API key that posted it"),
            Column("created_at", _TS, "when it was accepted (UTC)"),
        ),
        keys=lambda: select(instruction_events.c.chain_seq.label("k")).where(instruction_events.c.sequence == 1),
        rows=lambda lo, hi: (
            select(
                _first_event.c.chain_seq.label("_key"),
                instructions.c.created_at.label("_date"),
                instructions.c.id,
                instructions.c.business_unit_id,
                instructions.c.reference,
                instructions.c.type,
                instructions.c.amount_minor,
                instructions.c.currency,
                instructions.c.currency.label("minor_units"),
                instructions.c.debtor_name,
                instructions.c.debtor_agent,
                instructions.c.creditor_name,
                instructions.c.creditor_agent,
                instructions.c.purpose,
                instructions.c.requested_execution_date,
                instructions.c.urgency,
                instructions.c.channel,
                instructions.c.contract_version,
                instructions.c.metadata,
                instructions.c.submitted_by,
                instructions.c.created_at,
            )
            .select_from(_first_event.join(instructions, instructions.c.id == _first_event.c.instruction_id))
            .where(_first_event.c.sequence == 1, _first_event.c.chain_seq > lo, _first_event.c.chain_seq <= hi)
            .order_by(_first_event.c.chain_seq)
        ),
    )
)

register_dataset(
    Dataset(
        name="instruction_events",
        version=1,
        key_doc="the event's audit-chain position (chain_seq): commit-ordered",
        columns=(
            Column("chain_seq", _I64, "the event's place in the audit chain (unique, increasing)"),
            Column("instruction_id", _S, "the instruction"),
            Column("sequence", _I32, "the event's place in the instruction's history (1, 2, …)"),
            Column("previous_status", _S, "the status before, if any"),
            Column("status", _S, "the status it reports"),
            Column("applied", pa.bool_(), "whether it changed the instruction's status"),
            Column("outcome", _S, "applied, or why not (duplicate, stale, illegal, …)"),
            Column("source", _S, "who reported it (api, dispatcher, callback, poll, …)"),
            Column("adapter", _S, "the partner's adapter, if any"),
            Column("partner_reference", _S, "the partner's reference, if any"),
            Column("partner_status", _S, "the partner's own status code, if any"),
            Column("reason_code", _S, "the reason code, if any"),
            Column("reason", _S, "the reason text, if any"),
            Column("occurred_at", _TS, "when it happened (UTC)"),
            Column("actor", _S, "who decided (an API key id), for human decisions"),
        ),
        keys=lambda: select(instruction_events.c.chain_seq.label("k")),
        rows=lambda lo, hi: (
            select(
                instruction_events.c.chain_seq.label("_key"),
                instruction_events.c.occurred_at.label("_date"),
                *(instruction_events.c[n] for n in ("chain_seq", *EVENT_FIELDS)),
            )
            .where(instruction_events.c.chain_seq > lo, instruction_events.c.chain_seq <= hi)
            .order_by(instruction_events.c.chain_seq)
        ),
    )
)

register_dataset(
    Dataset(
        name="ledger_entries",
        version=1,
        key_doc="the entry id (its position in the journal's audit chain): commit-ordered",
        columns=(
            Column("id", _I64, "the entry id (its place in the journal)"),
            Column("kind", _S, "payment, or the posting rule's event (fee, …)"),
            Column("memo", _S, "the memo"),
            Column("instruction_id", _S, "the instruction it books, if any"),
            Column("business_unit", _S, "the business unit, if any"),
            Column("booked_at", _TS, "when it was booked (UTC)"),
            Column("original_at", _TS, "when the event happened, if booked later"),
            Column("reverses", _I64, "the entry it corrects, if any"),
        ),
        keys=lambda: select(ledger_entries.c.id.label("k")),
        rows=lambda lo, hi: (
            select(
                ledger_entries.c.id.label("_key"),
                ledger_entries.c.booked_at.label("_date"),
                *(
                    ledger_entries.c[n]
                    for n in ("id", "kind", "memo", "instruction_id", "business_unit", "booked_at", "original_at")
                ),
                ledger_entries.c.reverses,
            )
            .where(ledger_entries.c.id > lo, ledger_entries.c.id <= hi)
            .order_by(ledger_entries.c.id)
        ),
    )
)

register_dataset(
    Dataset(
        name="ledger_postings",
        version=1,
        key_doc="the id of the posting's entry (all of an entry's postings are in one file)",
        columns=(
            Column("entry_id", _I64, "the entry"),
            Column("line", _I32, "the posting's line in the entry (1, 2, …)"),
            Column("account", _S, "the ledger account"),
            Column("currency", _S, "ISO 4217 code"),
            Column("amount_minor", _I64, "signed minor units: a debit positive, a credit negative"),
            Column("minor_units", _I8, "the currency's decimals: amount = amount_minor / 10^minor_units"),
        ),
        keys=lambda: select(ledger_entries.c.id.label("k")),
        rows=lambda lo, hi: (
            select(
                ledger_postings.c.entry_id.label("_key"),
                ledger_entries.c.booked_at.label("_date"),
                ledger_postings.c.entry_id,
                ledger_postings.c.line,
                ledger_postings.c.account,
                ledger_postings.c.currency,
                ledger_postings.c.amount.label("amount_minor"),
                ledger_postings.c.currency.label("minor_units"),
            )
            .select_from(ledger_postings.join(ledger_entries, ledger_entries.c.id == ledger_postings.c.entry_id))
            .where(ledger_postings.c.entry_id > lo, ledger_postings.c.entry_id <= hi)
            .order_by(ledger_postings.c.entry_id, ledger_postings.c.line)
        ),
    )
)

_first_collection_event = collection_events.alias("first_collection_event")

register_dataset(
    Dataset(
        name="collections",
        version=1,
        key_doc="the collections audit-chain position (chain_seq) of the collection's first event: commit-ordered",
        columns=(
            Column("id", _S, "the collection id"),
            Column("business_unit_id", _S, "the business unit that sent it"),
            Column("reference", _S, "the business unit's reference (unique per business unit)"),
            Column("kind", _S, "card_charge, wallet_charge or direct_debit"),
            Column("amount_minor", _I64, "the amount in the currency's minor units"),
            Column("currency", _S, "ISO 4217 code"),
            Column("minor_units", _I8, "the currency's decimals: amount = amount_minor / 10^minor_units"),
            Column("payer_name", _S, "the payer's name (the instrument is never exported)"),
            Column("due_date", pa.date32(), "direct debits: the debit day asked for, if any"),
            Column("description", _S, "what the payer sees, if given"),
            Column("capture", _S, "card charges: auto or manual"),
            Column("channel", _S, "the channel asked for, if any"),
            Column("contract_version", _S, "the contract version it was sent in"),
            Column("metadata", _S, "the business unit's metadata, as JSON text", _json_text),
            Column("submitted_by", _S, "the API key that posted it"),
            Column("created_at", _TS, "when it was accepted (UTC)"),
        ),
        keys=lambda: select(collection_events.c.chain_seq.label("k")).where(collection_events.c.sequence == 1),
        rows=lambda lo, hi: (
            select(
                _first_collection_event.c.chain_seq.label("_key"),
                collections.c.created_at.label("_date"),
                collections.c.id,
                collections.c.business_unit_id,
                collections.c.reference,
                collections.c.kind,
                collections.c.amount_minor,
                collections.c.currency,
                collections.c.currency.label("minor_units"),
                collections.c.payer_name,
                collections.c.due_date,
                collections.c.description,
                collections.c.capture,
                collections.c.channel,
                collections.c.contract_version,
                collections.c.metadata,
                collections.c.submitted_by,
                collections.c.created_at,
            )
            .select_from(
                _first_collection_event.join(collections, collections.c.id == _first_collection_event.c.collection_id)
            )
            .where(
                _first_collection_event.c.sequence == 1,
                _first_collection_event.c.chain_seq > lo,
                _first_collection_event.c.chain_seq <= hi,
            )
            .order_by(_first_collection_event.c.chain_seq)
        ),
    )
)

register_dataset(
    Dataset(
        name="collection_events",
        version=1,
        key_doc="the event's collections audit-chain position (chain_seq): commit-ordered",
        columns=(
            Column("chain_seq", _I64, "the event's place in the collections audit chain (unique, increasing)"),
            Column("collection_id", _S, "the collection"),
            Column("sequence", _I32, "the event's place in the collection's history (1, 2, …)"),
            Column("previous_status", _S, "the status before, if any"),
            Column("status", _S, "the status it reports"),
            Column("applied", pa.bool_(), "whether it changed the collection's status"),
            Column("outcome", _S, "applied, or why not (duplicate, stale, illegal, …)"),
            Column("source", _S, "who reported it (api, dispatcher, callback, poll, …)"),
            Column("adapter", _S, "the partner's adapter, if any"),
            Column("partner_reference", _S, "the partner's reference, if any"),
            Column("partner_status", _S, "the partner's own status code, if any"),
            Column("reason_code", _S, "the reason code (e.g. an R-transaction's AM04), if any"),
            Column("reason", _S, "the reason text, if any"),
            Column("occurred_at", _TS, "when it happened (UTC)"),
            Column("actor", _S, "who decided (an API key id), for human decisions"),
        ),
        keys=lambda: select(collection_events.c.chain_seq.label("k")),
        rows=lambda lo, hi: (
            select(
                collection_events.c.chain_seq.label("_key"),
                collection_events.c.occurred_at.label("_date"),
                *(collection_events.c[n] for n in ("chain_seq", *COLLECTION_EVENT_FIELDS)),
            )
            .where(collection_events.c.chain_seq > lo, collection_events.c.chain_seq <= hi)
            .order_by(collection_events.c.chain_seq)
        ),
    )
)

register_dataset(
    Dataset(
        name="recon_matches",
        version=1,
        key_doc="the match id (a run numbers its matches after the largest committed one, so ids follow commits)",
        columns=(
            Column("id", _I64, "the match id"),
            Column("source", _S, "the partner (adapter) whose statement lines it matches"),
            Column("status", _S, "confirmed, suggested or rejected when exported (later changes: the ledger)"),
            Column("rule", _S, "the rule of config/reconciliation.yaml that found it"),
            Column("currency", _S, "ISO 4217 code"),
            Column("lines_minor", _I64, "the statement lines' total, in minor units"),
            Column("payments_minor", _I64, "the payments' total, in minor units"),
            Column("difference_minor", _I64, "lines - payments: a fee, FX or a mismatch"),
            Column("minor_units", _I8, "the currency's decimals: amount = amount_minor / 10^minor_units"),
            Column("explains", _S, "fee or fx: what the rule says the difference is, if anything"),
            Column("matched_at", _TS, "when the run matched them (UTC)"),
        ),
        keys=lambda: select(recon_matches.c.id.label("k")),
        rows=lambda lo, hi: (
            select(
                recon_matches.c.id.label("_key"),
                recon_matches.c.matched_at.label("_date"),
                *(
                    recon_matches.c[n]
                    for n in (
                        "id",
                        "source",
                        "status",
                        "rule",
                        "currency",
                        "lines_minor",
                        "payments_minor",
                        "difference_minor",
                    )
                ),
                recon_matches.c.currency.label("minor_units"),
                recon_matches.c.explains,
                recon_matches.c.matched_at,
            )
            .where(recon_matches.c.id > lo, recon_matches.c.id <= hi)
            .order_by(recon_matches.c.id)
        ),
    )
)

register_dataset(
    Dataset(
        name="recon_match_payments",
        version=1,
        key_doc="the match id (all of a match's payments are in one file)",
        columns=(
            Column("match_id", _I64, "the match"),
            Column("instruction_id", _S, "a payment (or collection) the match settles"),
        ),
        keys=lambda: select(recon_matches.c.id.label("k")),
        rows=lambda lo, hi: (
            select(
                recon_match_payments.c.match_id.label("_key"),
                recon_matches.c.matched_at.label("_date"),
                recon_match_payments.c.match_id,
                recon_match_payments.c.instruction_id,
            )
            .select_from(
                recon_match_payments.join(recon_matches, recon_matches.c.id == recon_match_payments.c.match_id)
            )
            .where(recon_match_payments.c.match_id > lo, recon_match_payments.c.match_id <= hi)
            .order_by(recon_match_payments.c.match_id, recon_match_payments.c.instruction_id)
        ),
    )
)

#: columns whose values are converted on the way out (currency → its minor units)
_CONVERT: Mapping[str, Callable[[Any], Any]] = {"minor_units": _minor_units}


# -- watermarks ------------------------------------------------------------------------------------


# -- files -------------------------------------------------------------------------------------------


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_durably(path: Path, write: Callable[[Path], None]) -> tuple[int, str]:
    """Write through a temporary name, fsync, rename, fsync the folder; the file's (bytes, sha256)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    write(tmp)
    digest = hashlib.sha256()
    with tmp.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
        os.fsync(f.fileno())
    size = tmp.stat().st_size
    os.replace(tmp, path)
    _fsync_dir(path.parent)
    return size, digest.hexdigest()


def _part_name(lo: int, hi: int) -> str:
    return f"part-{lo:012d}-{hi:012d}.parquet"


@dataclass
class _File:
    dataset: str
    path: str
    partition_date: date
    first_key: int
    last_key: int
    rows: int
    bytes: int
    sha256: str
    schema_version: int


@dataclass
class DatasetResult:
    """What a run exported of one dataset."""

    name: str
    schema_version: int
    from_key: int
    to_key: int
    rows: int = 0
    files: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)  # left behind by a killed run, deleted before writing


@dataclass
class RunResult:
    """What a run did: per dataset, and the manifest it wrote (None if nothing new)."""

    datasets: list[DatasetResult]
    manifest: Path | None

    @property
    def rows(self) -> int:
        return sum(d.rows for d in self.datasets)


def _no_crash(stage: str) -> None:
    return None


#: ``progress(dataset, rows_done, rows_total)`` after each chunk
Progress = Callable[[str, int, int], None]


#: a chunk as read: its rows as the dataset's Arrow table, and each row's partition date
_Chunk = tuple[pa.Table, pa.Array]


async def _fetch(conn: AsyncConnection, dataset: Dataset, query: Select[Any]) -> _Chunk:
    """A chunk's rows, straight from the driver into Arrow columns.

    SQLite: in one hop of its thread, the raw rows (text, integers) become one Arrow
    struct array in C, then typed column by column in Arrow (:func:`_typed`): no
    Python object per value beyond the driver's own. PostgreSQL (or SQLite values of
    an unexpected type): typed Python values, column by column (:func:`_array`).
    """
    thread = await sqlite_thread(conn)
    if thread is None:
        result = await conn.execute(query)
        return _from_rows(dataset, list(result.keys()), result.all())
    fetched = _fetched_columns(query)
    compiled = fetched.query.compile(dialect=conn.dialect)
    params = tuple(compiled.params[name] for name in compiled.positiontup or ())

    def work(db: sqlite3.Connection) -> _Chunk:
        rows = db.execute(str(compiled), params).fetchall()
        try:
            raw = pa.array(rows, type=fetched.raw_type).flatten() if rows else None
        except (pa.ArrowInvalid, pa.ArrowTypeError):  # a value of another type than its column declares
            columns = list(zip(*rows, strict=True))
            return _from_rows(dataset, fetched.names, rows, {n: columns[i] for n, i in fetched.at.items()})
        return _from_arrow(dataset, fetched, raw)

    return await thread.run(work)


@dataclass(frozen=True)
class _Fetch:
    """What the SQLite path selects: each distinct expression once (``_key`` not at all)."""

    query: Select[Any]
    names: list[str]  # the labels selected
    at: dict[str, int]  # every label the writer needs → its position in ``names``
    raw_type: pa.StructType  # how the driver's values arrive: integers or text


def _fetched_columns(query: Select[Any]) -> _Fetch:
    unique: list[Any] = []
    bases: list[Any] = []
    at: dict[str, int] = {}
    for column in query.selected_columns:
        if column.key == "_key":  # the chunk's key range is known; its rows' keys are not needed
            continue
        base = getattr(column, "element", column)  # a label's expression
        found = next((i for i, b in enumerate(bases) if b is base), None)
        if found is None:
            found = len(unique)
            unique.append(column)
            bases.append(base)
        at[column.key] = found
    names = [c.key for c in unique]
    raw = pa.struct([pa.field(f"c{i}", _raw_type(c.type)) for i, c in enumerate(unique)])
    return _Fetch(query.with_only_columns(*unique, maintain_column_froms=True), names, at, raw)


def _raw_type(kind: Any) -> pa.DataType:
    """How SQLite hands a column of this SQLAlchemy type over: integers (booleans as 0/1), reals, or text."""
    if isinstance(kind, Boolean | Integer):
        return pa.int64()
    if isinstance(kind, Float):
        return pa.float64()
    return pa.string()  # text, JSON as its text, dates and UTC instants as ISO text


def _from_arrow(dataset: Dataset, fetched: _Fetch, raw: Sequence[pa.Array] | None) -> _Chunk:
    if raw is None:
        return dataset.schema.empty_table(), pa.array([], type=pa.date32())
    arrays = [_typed(raw[fetched.at[col.name]], col) for col in dataset.columns]
    dates = raw[fetched.at["_date"]]
    days = pc.utf8_slice_codeunits(dates, 0, 10).cast(pa.date32()) if pa.types.is_string(dates.type) else dates
    return pa.Table.from_arrays(arrays, schema=dataset.schema), days


def _from_rows(
    dataset: Dataset,
    names: Sequence[str],
    rows: Sequence[Sequence[Any]],
    columns: Mapping[str, Sequence[Any]] | None = None,
) -> _Chunk:
    if columns is None:
        transposed = list(zip(*rows, strict=True)) if rows else [() for _ in names]
        columns = dict(zip(names, transposed, strict=True))
    arrays = [_array(columns[col.name], col) for col in dataset.columns]
    days = pa.array([date.fromisoformat(_day(v)) for v in columns["_date"]], type=pa.date32())
    return pa.Table.from_arrays(arrays, schema=dataset.schema), days


def _typed(raw: pa.Array, column: Column) -> pa.Array:
    """One column from the driver's raw Arrow values (text, integers) to its Arrow type."""
    convert = column.convert or _CONVERT.get(column.name)
    kind = column.type
    if convert is not None and convert is not _json_text:  # SQLite hands JSON over as its text already
        # a pure function of each value: applied once per distinct value
        encoded = pc.dictionary_encode(raw)
        values = [None if v is None else convert(v) for v in encoded.dictionary.to_pylist()]
        return pa.array(values, type=kind).take(encoded.indices)
    if raw.type == kind:
        return raw
    if pa.types.is_string(raw.type) and pa.types.is_timestamp(kind):  # SQLite keeps UTC instants as naive text
        return raw.cast(pa.timestamp(kind.unit)).cast(kind)
    return raw.cast(kind)


def _array(values: Sequence[Any], column: Column) -> pa.Array:
    """One column's values as an Arrow array of its type, from raw driver values or Python objects."""
    convert = column.convert or _CONVERT.get(column.name)
    if convert is not None:
        values = [None if v is None else convert(v) for v in values]
    first = next((v for v in values if v is not None), None)
    kind = column.type
    if isinstance(first, str) and not pa.types.is_string(kind):
        text = pa.array(values, type=pa.string())
        if pa.types.is_timestamp(kind):  # SQLite keeps UTC instants as naive text
            return text.cast(pa.timestamp(kind.unit)).cast(kind)
        return text.cast(kind)
    if type(first) is int and pa.types.is_boolean(kind):
        return pa.array(values, type=pa.int64()).cast(kind)
    return pa.array(values, type=kind)


def _day(value: Any) -> str:
    """The partition date (YYYY-MM-DD) of a timestamp or date, raw text or Python."""
    if isinstance(value, str):
        return value[:10]
    if isinstance(value, datetime):
        return value.astimezone(UTC).date().isoformat() if value.tzinfo else value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    raise ExportError(f"a row has no partition date ({value!r})")


class Exporter:
    """Exports datasets to a folder; see the module docstring."""

    def __init__(
        self,
        engine: AsyncEngine,
        out_dir: Path,
        clock: Clock,
        *,
        chunk_rows: int = 250_000,
        compression: str = "zstd",
        crash_point: Callable[[str], None] = _no_crash,
    ) -> None:
        self.engine = engine
        self.out_dir = out_dir
        self.clock = clock
        self.chunk_rows = chunk_rows
        self.compression = compression
        #: called at "written" (files renamed, watermark not yet moved) and "recorded": a test kills the run there
        self.crash_point = crash_point

    @staticmethod
    def select(names: Iterable[str] | None) -> list[Dataset]:
        """The datasets named (all, in registry order, when None); an unknown name is an error."""
        if names is None:
            return list(DATASETS.values())
        chosen = []
        for name in names:
            if name not in DATASETS:
                raise ExportError(f"unknown dataset {name!r}; choose from {', '.join(DATASETS)}")
            chosen.append(DATASETS[name])
        return chosen

    async def pending(self, dataset: Dataset) -> int:
        """How many keys are beyond the dataset's watermark."""
        async with self.engine.connect() as conn:
            after, _ = await read_watermark(conn, dataset.name)
            keys = dataset.keys().subquery()
            return int(await conn.scalar(select(func.count()).select_from(keys).where(keys.c.k > after)) or 0)

    async def run(self, names: Iterable[str] | None = None, *, progress: Progress | None = None) -> RunResult:
        """Export every named dataset up to now, then write the manifest of the files recorded."""
        try:
            self.out_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ExportError(f"cannot create the export folder {self.out_dir}: {exc.strerror}") from exc
        results = [await self.export(ds, progress=progress) for ds in self.select(names)]
        manifest = await self.write_manifest()
        return RunResult(results, manifest)

    def _cleanup(self, dataset: Dataset, watermark: int) -> list[str]:
        """Delete temporary files and files beyond the watermark (a killed run's; the chunk is written again)."""
        removed = []
        root = self.out_dir / f"dataset={dataset.name}"
        if not root.is_dir():
            return removed
        for path in sorted(root.glob("date=*/*")):
            found = _PART.match(path.name)
            if (path.name.startswith(".") and path.name.endswith(".tmp")) or (found and int(found[1]) > watermark):
                path.unlink()
                removed.append(str(path.relative_to(self.out_dir)))
        return removed

    @staticmethod
    async def _count(conn: AsyncConnection, dataset: Dataset, after: int, upper: int) -> int:
        keys = dataset.keys().subquery()
        query = select(func.count()).select_from(keys).where(and_(keys.c.k > after, keys.c.k <= upper))
        return int(await conn.scalar(query) or 0)

    async def _upper(self, conn: AsyncConnection, dataset: Dataset, after: int) -> int | None:
        keys = dataset.keys().subquery()
        window = select(keys.c.k).where(keys.c.k > after).order_by(keys.c.k).limit(self.chunk_rows).subquery()
        value = await conn.scalar(select(func.max(window.c.k)))
        return None if value is None else int(value)

    async def export(self, dataset: Dataset, *, progress: Progress | None = None) -> DatasetResult:
        """Export one dataset from its watermark to the newest key, chunk by chunk."""
        async with self.engine.connect() as conn:
            start, _ = await read_watermark(conn, dataset.name)
        result = DatasetResult(dataset.name, dataset.version, start, start)
        result.removed = self._cleanup(dataset, start)
        total = await self.pending(dataset) if progress else 0
        done_keys = 0
        after = start
        reading = asyncio.ensure_future(self._read_chunk(dataset, after, counted=progress is not None))
        try:
            while (chunk := await reading) is not None:
                upper, in_chunk, fetched = chunk
                # read the next chunk while this one is encoded and written (the key range is known already)
                reading = asyncio.ensure_future(self._read_chunk(dataset, upper, counted=progress is not None))
                # Parquet encoding and fsync off the event loop: a scheduled export shares it with the API
                files = await asyncio.to_thread(self._write_chunk, dataset, after + 1, upper, fetched)
                self.crash_point("written")
                async with self.engine.begin() as conn:
                    now = self.clock()
                    if files:
                        await conn.execute(insert(export_files), [{**f.__dict__, "created_at": now} for f in files])
                    await advance_watermark(conn, dataset.name, after, upper, fetched[0].num_rows, now, dataset.version)
                self.crash_point("recorded")
                result.rows += fetched[0].num_rows
                result.files += [f.path for f in files]
                result.to_key = after = upper
                done_keys += in_chunk
                if progress:
                    progress(dataset.name, done_keys, max(total, done_keys))
        finally:
            if not reading.done():
                reading.cancel()
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await reading  # a read-ahead cut short by a failure: its result (or error) is not wanted
        return result

    async def _read_chunk(self, dataset: Dataset, after: int, *, counted: bool) -> tuple[int, int, _Chunk] | None:
        """The chunk after ``after``: its last key, its key count (if ``counted``) and its rows; None at the end."""
        async with self.engine.connect() as conn:
            upper = await self._upper(conn, dataset, after)
            if upper is None:
                return None
            in_chunk = await self._count(conn, dataset, after, upper) if counted else 0
            return upper, in_chunk, await _fetch(conn, dataset, dataset.rows(after, upper))

    def _write_chunk(self, dataset: Dataset, lo: int, hi: int, chunk: _Chunk) -> list[_File]:
        table, days = chunk
        if not table.num_rows:
            return []
        files = []
        name = _part_name(lo, hi)
        distinct = pc.unique(days)
        for day in sorted(distinct.to_pylist()):
            part = table if len(distinct) == 1 else table.filter(pc.equal(days, pa.scalar(day, pa.date32())))
            rel = f"dataset={dataset.name}/date={day.isoformat()}/{name}"
            size, sha = _write_durably(
                self.out_dir / rel,
                lambda tmp, part=part: pq.write_table(part, tmp, compression=self.compression),
            )
            files.append(_File(dataset.name, rel, day, lo, hi, part.num_rows, size, sha, dataset.version))
        return files

    async def write_manifest(self) -> Path | None:
        """Write the manifest of every file recorded since the last manifest (None when there is none)."""
        async with self.engine.connect() as conn:
            after, _ = await read_watermark(conn, MANIFEST)
            files = (
                await conn.execute(select(export_files).where(export_files.c.id > after).order_by(export_files.c.id))
            ).all()
            marks = await watermarks(conn)
        if not files:
            return None
        first, last = int(files[0].id), int(files[-1].id)
        now = self.clock()
        doc = {
            "manifest_version": MANIFEST_VERSION,
            "created_at": now.isoformat(),
            "file_ids": [first, last],
            "datasets": {
                name: {
                    "schema_version": ds.version,
                    "watermark": int(marks.get(name, {}).get("key") or 0),
                    "rows_total": int(marks.get(name, {}).get("rows") or 0),
                    "key": ds.key_doc,
                }
                for name, ds in DATASETS.items()
                if name in marks
            },
            "files": [
                {
                    "dataset": f.dataset,
                    "path": f.path,
                    "date": f.partition_date.isoformat(),
                    "rows": f.rows,
                    "bytes": f.bytes,
                    "sha256": f.sha256,
                    "first_key": f.first_key,
                    "last_key": f.last_key,
                    "schema_version": f.schema_version,
                }
                for f in files
            ],
            "rows": sum(f.rows for f in files),
        }
        # named by its first file: a manifest rewritten after a crash replaces the one it extends
        path = self.out_dir / "_manifests" / f"manifest-{first:012d}.json"
        text = json.dumps(doc, indent=2, sort_keys=False) + "\n"
        _write_durably(path, lambda tmp: tmp.write_text(text))
        async with self.engine.begin() as conn:
            await advance_watermark(conn, MANIFEST, after, last, len(files), now)
        return path
