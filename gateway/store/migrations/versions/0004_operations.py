"""Day-one operations: when an API key was last used; indexes for the instruction list filters.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from gateway.store.tables import UTCDateTime

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

# GET /v1/instructions filters within one business unit, newest first
_INDEXES = (
    ("ix_instructions_business_unit_id_status_id", ["business_unit_id", "status", "id"]),
    ("ix_instructions_business_unit_id_adapter_id", ["business_unit_id", "adapter", "id"]),
    ("ix_instructions_business_unit_id_created_at", ["business_unit_id", "created_at"]),
)


def upgrade() -> None:
    op.add_column("api_keys", sa.Column("last_used_at", UTCDateTime()))
    for name, columns in _INDEXES:
        op.create_index(name, "instructions", columns)


def downgrade() -> None:
    for name, _ in reversed(_INDEXES):
        op.drop_index(name, "instructions")
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("last_used_at")
