"""Partner messages in the store: written with what they produced, read per payment (docs/operations.md)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.partners.capture import PartnerMessage
from gateway.store.bulk import execute_all, insert_statement
from gateway.store.tables import partner_message_links, partner_messages

__all__ = ["messages_for", "save_messages"]

#: the stored fields of a ``PartnerMessage`` (its payments go to ``partner_message_links``)
_COLUMNS = tuple(c.name for c in partner_messages.columns)


async def save_messages(conn: AsyncConnection, messages: Sequence[PartnerMessage]) -> int:
    """Insert the messages and their links in ``conn``'s transaction (two ``executemany``, one trip to SQLite's
    thread); those about no payment are not kept. Returns how many were.

    A bulk message carries hundreds of payments: its links go to the driver as plain tuples, not through
    SQLAlchemy's per-row parameter processing (``gateway.store.bulk``).
    """
    kept = [m for m in messages if m.instruction_ids]
    if not kept:
        return 0
    dialect = conn.dialect
    rows = [{name: getattr(m, name) for name in _COLUMNS} for m in kept]
    links = [(m.id, i) for m in kept for i in dict.fromkeys(m.instruction_ids)]
    link_sql, _ = insert_statement(
        partner_message_links, [{"message_id": links[0][0], "instruction_id": links[0][1]}], dialect
    )
    await execute_all(conn, [insert_statement(partner_messages, rows, dialect), (link_sql, links)])
    return len(kept)


async def messages_for(conn: AsyncConnection, instruction_id: str, limit: int = 200) -> list[dict[str, Any]]:
    """The payment's partner messages, oldest first (a request before its answer)."""
    rows = (
        await conn.execute(
            select(partner_messages)
            .join(partner_message_links, partner_message_links.c.message_id == partner_messages.c.id)
            .where(partner_message_links.c.instruction_id == instruction_id)
            .order_by(partner_messages.c.occurred_at, partner_messages.c.direction.desc(), partner_messages.c.id)
            .limit(limit)
        )
    ).mappings()
    return [{**r, "occurred_at": r["occurred_at"].isoformat()} for r in rows]
