"""Process heartbeats, scheduled jobs' leases and shared circuit breakers (issue 18).

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from gateway.store.tables import UTCDateTime

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "processes",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("heartbeat_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_processes"),
    )
    op.create_table(
        "job_leases",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("lease_owner", sa.String(64)),
        sa.Column("lease_until", UTCDateTime()),
        sa.PrimaryKeyConstraint("name", name="pk_job_leases"),
    )
    op.create_table(
        "circuit_states",
        sa.Column("partner", sa.String(64), nullable=False),
        sa.Column("opened_at", UTCDateTime()),
        sa.Column("changed_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("partner", name="pk_circuit_states"),
    )


def downgrade() -> None:
    op.drop_table("circuit_states")
    op.drop_table("job_leases")
    op.drop_table("processes")
