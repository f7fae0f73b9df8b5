"""What a partner simulator plugs into the core: its messages, status codes and formats.

The core (``gateway_simulators.core``) owns everything partners share: payment
state and idempotency, the timeline, signed callbacks, faults, the journal,
statements and the admin API. A partner supplies a ``Partner``: how to read a
submission (with the adapter's own contract, so the simulator rejects exactly
what the contract rejects), how to answer in its own formats, and its codes.
"""

from __future__ import annotations

import abc
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, ClassVar

from gateway.errors import ContractError
from gateway.partners.signing import verify_signature

if TYPE_CHECKING:
    from gateway_simulators.core.settings import CoreSettings

__all__ = [
    "Partner",
    "ReportLine",
    "Statement",
    "StatementEntry",
    "Submission",
    "Transaction",
]


@dataclass(frozen=True)
class Transaction:
    """One payment read from a submission (IBANs stay out of repr)."""

    #: how the partner files it (the gateway's instruction id, the idempotency key)
    key: str
    #: the business reference (end-to-end id)
    reference: str
    amount: Decimal
    currency: str
    creditor_name: str = ""
    debtor_name: str = ""
    debtor_iban: str | None = None
    creditor_iban: str | None = None
    #: the debtor's account where the rail has no IBANs (a US account number): the account its statement is of
    debtor_account: str | None = None
    #: the submission's message id, and the block the payment came in (reports group by it)
    message_id: str = ""
    group_id: str = ""
    #: the business content: a resend must match it to be "the same payment"
    fingerprint: tuple[Any, ...] = ()

    def __repr__(self) -> str:
        return f"Transaction(key={self.key!r}, reference={self.reference!r}, {self.amount} {self.currency})"


@dataclass(frozen=True)
class Submission:
    message_id: str
    transactions: tuple[Transaction, ...]


@dataclass(frozen=True)
class ReportLine:
    """One payment's status as the partner reports it."""

    key: str
    reference: str
    group_id: str
    step: str
    code: str
    partner_reference: str
    amount: Decimal
    currency: str
    reason_code: str | None = None
    reason: str | None = None


@dataclass(frozen=True)
class StatementEntry:
    """One booked entry of an account statement."""

    amount: Decimal
    currency: str
    credit: bool
    booked_on: date
    reference: str
    partner_reference: str
    instruction_id: str
    counterparty_name: str = ""
    counterparty_iban: str | None = None
    reason_code: str | None = None
    #: the injected reconciliation break this entry carries, if any
    injected: str | None = None
    #: a credit transfer received (money in): the counterparty is the payer (``Dbtr``), not a creditor
    incoming: bool = False
    value_on: date | None = None
    remittance_text: str | None = None
    creditor_reference: str | None = None  # structured (SCOR), e.g. an ISO 11649 RF reference


@dataclass(frozen=True)
class Statement:
    """One account's statement for one day."""

    statement_id: str
    account_iban: str
    currency: str
    day: date
    created_at: datetime
    opening_balance: Decimal
    closing_balance: Decimal
    entries: tuple[StatementEntry, ...]


class Partner(abc.ABC):
    """A partner's specifics; the core calls these and nothing else."""

    #: the simulator's name (as in ``gateway simulate NAME``)
    name: ClassVar[str]
    #: where payments are submitted (POST)
    submit_path: ClassVar[str]
    #: where one payment's status is asked (GET); ``{payment_id}`` is the partner's key
    status_path: ClassVar[str] = "/payments/{payment_id}/status"
    #: content type of reports and statements
    content_type: ClassVar[str] = "application/xml"
    #: partner code of each lifecycle step
    codes: ClassVar[dict[str, str]]
    #: a synchronous partner (instant payments) answers with the final outcome: no timeline, no callbacks
    synchronous: ClassVar[bool] = False
    #: header carrying the ``t=…,v1=…`` HMAC signature (callbacks, responses; requests by default)
    signature_header: ClassVar[str] = "X-Signature"
    #: where the partner serves a day's statement to a caller it authenticates (``GET <path>?date=``, the answer
    #: signed like every partner response); ``None``: only at the unsigned ``/_sim/statements/{date}``
    statement_path: ClassVar[str | None] = None
    #: content type of the statement document; ``None``: ``content_type``
    statement_content_type: ClassVar[str | None] = None

    def authenticate(self, headers: Mapping[str, str], body: bytes, settings: CoreSettings) -> None:
        """Check a request to a partner route; raise ``SignatureError`` or ``AuthenticationError`` if it fails.

        Default: an HMAC signature of the body with ``request_secret`` in ``signature_header``.
        """
        verify_signature(
            settings.request_secret,
            body,
            headers.get(self.signature_header),
            tolerance=settings.signature_tolerance_seconds,
        )

    @abc.abstractmethod
    def read_submission(self, body: bytes) -> Submission:
        """Parse and validate a submission with the adapter's contract; ``ContractError`` if invalid."""

    @abc.abstractmethod
    def contract_refusal(self, body: bytes, error: ContractError, *, message_id: str, now: datetime) -> bytes:
        """The partner's own answer to a submission its contract rejects."""

    @abc.abstractmethod
    def render_report(
        self, lines: Sequence[ReportLine], *, message_id: str, original_message_id: str, now: datetime
    ) -> bytes:
        """A status report on ``lines`` (answers, status queries and callbacks)."""

    def render_callback(
        self, lines: Sequence[ReportLine], *, message_id: str, original_message_id: str, now: datetime
    ) -> bytes:
        """The body of a callback (webhook) on ``lines``; the status report by default."""
        return self.render_report(lines, message_id=message_id, original_message_id=original_message_id, now=now)

    @abc.abstractmethod
    def render_statements(self, statements: Sequence[Statement], *, message_id: str, now: datetime) -> bytes:
        """A statement document holding ``statements`` (one per account and currency)."""

    def statement_entries(self, day: date) -> Sequence[tuple[str, StatementEntry]]:
        """Movements of ``day`` that are not payments the core holds, as (account IBAN, entry): e.g. credit
        transfers received on the account. They come after the scenario's breaks. Default: none."""
        return ()

    def awaits_release(self, tx: Transaction) -> bool:
        """Whether an accepted payment waits for an explicit release before its timeline runs
        (a card charge authorised for manual capture); ``Simulator.release`` starts it. Default: never."""
        return False

    def reset(self) -> None:  # noqa: B027 - optional hook
        """Forget partner-specific state (``POST /_sim/reset``)."""

    def error_body(self, code: str, message: str) -> tuple[bytes, str]:
        """(body, content type) of an error that is not a status report; JSON by default."""
        return json.dumps({"error": {"code": code, "message": message}}).encode(), "application/json"
