"""Operational anomalies: alerts that concern no single payment, and the incidents that de-duplicate them.

Revision ID: 0014
Revises: 0012
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from gateway.store.tables import UTCDateTime

revision = "0014"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("risk_alerts") as batch:
        batch.alter_column("instruction_id", existing_type=sa.String(40), nullable=True)
    op.create_table(
        "anomaly_incidents",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("business_unit_id", sa.String(40), nullable=False),
        sa.Column("partner", sa.String(64), nullable=False),
        sa.Column("metric", sa.String(24), nullable=False),
        sa.Column("alert_id", sa.String(40), nullable=False),
        sa.Column("opened_at", UTCDateTime(), nullable=False),
        sa.Column("last_seen_at", UTCDateTime(), nullable=False),
        sa.Column("resolved_at", UTCDateTime()),
        sa.Column("value", sa.String(40), nullable=False),
        sa.Column("limit", sa.String(40), nullable=False),
        sa.ForeignKeyConstraint(
            ["business_unit_id"],
            ["business_units.id"],
            name=op.f("fk_anomaly_incidents_business_unit_id_business_units"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_anomaly_incidents")),
    )
    op.create_index(
        op.f("ix_anomaly_incidents_business_unit_id_partner_metric_resolved_at"),
        "anomaly_incidents",
        ["business_unit_id", "partner", "metric", "resolved_at"],
    )


def downgrade() -> None:
    op.drop_index(
        op.f("ix_anomaly_incidents_business_unit_id_partner_metric_resolved_at"), table_name="anomaly_incidents"
    )
    op.drop_table("anomaly_incidents")
    op.execute("DELETE FROM risk_alerts WHERE instruction_id IS NULL")
    with op.batch_alter_table("risk_alerts") as batch:
        batch.alter_column("instruction_id", existing_type=sa.String(40), nullable=False)
