"""Reconciliation: partner statements, their lines, and the matches found for them.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from gateway.store.tables import UTCDateTime

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "statements",
        sa.Column("id", _BigId, autoincrement=True, nullable=False),
        sa.Column("source", sa.String(64), nullable=False),
        sa.Column("statement_id", sa.String(100), nullable=False),
        sa.Column("format", sa.String(20), nullable=False),
        sa.Column("account", sa.String(40)),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("sequence", sa.BigInteger()),
        sa.Column("period_start", sa.Date()),
        sa.Column("period_end", sa.Date()),
        sa.Column("opening_minor", sa.BigInteger()),
        sa.Column("closing_minor", sa.BigInteger()),
        sa.Column("line_count", sa.Integer(), nullable=False),
        sa.Column("credits_minor", sa.BigInteger(), nullable=False),
        sa.Column("debits_minor", sa.BigInteger(), nullable=False),
        sa.Column("file_sha256", sa.String(64), nullable=False),
        sa.Column("imported_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_statements"),
        sa.UniqueConstraint("source", "statement_id", name="uq_statements_source_statement_id"),
    )
    op.create_index("ix_statements_source_account_sequence", "statements", ["source", "account", "sequence"])
    op.create_table(
        "statement_lines",
        sa.Column("statement_pk", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("line", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("direction", sa.String(6), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("booked_on", sa.Date()),
        sa.Column("value_on", sa.Date()),
        sa.Column("end_to_end_id", sa.String(35)),
        sa.Column("partner_reference", sa.String(35)),
        sa.Column("servicer_reference", sa.String(35)),
        sa.Column("counterparty_name", sa.String(140)),
        sa.Column("counterparty_account", sa.String(40)),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("reason_code", sa.String(8)),
        sa.Column("original_reference", sa.String(35)),
        sa.Column("text", sa.String(140)),
        sa.ForeignKeyConstraint(["statement_pk"], ["statements.id"], name="fk_statement_lines_statement_pk_statements"),
        sa.PrimaryKeyConstraint("statement_pk", "line", name="pk_statement_lines"),
    )
    op.create_index("ix_statement_lines_end_to_end_id", "statement_lines", ["end_to_end_id"])
    op.create_index("ix_statement_lines_partner_reference", "statement_lines", ["partner_reference"])
    op.create_table(
        "recon_matches",
        sa.Column("statement_pk", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("line", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("instruction_id", sa.String(40), nullable=False),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("rule", sa.String(40), nullable=False),
        sa.Column("matched_at", UTCDateTime(), nullable=False),
        sa.Column("confirmed_by", sa.String(64)),
        sa.Column("confirmed_at", UTCDateTime()),
        sa.ForeignKeyConstraint(["statement_pk"], ["statements.id"], name="fk_recon_matches_statement_pk_statements"),
        sa.PrimaryKeyConstraint("statement_pk", "line", name="pk_recon_matches"),
        sa.UniqueConstraint("instruction_id", name="uq_recon_matches_instruction_id"),
    )
    op.create_index("ix_recon_matches_status_statement_pk", "recon_matches", ["status", "statement_pk"])


def downgrade() -> None:
    op.drop_table("recon_matches")
    op.drop_table("statement_lines")
    op.drop_table("statements")
