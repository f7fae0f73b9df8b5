"""Watermarks of the data-lake export and the event sinks: how far each has gone (``export_watermarks``).

Kept apart from ``gateway.finance.lake`` so the event relay and the serving process read and move
them without loading Arrow and Parquet (docs/data-export.md, "Where the export runs").
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.errors import GatewayError
from gateway.store.tables import export_watermarks

__all__ = ["ExportError", "advance_watermark", "read_watermark", "watermarks"]


class ExportError(GatewayError):
    """The export cannot go on (an unknown dataset, a folder it cannot write, a watermark moved under it)."""

    default_message = "the data-lake export failed"


async def watermarks(conn: AsyncConnection) -> dict[str, dict[str, Any]]:
    """Every watermark: name → {key, rows, schema_version, updated_at}."""
    result = await conn.execute(select(export_watermarks).order_by(export_watermarks.c.name))
    return {r.name: {k: v for k, v in r._mapping.items() if k != "name"} for r in result}


async def read_watermark(conn: AsyncConnection, name: str) -> tuple[int, int]:
    """A watermark's (key, rows); (0, 0) before the first run."""
    row = (
        await conn.execute(
            select(export_watermarks.c.key, export_watermarks.c.rows).where(export_watermarks.c.name == name)
        )
    ).first()
    return (int(row[0]), int(row[1])) if row else (0, 0)


async def advance_watermark(
    conn: AsyncConnection, name: str, old: int, new: int, rows: int, now: datetime, version: int | None = None
) -> None:
    """Move a watermark from ``old`` to ``new`` (adding ``rows``); refuse if someone else moved it first."""
    values = {"key": new, "rows": export_watermarks.c.rows + rows, "updated_at": now, "schema_version": version}
    moved = await conn.execute(
        update(export_watermarks)
        .where(export_watermarks.c.name == name, export_watermarks.c.key == old)
        .values(**values)
    )
    if moved.rowcount == 1:
        return
    exists = await conn.scalar(select(func.count()).where(export_watermarks.c.name == name))
    if exists:
        raise ExportError(f"the watermark {name!r} moved during this run: is another export running?")
    await conn.execute(
        insert(export_watermarks).values(name=name, key=new, rows=rows, schema_version=version, updated_at=now)
    )
