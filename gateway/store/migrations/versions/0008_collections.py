"""Collections: money the enterprise pulls in (card and wallet charges, direct debits), their events,
refunds, outbox and idempotency keys.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from gateway.store.tables import UTCDateTime

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "collections",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("business_unit_id", sa.String(40), nullable=False),
        sa.Column("reference", sa.String(35), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("amount", sa.String(24), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("payer_name", sa.String(140), nullable=False),
        sa.Column("payer_instrument", sa.Text(), nullable=False),
        sa.Column("masked", sa.JSON(), nullable=False),
        sa.Column("mandate", sa.JSON()),
        sa.Column("bic", sa.String(11)),
        sa.Column("description", sa.String(140)),
        sa.Column("capture", sa.String(8), nullable=False),
        sa.Column("captured_at", UTCDateTime()),
        sa.Column("channel", sa.String(64)),
        sa.Column("metadata", sa.JSON(), nullable=False),
        sa.Column("contract_version", sa.String(16), nullable=False),
        sa.Column("adapter", sa.String(64)),
        sa.Column("partner_reference", sa.String(64)),
        sa.Column("refunded_minor", sa.BigInteger(), nullable=False),
        sa.Column("event_count", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("submitted_by", sa.String(40)),
        sa.ForeignKeyConstraint(
            ["business_unit_id"], ["business_units.id"], name="fk_collections_business_unit_id_business_units"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_collections"),
        sa.UniqueConstraint("business_unit_id", "reference", name="uq_collections_business_unit_id_reference"),
    )
    op.create_index("ix_collections_business_unit_id_id", "collections", ["business_unit_id", "id"])
    op.create_index("ix_collections_business_unit_id_status_id", "collections", ["business_unit_id", "status", "id"])
    op.create_index("ix_collections_business_unit_id_kind_id", "collections", ["business_unit_id", "kind", "id"])
    op.create_index("ix_collections_business_unit_id_created_at", "collections", ["business_unit_id", "created_at"])
    op.create_index("ix_collections_adapter_partner_reference", "collections", ["adapter", "partner_reference"])
    op.create_table(
        "collection_events",
        sa.Column("id", _BigId, autoincrement=True, nullable=False),
        sa.Column("collection_id", sa.String(40), nullable=False),
        sa.Column("sequence", sa.Integer(), nullable=False),
        sa.Column("previous_status", sa.String(16)),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("applied", sa.Boolean(), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("adapter", sa.String(64)),
        sa.Column("partner_reference", sa.String(64)),
        sa.Column("partner_status", sa.String(32)),
        sa.Column("reason_code", sa.String(32)),
        sa.Column("reason", sa.String(500)),
        sa.Column("occurred_at", UTCDateTime(), nullable=False),
        sa.Column("actor", sa.String(64)),
        sa.ForeignKeyConstraint(
            ["collection_id"], ["collections.id"], name="fk_collection_events_collection_id_collections"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_collection_events"),
        sa.UniqueConstraint("collection_id", "sequence", name="uq_collection_events_collection_id_sequence"),
    )
    op.create_table(
        "collection_refunds",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("collection_id", sa.String(40), nullable=False),
        sa.Column("amount", sa.String(24), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("partner_reference", sa.String(64)),
        sa.Column("reason_code", sa.String(32)),
        sa.Column("reason", sa.String(500)),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["collection_id"], ["collections.id"], name="fk_collection_refunds_collection_id_collections"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_collection_refunds"),
    )
    op.create_index("ix_collection_refunds_collection_id", "collection_refunds", ["collection_id"])
    op.create_table(
        "collection_outbox",
        sa.Column("id", _BigId, autoincrement=True, nullable=False),
        sa.Column("collection_id", sa.String(40), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("refund_id", sa.String(40)),
        sa.Column("available_at", UTCDateTime(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("lease_owner", sa.String(64)),
        sa.Column("lease_until", UTCDateTime()),
        sa.Column("last_error", sa.String(500)),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["collection_id"], ["collections.id"], name="fk_collection_outbox_collection_id_collections"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_collection_outbox"),
    )
    op.create_index("ix_collection_outbox_available_at", "collection_outbox", ["available_at"])
    op.create_table(
        "collection_keys",
        sa.Column("business_unit_id", sa.String(40), nullable=False),
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=False),
        sa.Column("response", sa.JSON(), nullable=False),
        sa.Column("collection_id", sa.String(40)),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["business_unit_id"], ["business_units.id"], name="fk_collection_keys_business_unit_id_business_units"
        ),
        sa.PrimaryKeyConstraint("business_unit_id", "key", name="pk_collection_keys"),
    )


def downgrade() -> None:
    op.drop_table("collection_keys")
    op.drop_table("collection_outbox")
    op.drop_table("collection_refunds")
    op.drop_table("collection_events")
    op.drop_table("collections")
