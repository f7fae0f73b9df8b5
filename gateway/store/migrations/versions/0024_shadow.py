"""Shadow outcomes: what a partner in shadow mode would have done with each payment (issue 17).

Revision ID: 0024
Revises: 0020
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from gateway.store.tables import UTCDateTime

revision = "0024"
down_revision = "0020"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "shadow_outcomes",
        sa.Column("instruction_id", sa.String(40), nullable=False),
        sa.Column("partner", sa.String(64), nullable=False),
        sa.Column("business_unit", sa.String(100), nullable=False),
        sa.Column("reference", sa.String(35), nullable=False),
        sa.Column("outcome", sa.String(24), nullable=False),
        sa.Column("expected_status", sa.String(16)),
        sa.Column("message", sa.String(64)),
        sa.Column("message_sha256", sa.String(64)),
        sa.Column("reason_code", sa.String(32)),
        sa.Column("detail", sa.String(500)),
        sa.Column("recorded_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("instruction_id", "partner", name="pk_shadow_outcomes"),
    )
    op.create_index("ix_shadow_outcomes_business_unit_partner", "shadow_outcomes", ["business_unit", "partner"])


def downgrade() -> None:
    op.drop_index("ix_shadow_outcomes_business_unit_partner", table_name="shadow_outcomes")
    op.drop_table("shadow_outcomes")
