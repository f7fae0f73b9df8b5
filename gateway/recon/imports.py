"""Importing a statement file: recognise its format, read it, check its figures, store it once.

The formats come from the adapters (``gateway_statement_formats``). A file is
refused with one line, and nothing of it stored, when no format recognises it,
when its reader refuses it, or when any of its statements fails its own control
figures (``gateway.domain.statements.check_controls``).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.domain.statements import Statement, StatementFormat, check_controls
from gateway.errors import ContractError, GatewayError
from gateway.store.statements import StoredStatement, store_statements

__all__ = ["AUTO", "ImportReport", "StatementFileError", "detect_format", "import_file", "read_file"]

log = logging.getLogger(__name__)

AUTO = "auto"
#: how many leading bytes ``sniff`` sees
SNIFF_BYTES = 4096


class StatementFileError(ContractError):
    """A statement file cannot be imported: unknown format, unreadable, or its figures do not add up."""

    default_message = "statement file refused"
    slug = "statement-refused"


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


def detect_format(formats: Mapping[str, StatementFormat], body: bytes, given: str = AUTO) -> StatementFormat:
    """The format named, or the one that recognises the file's first bytes; ``StatementFileError`` otherwise."""
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
        raise StatementFileError(f"the {fmt.name} file holds no statement")
    for s in found:
        try:
            check_controls(s)
        except GatewayError as exc:
            raise StatementFileError(f"{fmt.name}: {_one_line(exc)}") from None
    return found


async def import_file(
    engine: AsyncEngine,
    formats: Mapping[str, StatementFormat],
    body: bytes,
    *,
    now: datetime,
    given: str = AUTO,
) -> ImportReport:
    """Read, check and store one statement file; the same statement twice adds nothing."""
    fmt = detect_format(formats, body, given)
    found = read_file(fmt, body)
    digest = hashlib.sha256(body).hexdigest()
    stored = await store_statements(engine, found, digest=digest, now=now)
    report = ImportReport(fmt.name, digest, stored)
    for gap in report.gaps:
        log.warning("statement sequence gap: %s", gap)
    return report
