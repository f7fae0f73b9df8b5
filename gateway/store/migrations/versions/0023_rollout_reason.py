"""The reason of a rollout change, as the console asks for it (issue 19).

Revision ID: 0023
Revises: 0024
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0023"
down_revision = "0024"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("rollout_changes", sa.Column("reason", sa.String(500)))


def downgrade() -> None:
    with op.batch_alter_table("rollout_changes") as batch:
        batch.drop_column("reason")
