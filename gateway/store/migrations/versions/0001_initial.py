"""Initial schema: business units, API keys, instructions, events, outbox, idempotency.

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from gateway.store.tables import UTCDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "business_units",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("default_contract_version", sa.String(16)),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_business_units"),
        sa.UniqueConstraint("name", name="uq_business_units_name"),
    )
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("business_unit_id", sa.String(40), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("scopes", sa.String(200), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("revoked_at", UTCDateTime()),
        sa.PrimaryKeyConstraint("id", name="pk_api_keys"),
        sa.ForeignKeyConstraint(
            ["business_unit_id"], ["business_units.id"], name="fk_api_keys_business_unit_id_business_units"
        ),
        sa.UniqueConstraint("key_hash", name="uq_api_keys_key_hash"),
    )
    op.create_table(
        "instructions",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("business_unit_id", sa.String(40), nullable=False),
        sa.Column("reference", sa.String(35), nullable=False),
        sa.Column("type", sa.String(20), nullable=False),
        sa.Column("amount", sa.String(24), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("debtor_name", sa.String(140), nullable=False),
        sa.Column("debtor_account", sa.Text(), nullable=False),
        sa.Column("debtor_agent", sa.String(11)),
        sa.Column("creditor_name", sa.String(140), nullable=False),
        sa.Column("creditor_account", sa.Text(), nullable=False),
        sa.Column("creditor_agent", sa.String(11)),
        sa.Column("masked", sa.JSON(), nullable=False),
        sa.Column("remittance_information", sa.String(140)),
        sa.Column("requested_execution_date", sa.Date()),
        sa.Column("urgency", sa.String(10), nullable=False),
        sa.Column("channel", sa.String(64)),
        sa.Column("metadata", sa.JSON(), nullable=False),
        sa.Column("contract_version", sa.String(16), nullable=False),
        sa.Column("adapter", sa.String(64)),
        sa.Column("partner_reference", sa.String(64)),
        sa.Column("event_count", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_instructions"),
        sa.ForeignKeyConstraint(
            ["business_unit_id"],
            ["business_units.id"],
            name="fk_instructions_business_unit_id_business_units",
        ),
        sa.UniqueConstraint("business_unit_id", "reference", name="uq_instructions_business_unit_id_reference"),
    )
    op.create_index("ix_instructions_business_unit_id_id", "instructions", ["business_unit_id", "id"])
    op.create_index("ix_instructions_status_updated_at", "instructions", ["status", "updated_at"])
    op.create_index("ix_instructions_adapter_partner_reference", "instructions", ["adapter", "partner_reference"])
    op.create_table(
        "instruction_events",
        sa.Column("id", _BigId, nullable=False, autoincrement=True),
        sa.Column("instruction_id", sa.String(40), nullable=False),
        sa.Column("sequence", sa.Integer(), nullable=False),
        sa.Column("previous_status", sa.String(16)),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("applied", sa.Boolean(), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("adapter", sa.String(64)),
        sa.Column("partner_reference", sa.String(64)),
        sa.Column("partner_status", sa.String(16)),
        sa.Column("reason_code", sa.String(32)),
        sa.Column("reason", sa.String(500)),
        sa.Column("occurred_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_instruction_events"),
        sa.ForeignKeyConstraint(
            ["instruction_id"], ["instructions.id"], name="fk_instruction_events_instruction_id_instructions"
        ),
        sa.UniqueConstraint("instruction_id", "sequence", name="uq_instruction_events_instruction_id_sequence"),
    )
    op.create_table(
        "outbox",
        sa.Column("id", _BigId, nullable=False, autoincrement=True),
        sa.Column("instruction_id", sa.String(40), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("available_at", UTCDateTime(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("lease_owner", sa.String(64)),
        sa.Column("lease_until", UTCDateTime()),
        sa.Column("last_error", sa.String(500)),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_outbox"),
        sa.ForeignKeyConstraint(["instruction_id"], ["instructions.id"], name="fk_outbox_instruction_id_instructions"),
    )
    op.create_index("ix_outbox_available_at", "outbox", ["available_at"])
    op.create_table(
        "idempotency_keys",
        sa.Column("business_unit_id", sa.String(40), nullable=False),
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=False),
        sa.Column("response", sa.JSON(), nullable=False),
        sa.Column("instruction_id", sa.String(40)),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("business_unit_id", "key", name="pk_idempotency_keys"),
        sa.ForeignKeyConstraint(
            ["business_unit_id"],
            ["business_units.id"],
            name="fk_idempotency_keys_business_unit_id_business_units",
        ),
    )


def downgrade() -> None:
    for table in ("idempotency_keys", "outbox", "instruction_events", "instructions", "api_keys", "business_units"):
        op.drop_table(table)
