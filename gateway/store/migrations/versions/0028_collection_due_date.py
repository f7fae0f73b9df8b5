"""Collections: the due date a direct debit asks for (collection contract 1.1), a column of its own.

Contract 1.0 had no field for it; ``metadata.due_date`` stood in. Direct debits not yet sent
to the bank get that date copied into the column, so they go out on the day they asked for.

Revision ID: 0028
Revises: 0018
Create Date: 2026-12-06
"""

from __future__ import annotations

from datetime import date

import sqlalchemy as sa
from alembic import op

revision = "0028"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("collections", sa.Column("due_date", sa.Date()))
    table = sa.table(
        "collections",
        sa.column("id", sa.String()),
        sa.column("kind", sa.String()),
        sa.column("status", sa.String()),
        sa.column("metadata", sa.JSON()),
        sa.column("due_date", sa.Date()),
    )
    conn = op.get_bind()
    waiting = conn.execute(
        sa.select(table.c.id, table.c.metadata).where(
            table.c.kind == "direct_debit", table.c.status.in_(("received", "accepted"))
        )
    )
    for collection_id, metadata in waiting.all():
        try:
            asked = date.fromisoformat((metadata or {}).get("due_date") or "")
        except ValueError:
            continue  # none, or not a date: the adapter rejects it as before (DT01)
        conn.execute(sa.update(table).where(table.c.id == collection_id).values(due_date=asked))


def downgrade() -> None:
    with op.batch_alter_table("collections") as batch:
        batch.drop_column("due_date")
