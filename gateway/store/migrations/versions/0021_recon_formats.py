"""Reconciliation: rejected suggestions (never suggested again) and the items of a settlement line (issue 14).

Revision ID: 0021
Revises: 0023
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from gateway.store.tables import UTCDateTime

revision = "0021"
down_revision = "0023"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "recon_rejections",
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("match_id", sa.BigInteger(), nullable=False),
        sa.Column("source", sa.String(64), nullable=False),
        sa.Column("rejected_by", sa.String(64), nullable=False),
        sa.Column("rejected_at", UTCDateTime(), nullable=False),
        sa.Column("reason", sa.String(200), nullable=False),
        sa.PrimaryKeyConstraint("fingerprint", name="pk_recon_rejections"),
    )
    op.create_table(
        "statement_line_items",
        sa.Column("statement_pk", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("line", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("item", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("kind", sa.String(12), nullable=False),
        sa.Column("reference", sa.String(64), nullable=False),
        sa.Column("partner_reference", sa.String(64)),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("fee_minor", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["statement_pk", "line"],
            ["statement_lines.statement_pk", "statement_lines.line"],
            name="fk_statement_line_items_statement_pk_statement_lines",
        ),
        sa.PrimaryKeyConstraint("statement_pk", "line", "item", name="pk_statement_line_items"),
    )


def downgrade() -> None:
    op.drop_table("statement_line_items")
    op.drop_table("recon_rejections")
