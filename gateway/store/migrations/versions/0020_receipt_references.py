"""Receipts keep the bank's reference of their credit, so a notified credit is one receipt (statement fetch).

A credit notified intraday (camt.054) comes again on the day's statement (camt.053) with the same
account servicer's reference: the second line is stored but makes no second receipt.

Revision ID: 0020
Revises: 0029
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0029"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("receipts", sa.Column("servicer_reference", sa.String(35)))
    op.execute(
        "UPDATE receipts SET servicer_reference = (SELECT l.servicer_reference FROM statement_lines l"
        " WHERE l.statement_pk = receipts.statement_pk AND l.line = receipts.line)"
    )
    op.create_index("ix_receipts_source_servicer_reference", "receipts", ["source", "servicer_reference"])


def downgrade() -> None:
    op.drop_index("ix_receipts_source_servicer_reference", table_name="receipts")
    with op.batch_alter_table("receipts") as batch:
        batch.drop_column("servicer_reference")
