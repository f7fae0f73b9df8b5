"""Instruction contract 1.1/2.0 fields: purpose, ultimate parties, structured creditor reference.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_COLUMNS = (
    ("creditor_reference", sa.String(35)),
    ("purpose", sa.String(4)),
    ("ultimate_debtor", sa.JSON()),
    ("ultimate_creditor", sa.JSON()),
)


def upgrade() -> None:
    # nullable additions only: instructions stored under 1.0 simply have none of these
    for name, type_ in _COLUMNS:
        op.add_column("instructions", sa.Column(name, type_))


def downgrade() -> None:
    with op.batch_alter_table("instructions") as batch:
        for name, _ in reversed(_COLUMNS):
            batch.drop_column(name)
