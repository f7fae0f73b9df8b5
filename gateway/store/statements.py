"""Storing partner statements: all of a file or nothing, each statement once.

``store_statements`` writes the statements of one file in one transaction. A
statement already stored under the same ``(source, statement_id)`` is skipped
(importing a file twice adds nothing); a new one whose sequence number does not
follow the last one stored for its account is stored and its gap reported. The
booked credits of a new statement become receipts (``gateway.store.receivables``)
in the same transaction: none lost, none twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from gateway.domain.statements import Statement
from gateway.errors import ConflictError
from gateway.store.receivables import record_receipts
from gateway.store.tables import statement_lines, statements

__all__ = ["StoredStatement", "line_rows", "store_statements"]


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


def line_rows(pk: int, statement: Statement) -> list[dict[str, Any]]:
    """The ``statement_lines`` rows of a statement stored under ``pk``."""
    return [
        {
            "statement_pk": pk,
            "line": n,
            "amount_minor": line.amount_minor,
            "direction": line.direction,
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
        for n, line in enumerate(statement.lines, start=1)
    ]


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


async def _store_one(conn: AsyncConnection, s: Statement, digest: str, now: datetime) -> StoredStatement:
    existing = await conn.scalar(
        select(statements.c.id).where(
            and_(statements.c.source == s.source, statements.c.statement_id == s.statement_id)
        )
    )
    if existing is not None:
        return StoredStatement(s.source, s.statement_id, s.format, len(s.lines), stored=False, pk=existing)
    gap = await _gap(conn, s)
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
    pk = int(result.inserted_primary_key[0])
    rows = line_rows(pk, s)
    if rows:
        await conn.execute(insert(statement_lines), rows)
    await record_receipts(conn, pk, s, now)  # credits become receipts in this transaction: none lost, none twice
    return StoredStatement(s.source, s.statement_id, s.format, len(s.lines), stored=True, pk=pk, gap=gap)


async def store_statements(
    engine: AsyncEngine, found: Sequence[Statement], *, digest: str, now: datetime
) -> list[StoredStatement]:
    """Store every statement not stored yet, in one transaction; what each one did."""
    try:
        async with engine.begin() as conn:
            return [await _store_one(conn, s, digest, now) for s in found]
    except IntegrityError:
        raise ConflictError("the same statement is being imported concurrently; import it again") from None
