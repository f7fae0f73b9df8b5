"""Go-live: payment history migrated from the old system, and the per-file import checkpoints.

Revision ID: 0015
Revises: 0011
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from gateway.store.tables import UTCDateTime

revision = "0015"
down_revision = "0011"
branch_labels = None
depends_on = None

_BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "migrated_payments",
        sa.Column("id", _BigId, autoincrement=True, nullable=False),
        sa.Column("business_unit", sa.String(100), nullable=False),
        sa.Column("reference", sa.String(35), nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("type", sa.String(20), nullable=False),
        sa.Column("amount", sa.String(24), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("debtor_name", sa.String(140), nullable=False),
        sa.Column("debtor_key", sa.String(32), nullable=False),
        sa.Column("creditor_name", sa.String(140), nullable=False),
        sa.Column("creditor_key", sa.String(32), nullable=False),
        sa.Column("masked", sa.JSON(), nullable=False),
        sa.Column("remittance_information", sa.String(140)),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("status_at", UTCDateTime(), nullable=False),
        sa.Column("source_file", sa.String(64), nullable=False),
        sa.Column("line", sa.Integer(), nullable=False),
        sa.Column("imported_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_migrated_payments"),
        sa.UniqueConstraint("business_unit", "reference", name="uq_migrated_payments_business_unit_reference"),
        sa.UniqueConstraint("business_unit", "content_hash", name="uq_migrated_payments_business_unit_content_hash"),
    )
    op.create_table(
        "migration_checkpoints",
        sa.Column("business_unit", sa.String(100), nullable=False),
        sa.Column("file_sha256", sa.String(64), nullable=False),
        sa.Column("file_name", sa.String(255), nullable=False),
        sa.Column("format", sa.String(8), nullable=False),
        sa.Column("rows_done", sa.Integer(), nullable=False),
        sa.Column("imported", sa.Integer(), nullable=False),
        sa.Column("duplicates", sa.Integer(), nullable=False),
        sa.Column("rejected", sa.Integer(), nullable=False),
        sa.Column("finished", sa.Boolean(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("business_unit", "file_sha256", name="pk_migration_checkpoints"),
    )


def downgrade() -> None:
    op.drop_table("migration_checkpoints")
    op.drop_table("migrated_payments")
