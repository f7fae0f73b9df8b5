"""The schema, as SQLAlchemy Core tables (the hot path uses Core, not the ORM).

Alembic migrations in ``gateway/migrations`` create exactly this; a test
compares the two so they cannot drift.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect

__all__ = [
    "UTCDateTime",
    "anomaly_incidents",
    "api_keys",
    "audit_heads",
    "business_units",
    "circuit_states",
    "collection_events",
    "collection_keys",
    "collection_outbox",
    "collection_refunds",
    "collections",
    "control_totals",
    "credit_limits",
    "credit_reservations",
    "distributor_credit_lines",
    "distributor_reservations",
    "export_files",
    "export_watermarks",
    "holds",
    "idempotency_keys",
    "instruction_batches",
    "instruction_events",
    "instructions",
    "job_leases",
    "ledger_accounts",
    "ledger_balances",
    "ledger_entries",
    "ledger_exports",
    "ledger_periods",
    "ledger_postings",
    "metadata",
    "migrated_payments",
    "migration_checkpoints",
    "outbox",
    "partner_message_links",
    "partner_messages",
    "payment_files",
    "processes",
    "rebate_accruals",
    "receipt_allocations",
    "receipts",
    "receivables",
    "recon_break_comments",
    "recon_breaks",
    "recon_match_lines",
    "recon_match_payments",
    "recon_matches",
    "risk_alerts",
    "risk_beneficiaries",
    "risk_counters",
    "risk_names",
    "risk_pairs",
    "risk_recent",
    "rollout_changes",
    "rollout_modes",
    "shadow_outcomes",
    "statement_lines",
    "statements",
    "webhook_deliveries",
    "webhook_endpoints",
]

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores them naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# Integer primary keys that autoincrement on both SQLite (INTEGER) and PostgreSQL (BIGINT).
_BigId = BigInteger().with_variant(Integer(), "sqlite")

business_units = Table(
    "business_units",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("name", String(100), nullable=False, unique=True),
    Column("default_contract_version", String(16)),
    Column("created_at", UTCDateTime(), nullable=False),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("business_unit_id", String(40), ForeignKey("business_units.id"), nullable=False),
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("prefix", String(16), nullable=False),
    Column("scopes", String(200), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("revoked_at", UTCDateTime()),
    Column("last_used_at", UTCDateTime()),  # to the minute (gateway.store.repo.LAST_USED_RESOLUTION)
)

instructions = Table(
    "instructions",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("business_unit_id", String(40), ForeignKey("business_units.id"), nullable=False),
    Column("reference", String(35), nullable=False),
    Column("type", String(20), nullable=False),
    Column("amount", String(24), nullable=False),
    Column("amount_minor", BigInteger(), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("status", String(16), nullable=False),
    Column("debtor_name", String(140), nullable=False),
    Column("debtor_account", Text(), nullable=False),  # AES-GCM, see gateway.store.encryption
    Column("debtor_agent", String(11)),
    Column("creditor_name", String(140), nullable=False),
    Column("creditor_account", Text(), nullable=False),  # AES-GCM
    Column("creditor_agent", String(11)),
    Column("masked", JSON(), nullable=False),  # masked accounts, for display only
    Column("remittance_information", String(140)),  # unstructured text
    Column("creditor_reference", String(35)),  # structured remittance: ISO 11649 reference (contract 2.0+)
    Column("purpose", String(4)),  # ISO 20022 ExternalPurpose1Code (contract 1.1+)
    Column("ultimate_debtor", JSON()),  # {"name", "identification"?} (contract 1.1+); holds no account
    Column("ultimate_creditor", JSON()),
    Column("requested_execution_date", Date()),
    Column("urgency", String(10), nullable=False),
    Column("channel", String(64)),
    Column("metadata", JSON(), nullable=False),
    Column("contract_version", String(16), nullable=False),
    Column("adapter", String(64)),
    Column("partner_reference", String(64)),
    Column("event_count", Integer(), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    Column("submitted_by", String(40)),  # the API key that posted it (four eyes: it may not approve a hold)
    Column("batch_id", String(40)),  # the batch (bat_…) or ERP file (fil_…) it arrived in, if any
    UniqueConstraint("business_unit_id", "reference"),
    Index(None, "business_unit_id", "id"),
    Index(None, "status", "updated_at"),
    Index(None, "adapter", "partner_reference"),
    # GET /v1/instructions filters, newest first within a business unit
    Index(None, "business_unit_id", "status", "id"),
    Index(None, "business_unit_id", "adapter", "id"),
    Index(None, "business_unit_id", "created_at"),
    Index(None, "batch_id", "status"),
)

instruction_events = Table(
    "instruction_events",
    metadata,
    Column("id", _BigId, primary_key=True, autoincrement=True),
    Column("instruction_id", String(40), ForeignKey("instructions.id"), nullable=False),
    Column("sequence", Integer(), nullable=False),
    Column("previous_status", String(16)),
    Column("status", String(16), nullable=False),
    Column("applied", Boolean(), nullable=False),
    Column("outcome", String(16), nullable=False),
    Column("source", String(16), nullable=False),
    Column("adapter", String(64)),
    Column("partner_reference", String(64)),
    Column("partner_status", String(16)),
    Column("reason_code", String(32)),
    Column("reason", String(500)),
    Column("occurred_at", UTCDateTime(), nullable=False),
    Column("actor", String(64)),  # who decided (an API key id), for human decisions
    # tamper evidence (gateway.store.audit): position in the events chain and the chain's hash up to this row
    Column("chain_seq", BigInteger()),
    Column("chain_hash", String(64)),
    UniqueConstraint("instruction_id", "sequence"),
    UniqueConstraint("chain_seq"),
)

outbox = Table(
    "outbox",
    metadata,
    Column("id", _BigId, primary_key=True, autoincrement=True),
    Column("instruction_id", String(40), ForeignKey("instructions.id"), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("available_at", UTCDateTime(), nullable=False),
    Column("attempts", Integer(), nullable=False),
    Column("lease_owner", String(64)),
    Column("lease_until", UTCDateTime()),
    Column("last_error", String(500)),
    Column("created_at", UTCDateTime(), nullable=False),
    Index(None, "available_at"),
)

# gateway processes alive on this database (gateway.store.processes): a process whose heartbeat
# stops is dead, and the claims (lease_owner) it holds are released at once, not when their lease ends
processes = Table(
    "processes",
    metadata,
    Column("id", String(64), primary_key=True),  # the lease_owner its claims carry
    Column("host", String(255), nullable=False),
    Column("pid", Integer(), nullable=False),
    Column("started_at", UTCDateTime(), nullable=False),
    Column("heartbeat_at", UTCDateTime(), nullable=False),
)

# one lease per scheduled job (gateway.store.processes.take_job_lease): with several processes a job runs once
# per interval, by whichever process holds its lease
job_leases = Table(
    "job_leases",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("lease_owner", String(64)),
    Column("lease_until", UTCDateTime()),
)

# partners' circuit breakers, shared by the processes (gateway.dispatch.routing.CircuitBreaker.share)
circuit_states = Table(
    "circuit_states",
    metadata,
    Column("partner", String(64), primary_key=True),
    Column("opened_at", UTCDateTime()),  # null: closed
    Column("changed_at", UTCDateTime(), nullable=False),
)

idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("business_unit_id", String(40), ForeignKey("business_units.id"), primary_key=True),
    Column("key", String(255), primary_key=True),
    Column("request_hash", String(64), nullable=False),
    Column("status_code", Integer(), nullable=False),
    Column("response", JSON(), nullable=False),
    Column("instruction_id", String(40)),
    Column("created_at", UTCDateTime(), nullable=False),
)


# -- risk (gateway.risk): history kept incrementally, holds, alerts, credit ------------
# Accounts appear only as keyed fingerprints (gateway.risk.model.Fingerprinter).

risk_counters = Table(
    "risk_counters",
    metadata,
    Column("key", String(32), primary_key=True),
    Column("subject", String(8), primary_key=True),  # debtor | creditor
    Column("business_unit", String(100), primary_key=True),
    Column("currency", String(3), primary_key=True),
    Column("bucket_seconds", Integer(), primary_key=True, autoincrement=False),
    Column("bucket_start", BigInteger(), primary_key=True, autoincrement=False),  # epoch seconds
    Column("count", Integer(), nullable=False),
    Column("sum_minor", BigInteger(), nullable=False),
)

risk_pairs = Table(
    "risk_pairs",
    metadata,
    Column("creditor_key", String(32), primary_key=True),
    Column("debtor_key", String(32), primary_key=True),
    Column("business_unit", String(100), primary_key=True),
    Column("currency", String(3), primary_key=True),
    Column("count", Integer(), nullable=False),
    Column("amounts", JSON(), nullable=False),  # last amounts in minor units, oldest first
    Column("updated_at", UTCDateTime(), nullable=False),
)

risk_beneficiaries = Table(
    "risk_beneficiaries",
    metadata,
    Column("creditor_key", String(32), primary_key=True),
    Column("business_unit", String(100), primary_key=True),
    Column("first_seen", UTCDateTime(), nullable=False),
    Column("count", Integer(), nullable=False),
    Column("max_minor", BigInteger(), nullable=False),
)

risk_names = Table(
    "risk_names",
    metadata,
    Column("creditor_name", String(140), primary_key=True),  # normalised
    Column("business_unit", String(100), primary_key=True),
    Column("creditor_key", String(32), primary_key=True),  # every account paid under the name
    Column("count", Integer(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
)

risk_recent = Table(
    "risk_recent",
    metadata,
    Column("id", _BigId, primary_key=True, autoincrement=True),
    Column("creditor_key", String(32), nullable=False),
    Column("business_unit", String(100), nullable=False),
    Column("at", UTCDateTime(), nullable=False),
    Column("instruction_id", String(40), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("amount_minor", BigInteger(), nullable=False),
    Column("remittance", String(140), nullable=False),
    Index(None, "creditor_key", "at"),
    Index(None, "at"),
)

risk_alerts = Table(
    "risk_alerts",
    metadata,
    Column("id", String(40), primary_key=True),
    # NULL for an operational anomaly (gateway.reports.anomaly), which concerns no single payment
    Column("instruction_id", String(40), ForeignKey("instructions.id")),
    Column("business_unit_id", String(40), ForeignKey("business_units.id"), nullable=False),
    Column("outcome", String(8), nullable=False),  # flag | hold | reject | anomaly
    Column("reason_code", String(32)),
    Column("findings", JSON(), nullable=False),  # [{"rule", "score", "reason"}]
    Column("created_at", UTCDateTime(), nullable=False),
    Index(None, "created_at", "id"),
    Index(None, "instruction_id"),
)

# One row per operational anomaly incident (gateway.reports.anomaly): opened with one alert, kept open while
# the series stays out of its control limits, resolved when it comes back; never a second alert while open.
anomaly_incidents = Table(
    "anomaly_incidents",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("business_unit_id", String(40), ForeignKey("business_units.id"), nullable=False),
    Column("partner", String(64), nullable=False),  # an adapter name
    Column("metric", String(24), nullable=False),  # settle_time | reject_rate | error_rate | unknown_open | stuck
    Column("alert_id", String(40), nullable=False),  # the risk_alerts row raised when it opened
    Column("opened_at", UTCDateTime(), nullable=False),
    Column("last_seen_at", UTCDateTime(), nullable=False),
    Column("resolved_at", UTCDateTime()),
    Column("value", String(40), nullable=False),  # the last value seen out of limits (Decimal text)
    Column("limit", String(40), nullable=False),  # the control limit it crossed (Decimal text)
    Index(None, "business_unit_id", "partner", "metric", "resolved_at"),
)

holds = Table(
    "holds",
    metadata,
    Column("instruction_id", String(40), ForeignKey("instructions.id"), primary_key=True),
    Column("business_unit_id", String(40), ForeignKey("business_units.id"), nullable=False),
    Column("reason_code", String(32), nullable=False),  # RISK | CREDIT_LIMIT
    Column("findings", JSON(), nullable=False),
    Column("held_at", UTCDateTime(), nullable=False),
    Column("expires_at", UTCDateTime(), nullable=False),
    Column("decision", String(10)),  # approved | rejected | expired | cancelled; NULL while waiting
    Column("decided_by", String(40)),  # API key id
    Column("decided_at", UTCDateTime()),
    Column("comment", String(500)),
    Index(None, "decision", "expires_at"),
)

credit_limits = Table(
    "credit_limits",
    metadata,
    Column("counterparty", String(64), primary_key=True),
    Column("currency", String(3), primary_key=True),
    Column("limit_minor", BigInteger(), nullable=False),
    Column("reserved_minor", BigInteger(), nullable=False),  # in flight: screened, not yet settled
    Column("consumed_minor", BigInteger(), nullable=False),  # settled
    Column("on_exceed", String(8), nullable=False),  # hold | reject
    Column("source", String(8), nullable=False),  # config | api
    Column("updated_at", UTCDateTime(), nullable=False),
)

credit_reservations = Table(
    "credit_reservations",
    metadata,
    Column("instruction_id", String(40), ForeignKey("instructions.id"), primary_key=True),
    Column("counterparty", String(64), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("amount_minor", BigInteger(), nullable=False),
    Column("state", String(10), nullable=False),  # reserved | consumed | released
    Column("updated_at", UTCDateTime(), nullable=False),
)


# -- ledger (gateway.ledger): double-entry journal, running balances, periods, exports -------
# Amounts are integers in the currency's minor units; a debit is positive, a credit negative.

ledger_accounts = Table(
    "ledger_accounts",
    metadata,
    Column("name", String(200), primary_key=True),  # e.g. bu:retail:receivable (config/ledger.yaml)
    Column("type", String(10), nullable=False),  # asset | liability | income | expense | equity
    Column("business_unit", String(100)),  # the business unit that may read it, if any
    Column("created_at", UTCDateTime(), nullable=False),
    Index(None, "business_unit", "name"),
)

ledger_entries = Table(
    "ledger_entries",
    metadata,
    Column("id", _BigId, primary_key=True, autoincrement=False),  # the entry's place in the journal's chain
    Column("kind", String(32), nullable=False),  # payment | an event kind (fee, …)
    Column("memo", String(200), nullable=False),
    Column("instruction_id", String(40)),
    Column("business_unit", String(100)),
    Column("booked_at", UTCDateTime(), nullable=False),  # always in an open period, never before an earlier entry
    Column("original_at", UTCDateTime()),  # when the event happened, if it was booked later (backfill, late)
    Column("reverses", BigInteger()),  # the entry this one corrects
    Column("chain_hash", String(64), nullable=False),
    Index(None, "instruction_id"),
    Index(None, "booked_at"),
    Index(None, "business_unit", "id"),
)

ledger_postings = Table(
    "ledger_postings",
    metadata,
    Column("entry_id", BigInteger(), ForeignKey("ledger_entries.id"), primary_key=True, autoincrement=False),
    Column("line", Integer(), primary_key=True, autoincrement=False),
    Column("account", String(200), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("amount", BigInteger(), nullable=False),
    # the account's running totals in this currency after this posting (as-of balances read one row)
    Column("debits_after", BigInteger(), nullable=False),
    Column("credits_after", BigInteger(), nullable=False),
    Index(None, "account", "currency", "entry_id"),
)

ledger_balances = Table(
    "ledger_balances",
    metadata,
    Column("account", String(200), primary_key=True),
    Column("currency", String(3), primary_key=True),
    Column("debits", BigInteger(), nullable=False),
    Column("credits", BigInteger(), nullable=False),
    Column("postings", BigInteger(), nullable=False),
    Column("last_entry_id", BigInteger(), nullable=False),
)

ledger_periods = Table(
    "ledger_periods",
    metadata,
    Column("period", String(7), primary_key=True),  # YYYY-MM
    Column("closed_at", UTCDateTime(), nullable=False),
    Column("closed_by", String(64), nullable=False),
    Column("last_entry_id", BigInteger(), nullable=False),  # the journal's head when it closed
)

ledger_exports = Table(
    "ledger_exports",
    metadata,
    Column("scope", String(100), primary_key=True),  # a business unit, or * for all
    Column("batch", Integer(), primary_key=True, autoincrement=False),  # 1, 2, … per scope
    Column("period", String(7), nullable=False),
    Column("first_entry_id", BigInteger(), nullable=False),  # exclusive: the previous batch's last
    Column("last_entry_id", BigInteger(), nullable=False),
    Column("entries", Integer(), nullable=False),
    Column("digests", JSON(), nullable=False),  # {format: sha256 of the file}
    Column("created_at", UTCDateTime(), nullable=False),
    UniqueConstraint("scope", "period"),
)

audit_heads = Table(
    "audit_heads",
    metadata,
    Column("chain", String(16), primary_key=True),  # events | journal
    Column("seq", BigInteger(), nullable=False),  # rows in the chain so far
    Column("hash", String(64), nullable=False),  # the chain's hash after its last row
    Column("last_at", UTCDateTime()),  # journal: the last entry's booked_at (entries are booked in order)
    Column("closed_through", String(7)),  # journal: the last closed period (YYYY-MM)
)


# -- webhooks (gateway.store.webhooks): status events delivered to business units ---------------

webhook_endpoints = Table(
    "webhook_endpoints",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("business_unit_id", String(40), ForeignKey("business_units.id"), nullable=False),
    Column("url", String(2048), nullable=False),
    Column("events", String(200), nullable=False),  # "*" or statuses, comma-separated
    Column("enabled", Boolean(), nullable=False),
    Column("disabled_reason", String(200)),
    Column("secret", Text(), nullable=False),  # AES-GCM, see gateway.store.encryption
    Column("previous_secret", Text()),  # AES-GCM: still signs until previous_secret_until
    Column("previous_secret_until", UTCDateTime()),
    Column("consecutive_failures", Integer(), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    Index(None, "business_unit_id", "enabled"),
)

webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("endpoint_id", String(40), ForeignKey("webhook_endpoints.id"), nullable=False),
    Column("business_unit_id", String(40), nullable=False),
    Column("instruction_id", String(40), nullable=False),
    Column("sequence", Integer(), nullable=False),  # the event's place in the instruction's history
    Column("event_id", String(64), nullable=False),  # the same for every attempt and redelivery
    Column("body", Text(), nullable=False),  # the status-event document, exactly the bytes signed and sent
    Column("status", String(10), nullable=False),  # pending | delivered | failed
    Column("attempts", Integer(), nullable=False),
    Column("available_at", UTCDateTime(), nullable=False),
    Column("lease_owner", String(64)),
    Column("lease_until", UTCDateTime()),
    Column("last_error", String(500)),
    Column("last_status_code", Integer()),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("delivered_at", UTCDateTime()),
    UniqueConstraint("endpoint_id", "event_id"),
    Index(None, "status", "available_at"),
    Index(None, "endpoint_id", "instruction_id", "sequence"),
    Index(None, "business_unit_id", "status", "id"),
)


# -- reconciliation (gateway.recon): partner statements and what they were matched to ---------
# Amounts are integers in the currency's minor units; balances signed (credit positive).

statements = Table(
    "statements",
    metadata,
    Column("id", _BigId, primary_key=True, autoincrement=True),
    Column("source", String(64), nullable=False),  # the adapter whose statement it is
    Column("statement_id", String(100), nullable=False),  # the partner's id for it (unique per source)
    Column("format", String(20), nullable=False),  # camt.053 | mt940 | nacha | …
    Column("account", String(40)),  # masked
    Column("currency", String(3), nullable=False),
    Column("sequence", BigInteger()),  # the partner's statement number, if it numbers them
    Column("period_start", Date()),
    Column("period_end", Date()),
    Column("opening_minor", BigInteger()),
    Column("closing_minor", BigInteger()),
    Column("line_count", Integer(), nullable=False),
    Column("credits_minor", BigInteger(), nullable=False),
    Column("debits_minor", BigInteger(), nullable=False),
    Column("file_sha256", String(64), nullable=False),  # the file it came in
    Column("imported_at", UTCDateTime(), nullable=False),
    UniqueConstraint("source", "statement_id"),
    Index(None, "source", "account", "sequence"),
)

statement_lines = Table(
    "statement_lines",
    metadata,
    Column("statement_pk", BigInteger(), ForeignKey("statements.id"), primary_key=True, autoincrement=False),
    Column("line", Integer(), primary_key=True, autoincrement=False),  # 1, 2, … in the statement's order
    Column("amount_minor", BigInteger(), nullable=False),  # never negative
    Column("direction", String(6), nullable=False),  # credit | debit
    Column("currency", String(3), nullable=False),
    Column("booked_on", Date()),
    Column("value_on", Date()),
    Column("end_to_end_id", String(35)),
    Column("partner_reference", String(35)),
    Column("servicer_reference", String(35)),
    Column("counterparty_name", String(140)),
    Column("counterparty_account", String(40)),  # masked
    Column("kind", String(8), nullable=False),  # booked | return | change
    Column("reason_code", String(8)),
    Column("original_reference", String(35)),
    Column("text", String(140)),
    Column("remittance_reference", String(35)),  # structured creditor reference (ISO 11649 RF), if given
    Index(None, "end_to_end_id"),
    Index(None, "partner_reference"),
)

recon_matches = Table(
    "recon_matches",
    metadata,
    Column("id", BigInteger(), primary_key=True, autoincrement=False),  # given by the run: max + 1
    Column("source", String(64), nullable=False),
    Column("status", String(10), nullable=False),  # confirmed | suggested
    Column("rule", String(60), nullable=False),  # the rule that found it (config/reconciliation.yaml)
    Column("currency", String(3), nullable=False),
    Column("lines_minor", BigInteger(), nullable=False),  # the statement lines' total
    Column("payments_minor", BigInteger(), nullable=False),  # the payments' total
    Column("difference_minor", BigInteger(), nullable=False),  # lines - payments (a fee, FX, a mismatch)
    Column("explains", String(8)),  # fee | fx: the adjustment the rule says the difference is
    Column("matched_at", UTCDateTime(), nullable=False),
    Column("confirmed_by", String(64)),  # a finance key, for a suggested match confirmed by hand
    Column("confirmed_at", UTCDateTime()),
    Index(None, "status", "id"),
    Index(None, "matched_at"),  # the payments matched lately (recon.matching.load_named_elsewhere)
)

# a statement line and a payment are each in at most one match: the primary keys enforce it
recon_match_lines = Table(
    "recon_match_lines",
    metadata,
    Column("statement_pk", BigInteger(), primary_key=True, autoincrement=False),
    Column("line", Integer(), primary_key=True, autoincrement=False),
    Column("match_id", BigInteger(), ForeignKey("recon_matches.id"), nullable=False, index=True),
    ForeignKeyConstraint(["statement_pk", "line"], ["statement_lines.statement_pk", "statement_lines.line"]),
)

#: a suggested match finance rejected: the same pairing (lines, payments, their amounts and references) is
#: never suggested again; ``fingerprint`` is gateway.recon.matching.pairing_fingerprint of it
recon_rejections = Table(
    "recon_rejections",
    metadata,
    Column("fingerprint", String(64), primary_key=True),
    Column("match_id", BigInteger(), nullable=False),
    Column("source", String(64), nullable=False),
    Column("rejected_by", String(64), nullable=False),
    Column("rejected_at", UTCDateTime(), nullable=False),
    Column("reason", String(200), nullable=False),
)

#: what one statement line is made of, when its file says so (a card acquirer's payout batch): each item a
#: payment or charge it settles (``reference``: the gateway's id), its gross amount and its fee
statement_line_items = Table(
    "statement_line_items",
    metadata,
    Column("statement_pk", BigInteger(), primary_key=True, autoincrement=False),
    Column("line", Integer(), primary_key=True, autoincrement=False),
    Column("item", Integer(), primary_key=True, autoincrement=False),
    Column("kind", String(12), nullable=False),  # payout | charge | chargeback | refund
    Column("reference", String(64), nullable=False),
    Column("partner_reference", String(64)),
    Column("amount_minor", BigInteger(), nullable=False),  # gross, signed as the line: credit (money in) positive
    Column("fee_minor", BigInteger(), nullable=False),
    ForeignKeyConstraint(["statement_pk", "line"], ["statement_lines.statement_pk", "statement_lines.line"]),
)

recon_match_payments = Table(
    "recon_match_payments",
    metadata,
    Column("instruction_id", String(40), primary_key=True),
    Column("match_id", BigInteger(), ForeignKey("recon_matches.id"), nullable=False, index=True),
)

recon_breaks = Table(
    "recon_breaks",
    metadata,
    Column("id", _BigId, primary_key=True, autoincrement=True),
    Column("kind", String(24), nullable=False),  # gateway.recon.breaks.BREAK_KINDS
    Column("subject", String(120), nullable=False),  # ln_… | an instruction id | bu/day/currency
    Column("source", String(64), nullable=False),  # an adapter, or bu:<business unit> for upstream totals
    Column("state", String(20), nullable=False),  # open | pending_write_off | resolved | matched | written_off
    Column("currency", String(3), nullable=False),
    Column("amount_minor", BigInteger(), nullable=False),  # signed: what sits in suspense or is off
    Column("on_date", Date()),  # the day it is about (line date, settlement day, business day)
    Column("detail", String(200), nullable=False),
    Column("statement_pk", BigInteger()),
    Column("line", Integer()),
    Column("instruction_id", String(40)),
    Column("match_id", BigInteger()),
    Column("owner", String(64)),
    Column("opened_at", UTCDateTime(), nullable=False),
    Column("closed_at", UTCDateTime()),
    Column("closed_by", String(64)),
    Column("reason", String(200)),
    Column("write_off_by", String(64)),  # who asked for the write-off (the first person)
    Column("suspense_entry", BigInteger()),  # the ledger entry that put the line in suspense
    Column("closing_entry", BigInteger()),  # the write-off's or the hand match's ledger entry
    UniqueConstraint("kind", "subject"),
    Index(None, "state", "kind", "id"),
)

recon_break_comments = Table(
    "recon_break_comments",
    metadata,
    Column("id", _BigId, primary_key=True, autoincrement=True),
    Column("break_id", BigInteger(), ForeignKey("recon_breaks.id"), nullable=False, index=True),
    Column("by", String(64), nullable=False),
    Column("at", UTCDateTime(), nullable=False),
    Column("text", String(1000), nullable=False),
)

# what a business unit says it sent, per day and currency (upstream control totals)
control_totals = Table(
    "control_totals",
    metadata,
    Column("business_unit", String(64), primary_key=True),
    Column("day", Date(), primary_key=True),
    Column("currency", String(3), primary_key=True),
    Column("count", Integer(), nullable=False),
    Column("sum_minor", BigInteger(), nullable=False),
    Column("received_at", UTCDateTime(), nullable=False),
    Column("received_by", String(64), nullable=False),
)


# -- collections (gateway.store.collections): money the enterprise pulls in ----------------------
# Amounts as decimal text and integer minor units; the payer's instrument (card token, wallet id
# or IBAN) AES-GCM encrypted, see gateway.store.encryption.

collections = Table(
    "collections",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("business_unit_id", String(40), ForeignKey("business_units.id"), nullable=False),
    Column("reference", String(35), nullable=False),
    Column("kind", String(16), nullable=False),  # card_charge | wallet_charge | direct_debit
    Column("amount", String(24), nullable=False),
    Column("amount_minor", BigInteger(), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("status", String(16), nullable=False),
    Column("payer_name", String(140), nullable=False),
    Column("payer_instrument", Text(), nullable=False),  # AES-GCM
    Column("masked", JSON(), nullable=False),  # the payer with the instrument masked, for display only
    Column("mandate", JSON()),  # direct_debit: {"id", "signature_date", "sequence_type"}
    Column("due_date", Date()),  # direct_debit: the debit day asked for (contract 1.1); NULL = the earliest
    Column("bic", String(11)),
    Column("description", String(140)),
    Column("capture", String(8), nullable=False),  # auto | manual
    Column("captured_at", UTCDateTime()),  # manual capture: when the business unit asked for it
    Column("channel", String(64)),
    Column("metadata", JSON(), nullable=False),
    Column("contract_version", String(16), nullable=False),
    Column("adapter", String(64)),
    Column("partner_reference", String(64)),
    Column("refunded_minor", BigInteger(), nullable=False),  # refunds asked for (pending or succeeded)
    Column("event_count", Integer(), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    Column("submitted_by", String(40)),
    UniqueConstraint("business_unit_id", "reference"),
    Index(None, "business_unit_id", "id"),
    Index(None, "business_unit_id", "status", "id"),
    Index(None, "business_unit_id", "kind", "id"),
    Index(None, "business_unit_id", "created_at"),
    Index(None, "adapter", "partner_reference"),
)

collection_events = Table(
    "collection_events",
    metadata,
    Column("id", _BigId, primary_key=True, autoincrement=True),
    Column("collection_id", String(40), ForeignKey("collections.id"), nullable=False),
    Column("sequence", Integer(), nullable=False),
    Column("previous_status", String(16)),
    Column("status", String(16), nullable=False),
    Column("applied", Boolean(), nullable=False),
    Column("outcome", String(16), nullable=False),
    Column("source", String(16), nullable=False),
    Column("adapter", String(64)),
    Column("partner_reference", String(64)),
    Column("partner_status", String(32)),
    Column("reason_code", String(32)),
    Column("reason", String(500)),
    Column("occurred_at", UTCDateTime(), nullable=False),
    Column("actor", String(64)),
    # tamper evidence (gateway.store.audit): position in the collections chain and the chain's hash after it
    Column("chain_seq", BigInteger()),
    Column("chain_hash", String(64)),
    UniqueConstraint("collection_id", "sequence"),
    UniqueConstraint("chain_seq"),
)

collection_refunds = Table(
    "collection_refunds",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("collection_id", String(40), ForeignKey("collections.id"), nullable=False),
    Column("amount", String(24), nullable=False),
    Column("amount_minor", BigInteger(), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("status", String(10), nullable=False),  # pending | succeeded | failed
    Column("partner_reference", String(64)),
    Column("reason_code", String(32)),
    Column("reason", String(500)),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    Index(None, "collection_id"),
)

collection_outbox = Table(
    "collection_outbox",
    metadata,
    Column("id", _BigId, primary_key=True, autoincrement=True),
    Column("collection_id", String(40), ForeignKey("collections.id"), nullable=False),
    Column("kind", String(16), nullable=False),  # dispatch | capture | refund
    Column("refund_id", String(40)),  # kind refund: which refund
    Column("available_at", UTCDateTime(), nullable=False),
    Column("attempts", Integer(), nullable=False),
    Column("lease_owner", String(64)),
    Column("lease_until", UTCDateTime()),
    Column("last_error", String(500)),
    Column("created_at", UTCDateTime(), nullable=False),
    Index(None, "available_at"),
)

collection_keys = Table(
    "collection_keys",
    metadata,
    Column("business_unit_id", String(40), ForeignKey("business_units.id"), primary_key=True),
    Column("key", String(255), primary_key=True),
    Column("request_hash", String(64), nullable=False),  # of method, path and body: a key is for one request
    Column("status_code", Integer(), nullable=False),
    Column("response", JSON(), nullable=False),
    Column("collection_id", String(40)),
    Column("created_at", UTCDateTime(), nullable=False),
)


# -- money in (gateway.store.receivables, gateway.store.creditlines): receivables, receipts, ----
# distributor credit lines. Separate from credit_limits / credit_reservations, which bound the
# OUTGOING exposure to a payee (gateway.risk.credit).

receivables = Table(
    "receivables",
    metadata,
    Column("id", String(40), primary_key=True),  # rcv_<ULID>
    Column("business_unit_id", String(40), ForeignKey("business_units.id"), nullable=False),
    Column("business_unit", String(100), nullable=False),  # its name, as the ledger's accounts use it
    Column("invoice_number", String(35), nullable=False),
    Column("distributor", String(64), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("amount_minor", BigInteger(), nullable=False),
    Column("paid_minor", BigInteger(), nullable=False),
    Column("status", String(16), nullable=False),  # open | partially_paid | paid | written_off
    Column("due_date", Date(), nullable=False),
    Column("structured_reference", String(35)),  # ISO 11649, compact
    Column("payer_account", String(40)),  # masked, as statements show the payer's account
    Column("reservation_id", String(40), unique=True),  # the credit reservation it turned
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    UniqueConstraint("business_unit_id", "invoice_number"),
    Index(None, "structured_reference"),
    Index(None, "distributor", "status"),
    Index(None, "status", "due_date"),
)

receipts = Table(
    "receipts",
    metadata,
    Column("id", String(40), primary_key=True),  # rct_<ULID>
    Column("statement_pk", BigInteger(), ForeignKey("statements.id"), nullable=False),
    Column("line", Integer(), nullable=False),
    Column("source", String(64), nullable=False),  # the statement's partner (the bank account it arrived on)
    Column("currency", String(3), nullable=False),
    Column("amount_minor", BigInteger(), nullable=False),
    Column("unapplied_minor", BigInteger(), nullable=False),  # not (yet) applied to a receivable
    Column("state", String(12), nullable=False),  # unmatched | matched | on_account | refunded
    Column("distributor", String(64)),  # once known (matched, assigned, put on account)
    Column("booked_on", Date()),
    Column("payer_name", String(140)),
    Column("payer_account", String(40)),  # masked
    Column("structured_reference", String(35)),
    Column("text", String(140)),
    Column("refund_instruction_id", String(40)),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    # the bank's reference of the credit (AcctSvcrRef): the same credit on a notification and on the
    # day's statement is one receipt (gateway.store.receivables.record_receipts)
    Column("servicer_reference", String(35)),
    UniqueConstraint("statement_pk", "line"),  # one statement line is one receipt, never two
    Index(None, "state", "id"),
    Index(None, "source", "servicer_reference"),
)

receipt_allocations = Table(
    "receipt_allocations",
    metadata,
    Column("id", _BigId, primary_key=True, autoincrement=True),
    Column("receipt_id", String(40), ForeignKey("receipts.id"), nullable=False),
    Column("receivable_id", String(40), ForeignKey("receivables.id"), nullable=False),
    Column("amount_minor", BigInteger(), nullable=False),
    Column("rule", String(20), nullable=False),  # reference | invoice_text | payer_account | manual
    Column("created_at", UTCDateTime(), nullable=False),
    Index(None, "receipt_id"),
    Index(None, "receivable_id"),
)

# -- rebates (gateway.store.rebates, docs/credit-and-rebates.md): what each distributor's volume
# earned per program, period and currency, accrued as it arrived and settled once.

rebate_accruals = Table(
    "rebate_accruals",
    metadata,
    Column("program", String(64), primary_key=True),
    Column("distributor", String(64), primary_key=True),
    Column("period", String(7), primary_key=True),  # YYYY-MM or YYYY-Qn
    Column("currency", String(3), primary_key=True),
    Column("volume_minor", BigInteger(), nullable=False),
    Column("accrued_minor", BigInteger(), nullable=False),  # posted as rebate_accrued so far
    Column("final_minor", BigInteger()),  # set by the settlement
    Column("credited_minor", BigInteger()),  # netted against open receivables (credit note)
    Column("allocations", JSON()),  # the credit note's [receivable id, minor units]
    Column("instruction_id", String(40)),  # the payout instruction (settlement by payout)
    Column("settled_at", UTCDateTime()),  # once set, the row never changes again
    Column("updated_at", UTCDateTime(), nullable=False),
    Index(None, "period", "settled_at"),
)

distributor_credit_lines = Table(
    "distributor_credit_lines",
    metadata,
    Column("distributor", String(64), primary_key=True),
    Column("currency", String(3), primary_key=True),
    Column("limit_minor", BigInteger(), nullable=False),
    Column("receivables_minor", BigInteger(), nullable=False),  # open receivables: amount - paid
    Column("reserved_minor", BigInteger(), nullable=False),  # pending reservations
    Column("updated_at", UTCDateTime(), nullable=False),
)

distributor_reservations = Table(
    "distributor_reservations",
    metadata,
    Column("id", String(40), primary_key=True),  # crr_<ULID>
    Column("distributor", String(64), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("amount_minor", BigInteger(), nullable=False),
    Column("state", String(10), nullable=False),  # pending | converted | expired
    Column("order_reference", String(35)),
    Column("business_unit_id", String(40), ForeignKey("business_units.id"), nullable=False),
    Column("receivable_id", String(40)),
    Column("expires_at", UTCDateTime(), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    Index(None, "state", "expires_at"),
    Index(None, "distributor", "currency"),
)


# -- batches and ERP files (gateway.intake): many instructions in one request or one file -----

instruction_batches = Table(
    "instruction_batches",
    metadata,
    Column("id", String(40), primary_key=True),  # bat_… or fil_… (a file's payments are a batch too)
    Column("business_unit_id", String(40), ForeignKey("business_units.id"), nullable=False),
    Column("idempotency_key", String(255), nullable=False),  # a file's: "file:" + message id
    Column("request_hash", String(64), nullable=False),
    Column("status_code", Integer(), nullable=False),
    Column("response", JSON(), nullable=False),  # the answer, sent again on a replay
    Column("count", Integer(), nullable=False),  # instructions accepted
    Column("created_at", UTCDateTime(), nullable=False),
    UniqueConstraint("business_unit_id", "idempotency_key"),
)

payment_files = Table(
    "payment_files",
    metadata,
    Column("id", String(40), primary_key=True),  # fil_…: also the id of its batch
    Column("business_unit_id", String(40), ForeignKey("business_units.id"), nullable=False),
    Column("message_id", String(35), nullable=False),  # GrpHdr/MsgId
    Column("content_sha256", String(64), nullable=False),
    Column("version", String(20), nullable=False),  # pain.001.001.03 | pain.001.001.09
    Column("status", String(10), nullable=False),  # accepted | rejected
    Column("reason", String(500)),  # why a rejected file was refused
    Column("payments", Integer(), nullable=False),  # transactions in the file
    Column("control_sum", String(24)),
    Column("items", JSON(), nullable=False),  # per payment: PmtInfId, EndToEndId, instruction id or refusal
    Column("source", String(10), nullable=False),  # api | cli | inbox
    Column("report_at", UTCDateTime()),  # when the pain.002 in the outbox folder was last written
    Column("report_events", BigInteger()),  # the payments' event count it was written at: more events, write again
    Column("report_final", Boolean(), nullable=False),  # every payment final: the report will not change
    Column("created_at", UTCDateTime(), nullable=False),
    UniqueConstraint("business_unit_id", "message_id"),
    Index(None, "report_final", "created_at"),
)


# -- data-lake export (gateway.finance.lake) and event sinks (gateway.finance.stream) -----------

export_watermarks = Table(
    "export_watermarks",
    metadata,
    # a dataset (instructions, …), ``_manifest`` (the files already in a manifest) or ``sink:<name>``
    Column("name", String(80), primary_key=True),
    Column("key", BigInteger(), nullable=False),  # the last key exported / published (exclusive lower bound)
    Column("rows", BigInteger(), nullable=False),  # rows exported / events published so far
    Column("schema_version", Integer()),  # datasets: the version of the schema written
    Column("updated_at", UTCDateTime(), nullable=False),
)

export_files = Table(
    "export_files",
    metadata,
    Column("id", _BigId, primary_key=True, autoincrement=True),
    Column("dataset", String(64), nullable=False),
    Column("path", String(500), nullable=False, unique=True),  # relative to the export folder
    Column("partition_date", Date(), nullable=False),
    Column("first_key", BigInteger(), nullable=False),  # inclusive
    Column("last_key", BigInteger(), nullable=False),  # inclusive
    Column("rows", Integer(), nullable=False),
    Column("bytes", BigInteger(), nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("schema_version", Integer(), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Index(None, "dataset", "last_key"),
)

# -- go-live: history migrated from the system the gateway replaces (docs/go-live.md) --------------

migrated_payments = Table(
    "migrated_payments",
    metadata,
    Column("id", _BigId, primary_key=True, autoincrement=True),
    Column("business_unit", String(100), nullable=False),
    Column("reference", String(35), nullable=False),
    Column("content_hash", String(64), nullable=False),  # sha256 of the payment's canonical content
    Column("type", String(20), nullable=False),
    Column("amount", String(24), nullable=False),
    Column("amount_minor", BigInteger(), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("status", String(16), nullable=False),  # a final status (settled, rejected, failed, returned, cancelled)
    Column("debtor_name", String(140), nullable=False),
    Column("debtor_key", String(32), nullable=False),  # keyed fingerprint (risk), never the account
    Column("creditor_name", String(140), nullable=False),
    Column("creditor_key", String(32), nullable=False),
    Column("masked", JSON(), nullable=False),  # masked accounts, for display only
    Column("remittance_information", String(140)),
    Column("created_at", UTCDateTime(), nullable=False),  # when the old system took it
    Column("status_at", UTCDateTime(), nullable=False),  # when it reached its final status
    Column("source_file", String(64), nullable=False),  # sha256 of the file it came from
    Column("line", Integer(), nullable=False),  # its line (CSV) or record (JSON) there
    Column("imported_at", UTCDateTime(), nullable=False),
    UniqueConstraint("business_unit", "reference"),
    UniqueConstraint("business_unit", "content_hash"),
)

migration_checkpoints = Table(
    "migration_checkpoints",
    metadata,
    Column("business_unit", String(100), primary_key=True),
    Column("file_sha256", String(64), primary_key=True),
    Column("file_name", String(255), nullable=False),
    Column("format", String(8), nullable=False),
    Column("rows_done", Integer(), nullable=False),  # data rows consumed, committed with the chunk that did them
    Column("imported", Integer(), nullable=False),
    Column("duplicates", Integer(), nullable=False),
    Column("rejected", Integer(), nullable=False),
    Column("finished", Boolean(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
)

#: operations console sessions (gateway/console/sessions.py): the cookie holds a random token, the
#: table only its SHA-256, the API key's hash (the session dies with its key) and the CSRF token
console_sessions = Table(
    "console_sessions",
    metadata,
    Column("id", String(64), primary_key=True),  # sha256 of the cookie's token
    Column("key_hash", String(64), nullable=False),
    Column("key_id", String(40), nullable=False),
    Column("csrf", String(64), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("last_seen_at", UTCDateTime(), nullable=False),
    Column("ended_at", UTCDateTime()),
)

#: staged rollout (gateway/store/rollout.py): a mode per business unit and partner; no row means live
rollout_modes = Table(
    "rollout_modes",
    metadata,
    Column("business_unit", String(100), primary_key=True),
    Column("partner", String(64), primary_key=True),
    Column("mode", String(8), nullable=False),  # off | shadow | canary | live
    Column("percent", Integer()),  # canary only: 1..99
    Column("updated_at", UTCDateTime(), nullable=False),
    Column("updated_by", String(100), nullable=False),
)

#: every rollout change, append-only (who, when, from, to, and why when the change came with a reason)
rollout_changes = Table(
    "rollout_changes",
    metadata,
    Column("id", _BigId, primary_key=True, autoincrement=True),
    Column("business_unit", String(100), nullable=False),
    Column("partner", String(64), nullable=False),
    Column("from_mode", String(8), nullable=False),
    Column("from_percent", Integer()),
    Column("to_mode", String(8), nullable=False),
    Column("to_percent", Integer()),
    Column("changed_by", String(100), nullable=False),
    Column("changed_at", UTCDateTime(), nullable=False),
    Column("reason", String(500)),  # the console requires one; the CLI and API may give none
)

#: what a partner in shadow mode would have done with a payment that went the legacy way (docs/go-live.md)
shadow_outcomes = Table(
    "shadow_outcomes",
    metadata,
    Column("instruction_id", String(40), primary_key=True),
    Column("partner", String(64), primary_key=True),
    Column("business_unit", String(100), nullable=False),
    Column("reference", String(35), nullable=False),
    # rendered | not_rendered | invalid | sandbox_submitted | sandbox_settled | sandbox_rejected | sandbox_error
    Column("outcome", String(24), nullable=False),
    # the status the new path points to: submitted | settled | rejected | failed; None when it cannot say
    Column("expected_status", String(16)),
    Column("message", String(64)),  # the partner format rendered, e.g. pain.001.001.09
    Column("message_sha256", String(64)),
    Column("reason_code", String(32)),
    Column("detail", String(500)),
    Column("recorded_at", UTCDateTime(), nullable=False),
    Index("ix_shadow_outcomes_business_unit_partner", "business_unit", "partner"),
)

#: what the gateway sent partners and what they answered, masked (gateway.partners.capture, docs/operations.md);
#: one row per message, linked to every payment it carries (a bulk pain.001: many links, one body)
partner_messages = Table(
    "partner_messages",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("direction", String(3), nullable=False),  # out | in
    Column("partner", String(64), nullable=False),
    Column("kind", String(16), nullable=False),  # submit | status | callback | cancel
    Column("method", String(8), nullable=False),
    Column("path", String(300), nullable=False),  # the URL's path: never its query or host
    Column("status_code", Integer()),
    Column("occurred_at", UTCDateTime(), nullable=False),
    Column("media_type", String(100)),
    Column("body", Text(), nullable=False),  # masked, at most partner_messages.max_body_bytes
    Column("size", Integer(), nullable=False),  # bytes as sent, before masking and cutting
    Column("truncated", Boolean(), nullable=False),
)

partner_message_links = Table(
    "partner_message_links",
    metadata,
    Column("message_id", String(40), ForeignKey("partner_messages.id"), primary_key=True),
    Column("instruction_id", String(40), ForeignKey("instructions.id"), primary_key=True),
    Index(None, "instruction_id"),
)
