"""Statements fetched on a schedule: each adapter that declares ``statement_sources`` is asked for its files.

Every file goes through the import an upload goes through (``gateway.recon.imports.import_file``,
format named by the adapter): control figures checked, each statement stored once, booked credits
made receipts and matched in the same transaction, sequence gaps reported. So fetching the same
statement twice adds nothing, and a run that dies half-way is simply run again.

The job (``statement-fetch``, every ``reconciliation.fetch_seconds``) runs on the scheduler under a
job lease: once per interval across processes. ``gateway recon fetch`` runs it by hand.

``StatementInbox`` is the folder beside it (``reconciliation.inbox_dir``, job ``statement-inbox``):
statement files dropped there by another system are imported the same way, the format recognised
from the file, then moved to ``done/`` or, refused, to ``failed/`` with a ``.reason.txt``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.domain.clock import Clock
from gateway.domain.statements import FetchedFile, StatementFetch, StatementFormat
from gateway.errors import AdapterError, ConfigError, GatewayError
from gateway.partners.adapter import Adapter
from gateway.recon.imports import AUTO, EmptyStatementFileError, import_file
from gateway.store.inbox import move_aside, reason_text, settled_files
from gateway.store.tables import statements

__all__ = ["FetchReport", "FetchedOutcome", "StatementFetcher", "StatementInbox"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FetchedOutcome:
    """What became of one fetched file (or of asking a partner that could not be asked)."""

    partner: str
    name: str  # the file (``camt.053 2026-12-04``), or ``-`` when the partner could not be asked
    outcome: str  # stored | known (nothing new) | empty | refused | failed
    statements: int = 0  # statements newly stored
    lines: int = 0
    gaps: tuple[str, ...] = ()
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "partner": self.partner,
            "file": self.name,
            "outcome": self.outcome,
            "statements": self.statements,
            "lines": self.lines,
            "gaps": list(self.gaps),
            "error": self.error,
        }


@dataclass(frozen=True)
class FetchReport:
    """One run: every file fetched and what its import did."""

    files: list[FetchedOutcome] = field(default_factory=list)

    @property
    def stored(self) -> int:
        return sum(f.statements for f in self.files)

    def as_dict(self) -> dict[str, Any]:
        return {
            "files": [f.as_dict() for f in self.files],
            "stored": self.stored,
            "lines": sum(f.lines for f in self.files),
            "gaps": [g for f in self.files for g in f.gaps],
            "failed": sum(1 for f in self.files if f.outcome in ("refused", "failed")),
        }


class StatementFetcher:
    """Asks adapters for their statements and imports them as uploads are imported."""

    def __init__(
        self,
        engine: AsyncEngine,
        clock: Clock,
        adapters: Mapping[str, Adapter],
        formats: Mapping[str, StatementFormat],
        *,
        days: int,
    ) -> None:
        self.engine = engine
        self.clock = clock
        self.adapters = adapters
        self.formats = formats
        self.days = days

    def sources(self) -> list[str]:
        """The configured adapters that fetch statements, by name."""
        return sorted(name for name, a in self.adapters.items() if a.statement_sources)

    async def run(self) -> int:
        """The scheduled job: fetch from every source; how many statements were newly stored."""
        return (await self.fetch()).stored

    async def fetch(self, partner: str | None = None) -> FetchReport:
        """Fetch and import the statements of ``partner`` (default: every source); ``ConfigError`` for a
        partner that is not configured or fetches nothing."""
        names = self.sources()
        if partner is not None:
            if partner not in names:
                known = ", ".join(names) or "none"
                raise ConfigError(f"partner {partner!r} fetches no statements (partners that do: {known})")
            names = [partner]
        report = FetchReport()
        for name in names:
            report.files.extend(await self._fetch_one(self.adapters[name]))
        return report

    async def _after(self, source: str, formats: frozenset[str]) -> dict[str, int]:
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(statements.c.format, func.max(statements.c.sequence))
                .where(statements.c.source == source, statements.c.format.in_(sorted(formats)))
                .group_by(statements.c.format)
            )
            return {fmt: int(seq or 0) for fmt, seq in rows}

    async def _fetch_one(self, adapter: Adapter) -> list[FetchedOutcome]:
        now = self.clock()
        request = StatementFetch(
            today=now.date(),
            days=self.days,
            after=await self._after(adapter.name, adapter.statement_sources),
        )
        try:
            files = await adapter.fetch_statements(request)
        except AdapterError as exc:
            log.warning("statement fetch from %s failed: %s", adapter.name, exc.message)
            return [FetchedOutcome(adapter.name, "-", "failed", error=exc.message)]
        return [await self._import(adapter, f) for f in files]

    async def _import(self, adapter: Adapter, fetched: FetchedFile) -> FetchedOutcome:
        fmt = self.formats.get(fetched.format)
        if fetched.format not in adapter.statement_sources or fmt is None or fmt.source != adapter.name:
            error = f"{adapter.name} fetched a {fetched.format} file, not a format it declares"
            log.warning("statement fetch: %s", error)
            return FetchedOutcome(adapter.name, fetched.name, "refused", error=error)
        try:
            # the file's moment in the books: the run's clock, read again (a long run moves on)
            found = await import_file(self.engine, self.formats, fetched.body, now=self.clock(), given=fmt.name)
        except EmptyStatementFileError:
            return FetchedOutcome(adapter.name, fetched.name, "empty")
        except GatewayError as exc:
            log.warning("statement fetch: %s from %s refused: %s", fetched.name, adapter.name, exc.message)
            return FetchedOutcome(adapter.name, fetched.name, "refused", error=exc.message)
        doc = found.as_dict()
        if doc["stored"]:
            log.info(
                "statement fetch: %s from %s: %d statements stored (%d lines)",
                fetched.name,
                adapter.name,
                doc["stored"],
                doc["lines"],
            )
        return FetchedOutcome(
            adapter.name,
            fetched.name,
            "stored" if doc["stored"] else "known",
            statements=doc["stored"],
            lines=doc["lines"],
            gaps=tuple(found.gaps),
        )


class StatementInbox:
    """A folder other systems drop statement files into; each is imported once and moved aside."""

    def __init__(self, engine: AsyncEngine, clock: Clock, formats: Mapping[str, StatementFormat], folder: Path) -> None:
        self.engine = engine
        self.clock = clock
        self.formats = formats
        self.folder = folder

    async def run(self) -> int:
        """The scheduled job: how many files were taken (imported or refused)."""
        return len(await self.scan())

    async def scan(self) -> list[FetchedOutcome]:
        """Import every settled file of the folder (none if it does not exist); move it to done/ or failed/."""
        if not self.folder.is_dir():
            return []
        out = []
        for path in settled_files(self.folder.iterdir()):
            taken = await self._take(path)
            if taken is not None:
                out.append(taken)
        return out

    async def _take(self, path: Path) -> FetchedOutcome | None:
        try:
            found = await import_file(self.engine, self.formats, path, now=self.clock(), given=AUTO)
        except GatewayError as exc:
            if exc.status >= 500 or exc.status == 409:  # the store is busy or unavailable: the next scan
                log.warning("statement inbox: %s not taken (%s); trying again at the next scan", path, exc.message)
                return None
            move_aside(path, "failed", reason_text(exc))
            log.info("statement inbox: %s refused: %s", path.name, exc.message)
            return FetchedOutcome("inbox", path.name, "refused", error=exc.message)
        except OSError as exc:
            log.warning("statement inbox: %s could not be read (%s); trying again at the next scan", path, exc)
            return None
        move_aside(path, "done", None)
        doc = found.as_dict()
        log.info("statement inbox: %s: %d statements stored (%d lines)", path.name, doc["stored"], doc["lines"])
        return FetchedOutcome(
            "inbox",
            path.name,
            "stored" if doc["stored"] else "known",
            statements=doc["stored"],
            lines=doc["lines"],
            gaps=tuple(found.gaps),
        )
