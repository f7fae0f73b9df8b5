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
    rows = [
        {
            "id": m.id,
            "direction": m.direction,
            "partner": m.partner,
            "kind": m.kind,
            "method": m.method,
            "path": m.path,
            "status_code": m.status_code,
            "occurred_at": m.occurred_at,
            "media_type": m.media_type,
            "body": m.body,
            "size": m.size,
            "truncated": m.truncated,
        }
        for m in kept
    ]
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
    return [
        {
            "id": r["id"],
            "direction": r["direction"],
            "partner": r["partner"],
            "kind": r["kind"],
            "method": r["method"],
            "path": r["path"],
            "status_code": r["status_code"],
            "occurred_at": r["occurred_at"].isoformat(),
            "media_type": r["media_type"],
            "body": r["body"],
            "size": r["size"],
            "truncated": r["truncated"],
        }
        for r in rows
    ]
