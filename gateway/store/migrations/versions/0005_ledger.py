"""The ledger: accounts, entries, postings with running balances, periods, exports; the audit chains.

Existing instruction events are linked into the events chain here, in id order,
so ``gateway audit verify`` covers the history written before this revision.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from gateway.store.audit import EVENT_FIELDS, GENESIS, event_content, link
from gateway.store.tables import UTCDateTime

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("instruction_events") as batch:
        batch.add_column(sa.Column("chain_seq", sa.BigInteger()))
        batch.add_column(sa.Column("chain_hash", sa.String(64)))
        batch.create_unique_constraint("uq_instruction_events_chain_seq", ["chain_seq"])
    op.create_table(
        "ledger_accounts",
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("type", sa.String(10), nullable=False),
        sa.Column("business_unit", sa.String(100)),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_ledger_accounts"),
    )
    op.create_index("ix_ledger_accounts_business_unit_name", "ledger_accounts", ["business_unit", "name"])
    op.create_table(
        "ledger_entries",
        sa.Column("id", _BigId, autoincrement=False, nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("memo", sa.String(200), nullable=False),
        sa.Column("instruction_id", sa.String(40)),
        sa.Column("business_unit", sa.String(100)),
        sa.Column("booked_at", UTCDateTime(), nullable=False),
        sa.Column("original_at", UTCDateTime()),
        sa.Column("reverses", sa.BigInteger()),
        sa.Column("chain_hash", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_ledger_entries"),
    )
    op.create_index("ix_ledger_entries_instruction_id", "ledger_entries", ["instruction_id"])
    op.create_index("ix_ledger_entries_booked_at", "ledger_entries", ["booked_at"])
    op.create_index("ix_ledger_entries_business_unit_id", "ledger_entries", ["business_unit", "id"])
    op.create_table(
        "ledger_postings",
        sa.Column("entry_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("line", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("account", sa.String(200), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("debits_after", sa.BigInteger(), nullable=False),
        sa.Column("credits_after", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["entry_id"], ["ledger_entries.id"], name="fk_ledger_postings_entry_id_ledger_entries"),
        sa.PrimaryKeyConstraint("entry_id", "line", name="pk_ledger_postings"),
    )
    op.create_index(
        "ix_ledger_postings_account_currency_entry_id", "ledger_postings", ["account", "currency", "entry_id"]
    )
    op.create_table(
        "ledger_balances",
        sa.Column("account", sa.String(200), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("debits", sa.BigInteger(), nullable=False),
        sa.Column("credits", sa.BigInteger(), nullable=False),
        sa.Column("postings", sa.BigInteger(), nullable=False),
        sa.Column("last_entry_id", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("account", "currency", name="pk_ledger_balances"),
    )
    op.create_table(
        "ledger_periods",
        sa.Column("period", sa.String(7), nullable=False),
        sa.Column("closed_at", UTCDateTime(), nullable=False),
        sa.Column("closed_by", sa.String(64), nullable=False),
        sa.Column("last_entry_id", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("period", name="pk_ledger_periods"),
    )
    op.create_table(
        "ledger_exports",
        sa.Column("scope", sa.String(100), nullable=False),
        sa.Column("batch", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("period", sa.String(7), nullable=False),
        sa.Column("first_entry_id", sa.BigInteger(), nullable=False),
        sa.Column("last_entry_id", sa.BigInteger(), nullable=False),
        sa.Column("entries", sa.Integer(), nullable=False),
        sa.Column("digests", sa.JSON(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("scope", "batch", name="pk_ledger_exports"),
        sa.UniqueConstraint("scope", "period", name="uq_ledger_exports_scope_period"),
    )
    heads = op.create_table(
        "audit_heads",
        sa.Column("chain", sa.String(16), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Column("last_at", UTCDateTime()),
        sa.Column("closed_through", sa.String(7)),
        sa.PrimaryKeyConstraint("chain", name="pk_audit_heads"),
    )
    seq, current = _seal_existing_events()
    op.bulk_insert(
        heads, [{"chain": "events", "seq": seq, "hash": current}, {"chain": "journal", "seq": 0, "hash": GENESIS}]
    )


def _seal_existing_events() -> tuple[int, str]:
    """Link the events already stored into the chain, in id order; the chain's (length, hash)."""
    conn = op.get_bind()
    events = sa.table(
        "instruction_events",
        sa.column("id"),
        sa.column("chain_seq"),
        sa.column("chain_hash"),
        *(sa.column(name, UTCDateTime() if name == "occurred_at" else None) for name in EVENT_FIELDS),
    )
    seq, current = 0, GENESIS
    rows = conn.execute(sa.select(events).order_by(events.c.id)).mappings().all()
    updates = []
    for row in rows:
        seq += 1
        current = link(current, event_content(row))
        updates.append({"b_id": row["id"], "b_seq": seq, "b_hash": current})
    if updates:
        conn.execute(
            events.update()
            .where(events.c.id == sa.bindparam("b_id"))
            .values(chain_seq=sa.bindparam("b_seq"), chain_hash=sa.bindparam("b_hash")),
            updates,
        )
    return seq, current


def downgrade() -> None:
    for table in (
        "audit_heads",
        "ledger_exports",
        "ledger_periods",
        "ledger_balances",
        "ledger_postings",
        "ledger_entries",
        "ledger_accounts",
    ):
        op.drop_table(table)
    with op.batch_alter_table("instruction_events") as batch:
        batch.drop_constraint("uq_instruction_events_chain_seq", type_="unique")
        batch.drop_column("chain_hash")
        batch.drop_column("chain_seq")
