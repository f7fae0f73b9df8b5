"""Staged rollout: a mode per business unit and partner and its append-only change log (issue 17).

Revision ID: 0019
Revises: 0017
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from gateway.store.tables import UTCDateTime

revision = "0019"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rollout_modes",
        sa.Column("business_unit", sa.String(100), nullable=False),
        sa.Column("partner", sa.String(64), nullable=False),
        sa.Column("mode", sa.String(8), nullable=False),
        sa.Column("percent", sa.Integer()),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("updated_by", sa.String(100), nullable=False),
        sa.PrimaryKeyConstraint("business_unit", "partner", name="pk_rollout_modes"),
    )
    op.create_table(
        "rollout_changes",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("business_unit", sa.String(100), nullable=False),
        sa.Column("partner", sa.String(64), nullable=False),
        sa.Column("from_mode", sa.String(8), nullable=False),
        sa.Column("from_percent", sa.Integer()),
        sa.Column("to_mode", sa.String(8), nullable=False),
        sa.Column("to_percent", sa.Integer()),
        sa.Column("changed_by", sa.String(100), nullable=False),
        sa.Column("changed_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_rollout_changes"),
    )


def downgrade() -> None:
    op.drop_table("rollout_changes")
    op.drop_table("rollout_modes")
