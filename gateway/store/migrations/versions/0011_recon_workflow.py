"""Reconciliation workflow: matches of several lines or payments, stored breaks, upstream control totals.

``recon_matches`` becomes one row per match, with its lines in
``recon_match_lines`` and its payments in ``recon_match_payments`` (their
primary keys keep a line or a payment in one match at most); the 1:1 matches
stored by 0007 are carried over.

Revision ID: 0011
Revises: 0013
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from gateway.store.tables import UTCDateTime

revision = "0011"
down_revision = "0013"
branch_labels = None
depends_on = None

_BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    old = sa.table(
        "recon_matches",
        sa.column("statement_pk", sa.BigInteger()),
        sa.column("line", sa.Integer()),
        sa.column("instruction_id", sa.String()),
        sa.column("status", sa.String()),
        sa.column("rule", sa.String()),
        sa.column("matched_at", UTCDateTime()),
        sa.column("confirmed_by", sa.String()),
        sa.column("confirmed_at", UTCDateTime()),
    )
    bind = op.get_bind()
    carried = [dict(r) for r in bind.execute(sa.select(old)).mappings().all()]
    op.drop_index("ix_recon_matches_status_statement_pk", table_name="recon_matches")
    op.drop_table("recon_matches")
    matches = op.create_table(
        "recon_matches",
        sa.Column("id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("source", sa.String(64), nullable=False),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("rule", sa.String(60), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("lines_minor", sa.BigInteger(), nullable=False),
        sa.Column("payments_minor", sa.BigInteger(), nullable=False),
        sa.Column("difference_minor", sa.BigInteger(), nullable=False),
        sa.Column("explains", sa.String(8)),
        sa.Column("matched_at", UTCDateTime(), nullable=False),
        sa.Column("confirmed_by", sa.String(64)),
        sa.Column("confirmed_at", UTCDateTime()),
        sa.PrimaryKeyConstraint("id", name="pk_recon_matches"),
    )
    op.create_index("ix_recon_matches_status_id", "recon_matches", ["status", "id"])
    match_lines = op.create_table(
        "recon_match_lines",
        sa.Column("statement_pk", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("line", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("match_id", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["match_id"], ["recon_matches.id"], name="fk_recon_match_lines_match_id_recon_matches"),
        sa.ForeignKeyConstraint(
            ["statement_pk", "line"],
            ["statement_lines.statement_pk", "statement_lines.line"],
            name="fk_recon_match_lines_statement_pk_statement_lines",
        ),
        sa.PrimaryKeyConstraint("statement_pk", "line", name="pk_recon_match_lines"),
    )
    op.create_index("ix_recon_match_lines_match_id", "recon_match_lines", ["match_id"])
    match_payments = op.create_table(
        "recon_match_payments",
        sa.Column("instruction_id", sa.String(40), nullable=False),
        sa.Column("match_id", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["match_id"], ["recon_matches.id"], name="fk_recon_match_payments_match_id_recon_matches"
        ),
        sa.PrimaryKeyConstraint("instruction_id", name="pk_recon_match_payments"),
    )
    op.create_index("ix_recon_match_payments_match_id", "recon_match_payments", ["match_id"])
    op.create_table(
        "recon_breaks",
        sa.Column("id", _BigId, autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(24), nullable=False),
        sa.Column("subject", sa.String(120), nullable=False),
        sa.Column("source", sa.String(64), nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("on_date", sa.Date()),
        sa.Column("detail", sa.String(200), nullable=False),
        sa.Column("statement_pk", sa.BigInteger()),
        sa.Column("line", sa.Integer()),
        sa.Column("instruction_id", sa.String(40)),
        sa.Column("match_id", sa.BigInteger()),
        sa.Column("owner", sa.String(64)),
        sa.Column("opened_at", UTCDateTime(), nullable=False),
        sa.Column("closed_at", UTCDateTime()),
        sa.Column("closed_by", sa.String(64)),
        sa.Column("reason", sa.String(200)),
        sa.Column("write_off_by", sa.String(64)),
        sa.Column("suspense_entry", sa.BigInteger()),
        sa.Column("closing_entry", sa.BigInteger()),
        sa.PrimaryKeyConstraint("id", name="pk_recon_breaks"),
        sa.UniqueConstraint("kind", "subject", name="uq_recon_breaks_kind_subject"),
    )
    op.create_index("ix_recon_breaks_state_kind_id", "recon_breaks", ["state", "kind", "id"])
    op.create_table(
        "recon_break_comments",
        sa.Column("id", _BigId, autoincrement=True, nullable=False),
        sa.Column("break_id", sa.BigInteger(), nullable=False),
        sa.Column("by", sa.String(64), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("text", sa.String(1000), nullable=False),
        sa.ForeignKeyConstraint(
            ["break_id"], ["recon_breaks.id"], name="fk_recon_break_comments_break_id_recon_breaks"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_recon_break_comments"),
    )
    op.create_index("ix_recon_break_comments_break_id", "recon_break_comments", ["break_id"])
    op.create_table(
        "control_totals",
        sa.Column("business_unit", sa.String(64), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("sum_minor", sa.BigInteger(), nullable=False),
        sa.Column("received_at", UTCDateTime(), nullable=False),
        sa.Column("received_by", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("business_unit", "day", "currency", name="pk_control_totals"),
    )
    sources = dict(
        bind.execute(
            sa.text("SELECT s.id, s.source FROM statements s WHERE s.id IN (SELECT statement_pk FROM statement_lines)")
        ).all()
    )
    amounts = {
        (r.statement_pk, r.line): (r.amount_minor, r.currency)
        for r in bind.execute(sa.text("SELECT statement_pk, line, amount_minor, currency FROM statement_lines")).all()
    }
    for n, row in enumerate(carried, start=1):
        amount, currency = amounts.get((row["statement_pk"], row["line"]), (0, "EUR"))
        bind.execute(
            sa.insert(matches).values(
                id=n,
                source=sources.get(row["statement_pk"], "unknown"),
                status=row["status"],
                rule=row["rule"],
                currency=currency,
                lines_minor=amount,
                payments_minor=amount,
                difference_minor=0,
                matched_at=row["matched_at"],
                confirmed_by=row["confirmed_by"],
                confirmed_at=row["confirmed_at"],
            )
        )
        bind.execute(sa.insert(match_lines).values(statement_pk=row["statement_pk"], line=row["line"], match_id=n))
        bind.execute(sa.insert(match_payments).values(instruction_id=row["instruction_id"], match_id=n))


def downgrade() -> None:
    op.drop_table("control_totals")
    op.drop_table("recon_break_comments")
    op.drop_table("recon_breaks")
    op.drop_table("recon_match_payments")
    op.drop_table("recon_match_lines")
    op.drop_table("recon_matches")
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
