"""Risk screening: history tables, alerts, holds, credit limits; who submitted and who decided.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from gateway.store.tables import UTCDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.add_column("instructions", sa.Column("submitted_by", sa.String(40)))
    op.add_column("instruction_events", sa.Column("actor", sa.String(64)))
    op.create_table(
        "risk_counters",
        sa.Column("key", sa.String(32), nullable=False),
        sa.Column("subject", sa.String(8), nullable=False),
        sa.Column("business_unit", sa.String(100), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("bucket_seconds", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("bucket_start", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("sum_minor", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint(
            "key", "subject", "business_unit", "currency", "bucket_seconds", "bucket_start", name="pk_risk_counters"
        ),
    )
    op.create_table(
        "risk_pairs",
        sa.Column("creditor_key", sa.String(32), nullable=False),
        sa.Column("debtor_key", sa.String(32), nullable=False),
        sa.Column("business_unit", sa.String(100), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("amounts", sa.JSON(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("creditor_key", "debtor_key", "business_unit", "currency", name="pk_risk_pairs"),
    )
    op.create_table(
        "risk_beneficiaries",
        sa.Column("creditor_key", sa.String(32), nullable=False),
        sa.Column("business_unit", sa.String(100), nullable=False),
        sa.Column("first_seen", UTCDateTime(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("max_minor", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("creditor_key", "business_unit", name="pk_risk_beneficiaries"),
    )
    op.create_table(
        "risk_names",
        sa.Column("creditor_name", sa.String(140), nullable=False),
        sa.Column("business_unit", sa.String(100), nullable=False),
        sa.Column("creditor_key", sa.String(32), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("creditor_name", "business_unit", "creditor_key", name="pk_risk_names"),
    )
    op.create_table(
        "risk_recent",
        sa.Column("id", _BigId, autoincrement=True, nullable=False),
        sa.Column("creditor_key", sa.String(32), nullable=False),
        sa.Column("business_unit", sa.String(100), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("instruction_id", sa.String(40), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("remittance", sa.String(140), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_risk_recent"),
    )
    op.create_index("ix_risk_recent_creditor_key_at", "risk_recent", ["creditor_key", "at"])
    op.create_index("ix_risk_recent_at", "risk_recent", ["at"])
    op.create_table(
        "risk_alerts",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("instruction_id", sa.String(40), nullable=False),
        sa.Column("business_unit_id", sa.String(40), nullable=False),
        sa.Column("outcome", sa.String(8), nullable=False),
        sa.Column("reason_code", sa.String(32)),
        sa.Column("findings", sa.JSON(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["instruction_id"], ["instructions.id"], name="fk_risk_alerts_instruction_id_instructions"
        ),
        sa.ForeignKeyConstraint(
            ["business_unit_id"], ["business_units.id"], name="fk_risk_alerts_business_unit_id_business_units"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_risk_alerts"),
    )
    op.create_index("ix_risk_alerts_created_at_id", "risk_alerts", ["created_at", "id"])
    op.create_index("ix_risk_alerts_instruction_id", "risk_alerts", ["instruction_id"])
    op.create_table(
        "holds",
        sa.Column("instruction_id", sa.String(40), nullable=False),
        sa.Column("business_unit_id", sa.String(40), nullable=False),
        sa.Column("reason_code", sa.String(32), nullable=False),
        sa.Column("findings", sa.JSON(), nullable=False),
        sa.Column("held_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("decision", sa.String(10)),
        sa.Column("decided_by", sa.String(40)),
        sa.Column("decided_at", UTCDateTime()),
        sa.Column("comment", sa.String(500)),
        sa.ForeignKeyConstraint(["instruction_id"], ["instructions.id"], name="fk_holds_instruction_id_instructions"),
        sa.ForeignKeyConstraint(
            ["business_unit_id"], ["business_units.id"], name="fk_holds_business_unit_id_business_units"
        ),
        sa.PrimaryKeyConstraint("instruction_id", name="pk_holds"),
    )
    op.create_index("ix_holds_decision_expires_at", "holds", ["decision", "expires_at"])
    op.create_table(
        "credit_limits",
        sa.Column("counterparty", sa.String(64), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("limit_minor", sa.BigInteger(), nullable=False),
        sa.Column("reserved_minor", sa.BigInteger(), nullable=False),
        sa.Column("consumed_minor", sa.BigInteger(), nullable=False),
        sa.Column("on_exceed", sa.String(8), nullable=False),
        sa.Column("source", sa.String(8), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("counterparty", "currency", name="pk_credit_limits"),
    )
    op.create_table(
        "credit_reservations",
        sa.Column("instruction_id", sa.String(40), nullable=False),
        sa.Column("counterparty", sa.String(64), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("state", sa.String(10), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["instruction_id"], ["instructions.id"], name="fk_credit_reservations_instruction_id_instructions"
        ),
        sa.PrimaryKeyConstraint("instruction_id", name="pk_credit_reservations"),
    )


def downgrade() -> None:
    for table in (
        "credit_reservations",
        "credit_limits",
        "holds",
        "risk_alerts",
        "risk_recent",
        "risk_names",
        "risk_beneficiaries",
        "risk_pairs",
        "risk_counters",
    ):
        op.drop_table(table)
    with op.batch_alter_table("instruction_events") as batch:
        batch.drop_column("actor")
    with op.batch_alter_table("instructions") as batch:
        batch.drop_column("submitted_by")
