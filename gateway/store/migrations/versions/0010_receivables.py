"""Money in: receivables, receipts and their allocations, distributor credit lines and reservations.

Also the structured creditor reference (ISO 11649) of a statement line.

Revision ID: 0010
Revises: 0008
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from gateway.store.tables import UTCDateTime

revision = "0010"
down_revision = "0008"
branch_labels = None
depends_on = None

_BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("statement_lines") as batch:
        batch.add_column(sa.Column("remittance_reference", sa.String(35)))
    op.create_table(
        "receivables",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("business_unit_id", sa.String(40), nullable=False),
        sa.Column("business_unit", sa.String(100), nullable=False),
        sa.Column("invoice_number", sa.String(35), nullable=False),
        sa.Column("distributor", sa.String(64), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("paid_minor", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("due_date", sa.Date(), nullable=False),
        sa.Column("structured_reference", sa.String(35)),
        sa.Column("payer_account", sa.String(40)),
        sa.Column("reservation_id", sa.String(40)),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["business_unit_id"], ["business_units.id"], name="fk_receivables_business_unit_id_business_units"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_receivables"),
        sa.UniqueConstraint(
            "business_unit_id", "invoice_number", name="uq_receivables_business_unit_id_invoice_number"
        ),
        sa.UniqueConstraint("reservation_id", name="uq_receivables_reservation_id"),
    )
    op.create_index("ix_receivables_structured_reference", "receivables", ["structured_reference"])
    op.create_index("ix_receivables_distributor_status", "receivables", ["distributor", "status"])
    op.create_index("ix_receivables_status_due_date", "receivables", ["status", "due_date"])
    op.create_table(
        "receipts",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("statement_pk", sa.BigInteger(), nullable=False),
        sa.Column("line", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(64), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("unapplied_minor", sa.BigInteger(), nullable=False),
        sa.Column("state", sa.String(12), nullable=False),
        sa.Column("distributor", sa.String(64)),
        sa.Column("booked_on", sa.Date()),
        sa.Column("payer_name", sa.String(140)),
        sa.Column("payer_account", sa.String(40)),
        sa.Column("structured_reference", sa.String(35)),
        sa.Column("text", sa.String(140)),
        sa.Column("refund_instruction_id", sa.String(40)),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["statement_pk"], ["statements.id"], name="fk_receipts_statement_pk_statements"),
        sa.PrimaryKeyConstraint("id", name="pk_receipts"),
        sa.UniqueConstraint("statement_pk", "line", name="uq_receipts_statement_pk_line"),
    )
    op.create_index("ix_receipts_state_id", "receipts", ["state", "id"])
    op.create_table(
        "receipt_allocations",
        sa.Column("id", _BigId, autoincrement=True, nullable=False),
        sa.Column("receipt_id", sa.String(40), nullable=False),
        sa.Column("receivable_id", sa.String(40), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("rule", sa.String(20), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["receipt_id"], ["receipts.id"], name="fk_receipt_allocations_receipt_id_receipts"),
        sa.ForeignKeyConstraint(
            ["receivable_id"], ["receivables.id"], name="fk_receipt_allocations_receivable_id_receivables"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_receipt_allocations"),
    )
    op.create_index("ix_receipt_allocations_receipt_id", "receipt_allocations", ["receipt_id"])
    op.create_index("ix_receipt_allocations_receivable_id", "receipt_allocations", ["receivable_id"])
    op.create_table(
        "distributor_credit_lines",
        sa.Column("distributor", sa.String(64), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("limit_minor", sa.BigInteger(), nullable=False),
        sa.Column("receivables_minor", sa.BigInteger(), nullable=False),
        sa.Column("reserved_minor", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("distributor", "currency", name="pk_distributor_credit_lines"),
    )
    op.create_table(
        "distributor_reservations",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("distributor", sa.String(64), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("state", sa.String(10), nullable=False),
        sa.Column("order_reference", sa.String(35)),
        sa.Column("business_unit_id", sa.String(40), nullable=False),
        sa.Column("receivable_id", sa.String(40)),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["business_unit_id"],
            ["business_units.id"],
            name="fk_distributor_reservations_business_unit_id_business_units",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_distributor_reservations"),
    )
    op.create_index("ix_distributor_reservations_state_expires_at", "distributor_reservations", ["state", "expires_at"])
    op.create_index(
        "ix_distributor_reservations_distributor_currency", "distributor_reservations", ["distributor", "currency"]
    )


def downgrade() -> None:
    op.drop_table("distributor_reservations")
    op.drop_table("distributor_credit_lines")
    op.drop_table("receipt_allocations")
    op.drop_table("receipts")
    op.drop_table("receivables")
    with op.batch_alter_table("statement_lines") as batch:
        batch.drop_column("remittance_reference")
