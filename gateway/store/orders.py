"""Instruction rows with their decrypted ``PaymentOrder``: what the dispatcher, poller and holds load."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from gateway.domain.order import PaymentOrder
from gateway.errors import NotFoundError
from gateway.store.codec import InstructionCodec
from gateway.store.tables import business_units, instructions

__all__ = ["Orders", "fetch_orders"]


async def fetch_orders(
    conn: AsyncConnection, codec: InstructionCodec, instruction_ids: Sequence[str]
) -> dict[str, tuple[dict[str, Any], PaymentOrder]]:
    """Rows and decrypted orders for the ids that exist, on a given connection (one query)."""
    rows = (
        (
            await conn.execute(
                select(instructions, business_units.c.name.label("business_unit_name"))
                .join(business_units, business_units.c.id == instructions.c.business_unit_id)
                .where(instructions.c.id.in_(list(instruction_ids)))
            )
        )
        .mappings()
        .all()
    )
    return {row["id"]: (dict(row), codec.payment_order(row, row["business_unit_name"])) for row in rows}


class Orders:
    """Loads instructions as orders, each load on a connection of its own."""

    def __init__(self, engine: AsyncEngine, codec: InstructionCodec) -> None:
        self.engine = engine
        self.codec = codec

    async def load_many(self, instruction_ids: Sequence[str]) -> dict[str, tuple[dict[str, Any], PaymentOrder]]:
        """Rows and decrypted ``PaymentOrder``s for the ids that exist, in one query."""
        if not instruction_ids:
            return {}
        async with self.engine.connect() as conn:
            return await fetch_orders(conn, self.codec, instruction_ids)

    async def load(self, instruction_id: str) -> tuple[dict[str, Any], PaymentOrder]:
        """The instruction row and its decrypted ``PaymentOrder``; ``NotFoundError`` if there is none."""
        found = await self.load_many([instruction_id])
        if instruction_id not in found:
            raise NotFoundError(f"instruction {instruction_id} not found")
        return found[instruction_id]
