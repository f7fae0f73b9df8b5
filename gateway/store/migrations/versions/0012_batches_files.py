"""Batches and ERP files: many instructions in one request or one pain.001 file.

Revision ID: 0012
Revises: 0010
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from gateway.store.tables import UTCDateTime

revision = "0012"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("instructions") as batch:
        batch.add_column(sa.Column("batch_id", sa.String(40)))
    op.create_index("ix_instructions_batch_id_status", "instructions", ["batch_id", "status"])
    op.create_table(
        "instruction_batches",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("business_unit_id", sa.String(40), nullable=False),
        sa.Column("idempotency_key", sa.String(255), nullable=False),
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=False),
        sa.Column("response", sa.JSON(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["business_unit_id"], ["business_units.id"], name="fk_instruction_batches_business_unit_id_business_units"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_instruction_batches"),
        sa.UniqueConstraint(
            "business_unit_id", "idempotency_key", name="uq_instruction_batches_business_unit_id_idempotency_key"
        ),
    )
    op.create_table(
        "payment_files",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("business_unit_id", sa.String(40), nullable=False),
        sa.Column("message_id", sa.String(35), nullable=False),
        sa.Column("content_sha256", sa.String(64), nullable=False),
        sa.Column("version", sa.String(20), nullable=False),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("reason", sa.String(500)),
        sa.Column("payments", sa.Integer(), nullable=False),
        sa.Column("control_sum", sa.String(24)),
        sa.Column("items", sa.JSON(), nullable=False),
        sa.Column("source", sa.String(10), nullable=False),
        sa.Column("report_at", UTCDateTime()),
        sa.Column("report_events", sa.BigInteger()),
        sa.Column("report_final", sa.Boolean(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["business_unit_id"], ["business_units.id"], name="fk_payment_files_business_unit_id_business_units"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_payment_files"),
        sa.UniqueConstraint("business_unit_id", "message_id", name="uq_payment_files_business_unit_id_message_id"),
    )
    op.create_index("ix_payment_files_report_final_created_at", "payment_files", ["report_final", "created_at"])


def downgrade() -> None:
    op.drop_table("payment_files")
    op.drop_table("instruction_batches")
    op.drop_index("ix_instructions_batch_id_status", table_name="instructions")
    with op.batch_alter_table("instructions") as batch:
        batch.drop_column("batch_id")
