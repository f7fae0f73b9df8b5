"""Importing a statement file: recognise its format, read it, check its figures, store it once.

The formats come from the adapters (``gateway_statement_formats``). A file is
refused with one line, and nothing of it stored, when no format recognises it,
when its reader refuses it, or when any of its statements fails its own control
figures (``gateway.domain.statements.check_controls``).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.domain.errors import DomainError
from gateway.domain.statements import (
    Statement,
    StatementFormat,
    StatementLine,
    StreamFallback,
    check_controls,
)
from gateway.errors import ConflictError, ContractError, GatewayError
from gateway.recon.csvformat import CSV_FORMAT, CsvMapping, csv_format
from gateway.store.statements import StoredStatement, store_statements, store_streamed

__all__ = [
    "AUTO",
    "EmptyStatementFileError",
    "ImportReport",
    "StatementFileError",
    "detect_format",
    "import_file",
    "read_file",
]

log = logging.getLogger(__name__)

AUTO = "auto"
#: how many leading bytes ``sniff`` sees
SNIFF_BYTES = 4096


class StatementFileError(ContractError):
    """A statement file cannot be imported: unknown format, unreadable, or its figures do not add up."""

    default_message = "statement file refused"
    slug = "statement-refused"


class EmptyStatementFileError(StatementFileError):
    """A statement file of a known format that holds no statement (nothing to store, nothing wrong with it)."""

    default_message = "the statement file holds no statement"


@dataclass(frozen=True)
class ImportReport:
    """What importing one file did."""

    format: str
    digest: str
    statements: list[StoredStatement] = field(default_factory=list)

    @property
    def gaps(self) -> list[str]:
        return [s.gap for s in self.statements if s.gap]

    def as_dict(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "sha256": self.digest,
            "statements": [s.as_dict() for s in self.statements],
            "stored": sum(1 for s in self.statements if s.stored),
            "lines": sum(s.lines for s in self.statements if s.stored),
            "gaps": self.gaps,
        }


def detect_format(
    formats: Mapping[str, StatementFormat], body: bytes, given: str = AUTO, mapping: CsvMapping | None = None
) -> StatementFormat:
    """The format named, or the one that recognises the file's first bytes; ``StatementFileError`` otherwise.

    A CSV file says nothing of its bank: it is read as ``csv`` only through a
    column mapping (``mapping``), never recognised by ``auto``.
    """
    if mapping is not None:
        if given not in (AUTO, CSV_FORMAT):
            raise StatementFileError(f"a column mapping reads csv files, not {given}")
        return csv_format(mapping)
    if given == CSV_FORMAT:
        raise StatementFileError("the csv format needs a column mapping (--mapping FILE, or ?mapping=NAME)")
    if given != AUTO:
        if given not in formats:
            raise StatementFileError(f"unknown statement format {given!r}; known: {', '.join(formats) or 'none'}")
        return formats[given]
    head = body[:SNIFF_BYTES]
    found = [f for f in formats.values() if f.sniff(head)]
    if len(found) != 1:
        what = "no known statement format" if not found else f"several formats ({', '.join(f.name for f in found)})"
        raise StatementFileError(f"the file matches {what}; give the format ({', '.join(formats)})")
    return found[0]


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__


def read_file(fmt: StatementFormat, body: bytes) -> list[Statement]:
    """Every statement of the file, each with its control figures checked; ``StatementFileError`` otherwise."""
    try:
        found = list(fmt.read(body))
    except GatewayError as exc:
        raise StatementFileError(f"not a valid {fmt.name} file: {_one_line(exc)}", errors=exc.errors) from None
    except (ValueError, KeyError, IndexError, TypeError, AttributeError, ArithmeticError) as exc:
        # a third-party parser (mt-940) fails on malformed input with its own exceptions
        raise StatementFileError(f"not a valid {fmt.name} file: {_one_line(exc)}") from None
    if not found:
        raise EmptyStatementFileError(f"the {fmt.name} file holds no statement")
    for s in found:
        try:
            check_controls(s)
        except GatewayError as exc:
            raise StatementFileError(f"{fmt.name}: {_one_line(exc)}") from None
    return found


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def _head(path: Path) -> bytes:
    with path.open("rb") as f:
        return f.read(SNIFF_BYTES)


def _refused(fmt: StatementFormat, exc: GatewayError) -> StatementFileError:
    if isinstance(exc, DomainError):
        return StatementFileError(f"{fmt.name}: {_one_line(exc)}")
    return StatementFileError(f"not a valid {fmt.name} file: {_one_line(exc)}", errors=exc.errors)


async def _stream(
    engine: AsyncEngine, fmt: StatementFormat, items: Iterator[Statement | StatementLine], digest: str, now: datetime
) -> list[StoredStatement]:
    try:
        with contextlib.closing(items) if hasattr(items, "close") else contextlib.nullcontext():
            stored = await store_streamed(engine, items, digest=digest, now=now)
    except ConflictError:
        raise
    except GatewayError as exc:
        raise _refused(fmt, exc) from None
    except (ValueError, KeyError, IndexError, TypeError, AttributeError, ArithmeticError) as exc:
        raise StatementFileError(f"not a valid {fmt.name} file: {_one_line(exc)}") from None
    if not stored:
        raise EmptyStatementFileError(f"the {fmt.name} file holds no statement")
    return stored


async def _stream_path(
    engine: AsyncEngine, fmt: StatementFormat, path: Path, digest: str, now: datetime
) -> list[StoredStatement]:
    """A streamed format's file on disk: read by ``stream_file`` (several processes) where it can vouch for the
    result, else (``StreamFallback``: what it stored rolled back) by ``stream``."""
    if fmt.stream_file is not None:
        try:
            return await _stream(engine, fmt, fmt.stream_file(path), digest, now)
        except StreamFallback as why:
            log.info("statement file read again by one process: %s", why)
    assert fmt.stream is not None
    with path.open("rb") as source:
        return await _stream(engine, fmt, fmt.stream(source), digest, now)


async def import_file(
    engine: AsyncEngine,
    formats: Mapping[str, StatementFormat],
    body: bytes | Path,
    *,
    now: datetime,
    given: str = AUTO,
    mapping: CsvMapping | None = None,
) -> ImportReport:
    """Read, check and store one statement file (its bytes, or a path); the same statement twice adds nothing.

    A format that streams (``StatementFormat.stream``: camt.053, camt.054) is read
    as it is stored, with bounded memory, whatever the file's size; a file given
    by path is then never read whole. Either way nothing of the file is stored
    unless all of it reads and adds up. A large file on disk of a format that offers it is read by
    several processes (``StatementFormat.stream_file``), the same lines stored in the same order.
    """
    if isinstance(body, Path):
        fmt = detect_format(formats, _head(body), given, mapping)
        digest = _digest(body)
        if fmt.stream is not None:
            stored = await _stream_path(engine, fmt, body, digest, now)
        else:
            found = read_file(fmt, body.read_bytes())
            stored = await store_statements(engine, found, digest=digest, now=now)
    else:
        fmt = detect_format(formats, body, given, mapping)
        digest = hashlib.sha256(body).hexdigest()
        if fmt.stream is not None:
            stored = await _stream(engine, fmt, fmt.stream(io.BytesIO(body)), digest, now)
        else:
            stored = await store_statements(engine, read_file(fmt, body), digest=digest, now=now)
    report = ImportReport(fmt.name, digest, stored)
    for gap in report.gaps:
        log.warning("statement sequence gap: %s", gap)
    return report
