"""Storing partner statements: all of a file or nothing, each statement once.

``store_statements`` writes the statements of one file in one transaction. A
statement already stored under the same ``(source, statement_id)`` is skipped
(importing a file twice adds nothing); a new one whose sequence number does not
follow the last one stored for its account is stored and its gap reported. The
booked credits of a new statement become receipts (``gateway.store.receivables``)
in the same transaction: none lost, none twice.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime
from typing import Any

from sqlalchemy import and_, func, insert, select, update
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from gateway.collector import collector_paused
from gateway.domain.statements import (
    Statement,
    StatementControlError,
    StatementLine,
    check_header,
    check_line,
    check_totals,
)
from gateway.errors import ConflictError
from gateway.store.bulk import Statement as BulkStatement
from gateway.store.bulk import bind_converter, execute_all, insert_statement
from gateway.store.receivables import record_receipts
from gateway.store.tables import statement_line_items, statement_lines, statements

__all__ = [
    "CHUNK_LINES",
    "StoredStatement",
    "item_rows",
    "line_rows",
    "line_statement",
    "store_statements",
    "store_streamed",
]

#: lines written per INSERT when a statement streams in
CHUNK_LINES = 10_000


@dataclass(frozen=True)
class StoredStatement:
    """What importing one statement did."""

    source: str
    statement_id: str
    format: str
    lines: int
    stored: bool  # False: it was already there (nothing added)
    pk: int | None = None
    gap: str | None = None  # "statements 12 to 13 of account ****6890 are missing"

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "statement_id": self.statement_id,
            "format": self.format,
            "lines": self.lines,
            "stored": self.stored,
            "gap": self.gap,
        }


def _line_row(pk: int, n: int, line: StatementLine) -> dict[str, Any]:
    return {
        "statement_pk": pk,
        "line": n,
        "amount_minor": line.amount_minor,
        "direction": "credit" if line.credit else "debit",
        "currency": line.currency,
        "booked_on": line.booked_on,
        "value_on": line.value_on,
        "end_to_end_id": line.end_to_end_id,
        "partner_reference": line.partner_reference,
        "servicer_reference": line.servicer_reference,
        "counterparty_name": line.counterparty_name,
        "counterparty_account": line.counterparty_account,
        "kind": line.kind,
        "reason_code": line.reason_code,
        "original_reference": line.original_reference,
        "text": line.text,
        "remittance_reference": line.remittance_reference,
    }


def item_rows(pk: int, statement: Statement, first: int = 1) -> list[dict[str, Any]]:
    """The ``statement_line_items`` rows of the lines that itemise what they settle."""
    return [
        {
            "statement_pk": pk,
            "line": n,
            "item": k,
            "kind": i.kind,
            "reference": i.reference,
            "partner_reference": i.partner_reference,
            "amount_minor": i.amount_minor,
            "fee_minor": i.fee_minor,
        }
        for n, line in enumerate(statement.lines, start=first)
        for k, i in enumerate(line.items, start=1)
    ]


_LINE_COLUMNS = (
    "statement_pk",
    "line",
    "amount_minor",
    "direction",
    "currency",
    "booked_on",
    "value_on",
    "end_to_end_id",
    "partner_reference",
    "servicer_reference",
    "counterparty_name",
    "counterparty_account",
    "kind",
    "reason_code",
    "original_reference",
    "text",
    "remittance_reference",
)


def line_statement(pk: int, lines: Sequence[StatementLine], first: int, dialect: Dialect) -> BulkStatement:
    """The driver-level INSERT of ``lines`` (numbered from ``first``) as parameter tuples: the import's hot path.

    Days go through the column's converter once per distinct day (a statement has few), every other
    value is sent as it is (strings and integers), as ``gateway.store.bulk.insert_statement`` would send it.
    """
    sql, _ = insert_statement(statement_lines, [dict.fromkeys(_LINE_COLUMNS)], dialect)
    convert = bind_converter(statement_lines.c.booked_on, dialect)
    days: dict[date | None, Any] = {None: None}

    def day(value: date | None) -> Any:
        found = days.get(value, days)
        if found is days:
            found = days[value] = convert(value)
        return found

    rows = [
        (
            pk,
            n,
            x.amount_minor,
            "credit" if x.credit else "debit",
            x.currency,
            day(x.booked_on),
            day(x.value_on),
            x.end_to_end_id,
            x.partner_reference,
            x.servicer_reference,
            x.counterparty_name,
            x.counterparty_account,
            x.kind,
            x.reason_code,
            x.original_reference,
            x.text,
            x.remittance_reference,
        )
        for n, x in enumerate(lines, start=first)
    ]
    return sql, rows


def line_rows(pk: int, statement: Statement, first: int = 1) -> list[dict[str, Any]]:
    """The ``statement_lines`` rows of a statement stored under ``pk`` (its first line numbered ``first``)."""
    return [_line_row(pk, n, line) for n, line in enumerate(statement.lines, start=first)]


async def _gap(conn: AsyncConnection, s: Statement) -> str | None:
    if s.sequence is None:
        return None
    previous = await conn.scalar(
        select(func.max(statements.c.sequence)).where(
            and_(
                statements.c.source == s.source,
                statements.c.account.is_(None) if s.account is None else statements.c.account == s.account,
                statements.c.sequence < s.sequence,
            )
        )
    )
    if previous is None or previous == s.sequence - 1:
        return None
    first, last = previous + 1, s.sequence - 1
    missing = f"statement {first}" if first == last else f"statements {first} to {last}"
    return f"{missing} of {s.source} account {s.account or '(none)'} not imported"


async def _existing(conn: AsyncConnection, s: Statement) -> int | None:
    return await conn.scalar(
        select(statements.c.id).where(
            and_(statements.c.source == s.source, statements.c.statement_id == s.statement_id)
        )
    )


async def _insert_header(conn: AsyncConnection, s: Statement, digest: str, now: datetime) -> int:
    result = await conn.execute(
        insert(statements).values(
            source=s.source,
            statement_id=s.statement_id,
            format=s.format,
            account=s.account,
            currency=s.currency,
            sequence=s.sequence,
            period_start=s.period_start,
            period_end=s.period_end,
            opening_minor=s.opening_minor,
            closing_minor=s.closing_minor,
            line_count=len(s.lines),
            credits_minor=s.credits_minor,
            debits_minor=s.debits_minor,
            file_sha256=digest,
            imported_at=now,
        )
    )
    return int(result.inserted_primary_key[0])


async def _store_one(conn: AsyncConnection, s: Statement, digest: str, now: datetime) -> StoredStatement:
    existing = await _existing(conn, s)
    if existing is not None:
        return StoredStatement(s.source, s.statement_id, s.format, len(s.lines), stored=False, pk=existing)
    gap = await _gap(conn, s)
    pk = await _insert_header(conn, s, digest, now)
    rows = line_rows(pk, s)
    if rows:
        await conn.execute(insert(statement_lines), rows)
    items = item_rows(pk, s)
    if items:
        await conn.execute(insert(statement_line_items), items)
    await record_receipts(conn, pk, s, now)  # credits become receipts in this transaction: none lost, none twice
    return StoredStatement(s.source, s.statement_id, s.format, len(s.lines), stored=True, pk=pk, gap=gap)


class _Streamed:
    """One statement being stored as its lines stream in: checked line by line, totals checked at its end."""

    def __init__(self, head: Statement, pk: int | None, existing: bool, gap: str | None) -> None:
        self.head, self.pk, self.existing, self.gap = head, pk, existing, gap
        self.count = self.credits = self.debits = 0
        self.batch: list[StatementLine] = []
        self.itemised = False  # a line of the batch itemises what it settles

    def add(self, line: StatementLine) -> None:
        self.count += 1
        check_line(self.head, self.count, line)
        if line.credit:
            self.credits += line.amount_minor
        else:
            self.debits += line.amount_minor
        if not self.existing:
            self.batch.append(line)
            if line.items:
                self.itemised = True

    async def flush(self, conn: AsyncConnection, now: datetime) -> None:
        if not self.batch or self.pk is None:
            return
        chunk = replace(self.head, lines=tuple(self.batch))
        first = self.count - len(self.batch) + 1
        itemised, self.batch, self.itemised = self.itemised, [], False
        statements_ = [line_statement(self.pk, chunk.lines, first, conn.dialect)]
        if itemised:  # itemised lines (a card payout batch): their items after them, in the same hop
            statements_.append(insert_statement(statement_line_items, item_rows(self.pk, chunk, first), conn.dialect))
        await execute_all(conn, statements_)
        await record_receipts(conn, self.pk, chunk, now, first=first)

    async def finish(self, conn: AsyncConnection, now: datetime) -> StoredStatement:
        await self.flush(conn, now)
        check_totals(self.head, self.count, self.credits, self.debits)
        h = self.head
        if not self.existing:
            await conn.execute(
                update(statements)
                .where(statements.c.id == self.pk)
                .values(line_count=self.count, credits_minor=self.credits, debits_minor=self.debits)
            )
        return StoredStatement(h.source, h.statement_id, h.format, self.count, not self.existing, self.pk, self.gap)


async def _store_stream(
    conn: AsyncConnection, items: Iterable[Statement | StatementLine], digest: str, now: datetime, chunk: int
) -> list[StoredStatement]:
    out: list[StoredStatement] = []
    current: _Streamed | None = None
    for item in items:
        if isinstance(item, Statement):
            if current is not None:
                out.append(await current.finish(conn, now))
            check_header(item)
            if item.lines:
                raise StatementControlError(f"statement {item.statement_id!r}: streamed with its lines inside")
            existing = await _existing(conn, item)
            if existing is not None:
                current = _Streamed(item, existing, True, None)
            else:
                gap = await _gap(conn, item)
                current = _Streamed(item, await _insert_header(conn, item, digest, now), False, gap)
            continue
        if current is None:
            raise StatementControlError("a statement line comes before any statement")
        current.add(item)
        if len(current.batch) >= chunk:
            await current.flush(conn, now)
    if current is not None:
        out.append(await current.finish(conn, now))
    return out


async def store_streamed(
    engine: AsyncEngine,
    items: Iterable[Statement | StatementLine],
    *,
    digest: str,
    now: datetime,
    chunk: int = CHUNK_LINES,
) -> list[StoredStatement]:
    """Store a streamed file (each ``Statement`` without lines, then its lines) in one transaction.

    Lines are written ``chunk`` at a time; each statement's totals are checked
    when its last line has been read. Any error (the reader's, a control figure)
    rolls the whole file back: all of it or nothing, as ``store_statements``.
    """
    try:
        with collector_paused():  # a million lines' objects, none in a cycle: the collector would only walk them
            async with engine.begin() as conn:
                return await _store_stream(conn, items, digest, now, chunk)
    except IntegrityError:
        raise ConflictError("the same statement is being imported concurrently; import it again") from None


async def store_statements(
    engine: AsyncEngine, found: Sequence[Statement], *, digest: str, now: datetime
) -> list[StoredStatement]:
    """Store every statement not stored yet, in one transaction; what each one did."""
    try:
        async with engine.begin() as conn:
            return [await _store_one(conn, s, digest, now) for s in found]
    except IntegrityError:
        raise ConflictError("the same statement is being imported concurrently; import it again") from None
