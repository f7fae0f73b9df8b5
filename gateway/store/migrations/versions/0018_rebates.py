"""Rebate accruals per program, distributor, period and currency (issue 13, rebates).

Revision ID: 0018
Revises: 0019
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from gateway.store.tables import UTCDateTime

revision = "0018"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rebate_accruals",
        sa.Column("program", sa.String(64), nullable=False),
        sa.Column("distributor", sa.String(64), nullable=False),
        sa.Column("period", sa.String(7), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("volume_minor", sa.BigInteger(), nullable=False),
        sa.Column("accrued_minor", sa.BigInteger(), nullable=False),
        sa.Column("final_minor", sa.BigInteger()),
        sa.Column("credited_minor", sa.BigInteger()),
        sa.Column("allocations", sa.JSON()),
        sa.Column("instruction_id", sa.String(40)),
        sa.Column("settled_at", UTCDateTime()),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("program", "distributor", "period", "currency", name="pk_rebate_accruals"),
    )
    op.create_index("ix_rebate_accruals_period_settled_at", "rebate_accruals", ["period", "settled_at"])


def downgrade() -> None:
    op.drop_index("ix_rebate_accruals_period_settled_at", table_name="rebate_accruals")
    op.drop_table("rebate_accruals")
