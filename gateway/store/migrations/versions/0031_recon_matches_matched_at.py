"""Matches searched by when they were made: the run's look-up of payments matched lately (issue 14).

Without it, finding the payments matched since a day scanned every match ever made.

Revision ID: 0031
Revises: 0030
Create Date: 2026-12-06
"""

from __future__ import annotations

from alembic import op

revision = "0031"
down_revision = "0030"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_recon_matches_matched_at", "recon_matches", ["matched_at"])


def downgrade() -> None:
    op.drop_index("ix_recon_matches_matched_at", table_name="recon_matches")
