"""Partner messages: masked requests and answers exchanged with partners, linked to their payments (issue 19).

Revision ID: 0030
Revises: 0021
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from gateway.store.tables import UTCDateTime

revision = "0030"
down_revision = "0021"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "partner_messages",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("direction", sa.String(3), nullable=False),
        sa.Column("partner", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("method", sa.String(8), nullable=False),
        sa.Column("path", sa.String(300), nullable=False),
        sa.Column("status_code", sa.Integer()),
        sa.Column("occurred_at", UTCDateTime(), nullable=False),
        sa.Column("media_type", sa.String(100)),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("truncated", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_partner_messages"),
    )
    op.create_table(
        "partner_message_links",
        sa.Column("message_id", sa.String(40), nullable=False),
        sa.Column("instruction_id", sa.String(40), nullable=False),
        sa.ForeignKeyConstraint(
            ["message_id"], ["partner_messages.id"], name="fk_partner_message_links_message_id_partner_messages"
        ),
        sa.ForeignKeyConstraint(
            ["instruction_id"], ["instructions.id"], name="fk_partner_message_links_instruction_id_instructions"
        ),
        sa.PrimaryKeyConstraint("message_id", "instruction_id", name="pk_partner_message_links"),
    )
    op.create_index("ix_partner_message_links_instruction_id", "partner_message_links", ["instruction_id"])


def downgrade() -> None:
    op.drop_index("ix_partner_message_links_instruction_id", table_name="partner_message_links")
    op.drop_table("partner_message_links")
    op.drop_table("partner_messages")
