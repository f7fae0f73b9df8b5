"""Partner messages in the store: written with what they produced, read per payment (docs/operations.md)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.partners.capture import PartnerMessage
from gateway.store.tables import partner_message_links, partner_messages

__all__ = ["messages_for", "save_messages"]


async def save_messages(conn: AsyncConnection, messages: Sequence[PartnerMessage]) -> int:
    """Insert the messages and their links in ``conn``'s transaction (two statements); those about no payment
    are not kept. Returns how many were."""
    kept = [m for m in messages if m.instruction_ids]
    if not kept:
        return 0
    await conn.execute(
        insert(partner_messages),
        [
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
        ],
    )
    await conn.execute(
        insert(partner_message_links),
        [{"message_id": m.id, "instruction_id": i} for m in kept for i in dict.fromkeys(m.instruction_ids)],
    )
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
