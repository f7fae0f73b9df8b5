"""Data-lake export: a watermark per dataset (and per event sink) and every Parquet file written.

Revision ID: 0013
Revises: 0014
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from gateway.store.tables import UTCDateTime

revision = "0013"
down_revision = "0014"
branch_labels = None
depends_on = None

_BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "export_watermarks",
        sa.Column("name", sa.String(80), nullable=False),
        sa.Column("key", sa.BigInteger(), nullable=False),
        sa.Column("rows", sa.BigInteger(), nullable=False),
        sa.Column("schema_version", sa.Integer()),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_export_watermarks"),
    )
    op.create_table(
        "export_files",
        sa.Column("id", _BigId, autoincrement=True, nullable=False),
        sa.Column("dataset", sa.String(64), nullable=False),
        sa.Column("path", sa.String(500), nullable=False),
        sa.Column("partition_date", sa.Date(), nullable=False),
        sa.Column("first_key", sa.BigInteger(), nullable=False),
        sa.Column("last_key", sa.BigInteger(), nullable=False),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("schema_version", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_export_files"),
        sa.UniqueConstraint("path", name="uq_export_files_path"),
    )
    op.create_index("ix_export_files_dataset_last_key", "export_files", ["dataset", "last_key"])


def downgrade() -> None:
    op.drop_table("export_files")
    op.drop_table("export_watermarks")
