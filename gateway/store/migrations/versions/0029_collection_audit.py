"""Collections' event history joins the tamper evidence: its own hash chain (``collections``).

The events already stored are linked into the chain in id order, as 0005 did for
instruction events, so ``gateway audit verify`` covers every collection from the start.

Revision ID: 0029
Revises: 0028
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from gateway.store.audit import COLLECTION_EVENT_FIELDS, COLLECTIONS, GENESIS, event_content, link
from gateway.store.tables import UTCDateTime

revision = "0029"
down_revision = "0028"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("collection_events") as batch:
        batch.add_column(sa.Column("chain_seq", sa.BigInteger()))
        batch.add_column(sa.Column("chain_hash", sa.String(64)))
        batch.create_unique_constraint("uq_collection_events_chain_seq", ["chain_seq"])
    conn = op.get_bind()
    events = sa.table(
        "collection_events",
        sa.column("id"),
        sa.column("chain_seq"),
        sa.column("chain_hash"),
        *(sa.column(name, UTCDateTime() if name == "occurred_at" else None) for name in COLLECTION_EVENT_FIELDS),
    )
    seq, current = 0, GENESIS
    updates = []
    for row in conn.execute(sa.select(events).order_by(events.c.id)).mappings().all():
        seq += 1
        current = link(current, event_content(row, COLLECTION_EVENT_FIELDS))
        updates.append({"b_id": row["id"], "b_seq": seq, "b_hash": current})
    if updates:
        conn.execute(
            events.update()
            .where(events.c.id == sa.bindparam("b_id"))
            .values(chain_seq=sa.bindparam("b_seq"), chain_hash=sa.bindparam("b_hash")),
            updates,
        )
    heads = sa.table("audit_heads", sa.column("chain"), sa.column("seq"), sa.column("hash"))
    op.bulk_insert(heads, [{"chain": COLLECTIONS, "seq": seq, "hash": current}])


def downgrade() -> None:
    op.execute(sa.text("DELETE FROM audit_heads WHERE chain = 'collections'"))
    with op.batch_alter_table("collection_events") as batch:
        batch.drop_constraint("uq_collection_events_chain_seq", type_="unique")
        batch.drop_column("chain_hash")
        batch.drop_column("chain_seq")
