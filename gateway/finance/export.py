"""GL export for the finance ERP: numbered batches, every entry exactly once, re-runs identical.

A batch covers a closed period for a scope (one business unit, or ``*`` for
all): the entries booked up to the period's end that no earlier batch of the
scope exported. An entry booked late (after its period closed) is in the next
batch and carries its original date. A batch is recorded with the sha256 of its
file; exporting the same period again rebuilds the same entries and says
whether the file is identical. Ledger accounts map to GL accounts and cost
centres through a mapping file (``config/gl-mapping.yaml``).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import Progress
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from gateway.domain.money import amount_text
from gateway.finance.books import EntryView, closed_through, entries, parse_period
from gateway.ledger.errors import LedgerError, LedgerRulesError, PeriodError
from gateway.ledger.rules import Rules
from gateway.store.journal import next_period, period_start
from gateway.store.tables import ledger_entries, ledger_exports

__all__ = ["COLUMNS", "DEFAULT_MAPPING_FILE", "ExportResult", "GLMapping", "default_mapping", "export_batch"]

DEFAULT_MAPPING_FILE = Path(__file__).resolve().parents[2] / "config" / "gl-mapping.yaml"
COLUMNS = (
    "batch",
    "entry_id",
    "line",
    "booked_date",
    "original_date",
    "business_unit",
    "instruction_id",
    "kind",
    "memo",
    "ledger_account",
    "gl_account",
    "cost_centre",
    "currency",
    "debit",
    "credit",
)
ALL = "*"


class GLMapping:
    """Ledger account → (GL account, cost centre), per business unit with a default."""

    def __init__(self, doc: Mapping[str, Any], source: str, rules: Rules) -> None:
        if doc.get("version") != 1:
            raise LedgerRulesError(f"{source}: version must be 1")
        self.rules = rules
        self.source = source
        self.default = self._block(doc.get("default") or {}, f"{source}: default")
        self.units = {
            str(bu): self._block(block or {}, f"{source}: business_units.{bu}")
            for bu, block in (doc.get("business_units") or {}).items()
        }

    def _block(self, block: Any, where: str) -> dict[str, tuple[str, str]]:
        if not isinstance(block, dict):
            raise LedgerRulesError(f"{where}: must map account patterns to {{gl, cost_centre}}")
        out = {}
        for pattern, target in block.items():
            if pattern not in self.rules.chart:
                raise LedgerRulesError(f"{where}: {pattern!r} is not an account pattern of the ledger's chart")
            if not (isinstance(target, dict) and isinstance(target.get("gl"), str)):
                raise LedgerRulesError(f"{where}.{pattern}: needs gl (and optionally cost_centre)")
            out[pattern] = (target["gl"], str(target.get("cost_centre", "")))
        return out

    def lookup(self, account: str, business_unit: str | None) -> tuple[str, str]:
        pattern = self.rules.pattern_of(account)
        found = self.units.get(business_unit or "", {}).get(pattern.template) or self.default.get(pattern.template)
        if found is None:
            raise LedgerError(f"{self.source}: no GL account for {pattern.template!r} (account {account})")
        fields = pattern.regex.fullmatch(account)
        values = fields.groupdict() if fields else {}
        gl, centre = found
        return gl.format(**values) if "{" in gl else gl, centre.format(**values) if "{" in centre else centre


@dataclass(frozen=True)
class ExportResult:
    batch: int
    scope: str
    period: str
    entries: int
    sha256: str
    path: Path
    rerun: bool
    identical: bool


def _rows(batch: int, items: list[EntryView], mapping: GLMapping) -> Iterator[list[str]]:
    for e in items:
        for line, p in enumerate(e.postings, 1):
            gl, centre = mapping.lookup(p.account, e.business_unit)
            yield [
                str(batch),
                str(e.id),
                str(line),
                e.booked_at.date().isoformat(),
                (e.original_at or e.booked_at).date().isoformat(),
                e.business_unit or "",
                e.instruction_id or "",
                e.kind,
                e.memo,
                p.account,
                gl,
                centre,
                p.currency,
                amount_text(p.amount, p.currency) if p.amount > 0 else "",
                amount_text(-p.amount, p.currency) if p.amount < 0 else "",
            ]


async def _count(conn: AsyncConnection, scope: str, after: int, last: int) -> int:
    query = (
        select(func.count()).select_from(ledger_entries).where(ledger_entries.c.id > after, ledger_entries.c.id <= last)
    )
    if scope != ALL:
        query = query.where(ledger_entries.c.business_unit == scope)
    return int(await conn.scalar(query) or 0)


async def export_batch(
    engine: AsyncEngine,
    period: str,
    *,
    scope: str,
    fmt: str,
    mapping: GLMapping,
    out_dir: Path,
    now: Any,
    progress: bool = False,
) -> ExportResult:
    """Write (or rebuild) the batch of ``period`` for ``scope``; see the module docstring."""
    period = parse_period(period)
    async with engine.connect() as conn:
        closed = await closed_through(conn)
        if closed is None or closed < period:
            raise PeriodError(f"period {period} is not closed; close it first (gateway ledger close {period})")
        found = (
            await conn.execute(
                select(ledger_exports).where(ledger_exports.c.scope == scope, ledger_exports.c.period == period)
            )
        ).first()
        if found is not None:
            batch, after, last, digests = found.batch, found.first_entry_id, found.last_entry_id, dict(found.digests)
        else:
            latest = (
                await conn.execute(
                    select(ledger_exports)
                    .where(ledger_exports.c.scope == scope)
                    .order_by(ledger_exports.c.batch.desc())
                    .limit(1)
                )
            ).first()
            if latest is not None and latest.period > period:
                raise PeriodError(f"{scope} was exported up to {latest.period} already; {period} is in its batches")
            batch = latest.batch + 1 if latest else 1
            after = latest.last_entry_id if latest else 0
            end = period_start(next_period(period))
            last = int(
                await conn.scalar(select(func.max(ledger_entries.c.id)).where(ledger_entries.c.booked_at < end)) or 0
            )
            last = max(last, after)
            digests = {}
        total = await _count(conn, scope, after, last)
        name = f"gl-{'all' if scope == ALL else scope}-{period}-batch{batch:04d}.{fmt}"
        path = out_dir / name
        tmp = out_dir / f".{name}.tmp"
        digest = hashlib.sha256()
        with open(tmp, "w", encoding="utf-8", newline="") as out, _progress(progress, total, name) as advance:
            if fmt == "json":
                head = {"batch": batch, "scope": scope, "period": period, "columns": list(COLUMNS)}
                text = json.dumps(head, sort_keys=True)[:-1] + ', "rows": ['
                out.write(text)
                digest.update(text.encode())
            else:
                buf = io.StringIO()
                csv.writer(buf, lineterminator="\n").writerow(COLUMNS)
                out.write(buf.getvalue())
                digest.update(buf.getvalue().encode())
            cursor, first_row = after, True
            while True:
                items = await entries(
                    conn,
                    business_unit=None if scope == ALL else scope,
                    after_id=cursor,
                    up_to_id=last,
                    limit=2000,
                )
                if not items:
                    break
                buf = io.StringIO()
                writer = csv.writer(buf, lineterminator="\n")
                for row in _rows(batch, items, mapping):
                    if fmt == "json":
                        buf.write(("" if first_row else ", ") + json.dumps(dict(zip(COLUMNS, row, strict=True))))
                        first_row = False
                    else:
                        writer.writerow(row)
                out.write(buf.getvalue())
                digest.update(buf.getvalue().encode())
                cursor = items[-1].id
                advance(len(items))
            if fmt == "json":
                out.write("]}\n")
                digest.update(b"]}\n")
    sha = digest.hexdigest()
    rerun = found is not None
    identical = digests.get(fmt, sha) == sha
    if not rerun or fmt not in digests:
        try:
            async with engine.begin() as conn:
                if rerun:
                    await conn.execute(
                        ledger_exports.update()
                        .where(ledger_exports.c.scope == scope, ledger_exports.c.batch == batch)
                        .values(digests={**digests, fmt: sha})
                    )
                else:
                    await conn.execute(
                        ledger_exports.insert().values(
                            scope=scope,
                            batch=batch,
                            period=period,
                            first_entry_id=after,
                            last_entry_id=last,
                            entries=total,
                            digests={fmt: sha},
                            created_at=now,
                        )
                    )
        except IntegrityError:
            tmp.unlink(missing_ok=True)
            raise LedgerError(f"another export of {scope} {period} ran at the same time; run it again") from None
    os.replace(tmp, path)
    return ExportResult(batch, scope, period, total, sha, path, rerun, identical)


class _progress:
    """A rich progress bar on stderr for large exports (a no-op otherwise)."""

    def __init__(self, enabled: bool, total: int, name: str) -> None:
        self.enabled = enabled and total > 0
        self.total, self.name = total, name

    def __enter__(self) -> Any:
        if not self.enabled:
            return lambda n: None
        self.bar = Progress(console=Console(stderr=True), transient=True)
        self.bar.start()
        task = self.bar.add_task(f"exporting {self.name}", total=self.total)
        return lambda n: self.bar.advance(task, n)

    def __exit__(self, *exc: object) -> None:
        if self.enabled:
            self.bar.stop()


def default_mapping(config_source: str) -> Path:
    beside = Path(config_source).resolve().parent / "gl-mapping.yaml"
    return beside if beside.is_file() else DEFAULT_MAPPING_FILE
