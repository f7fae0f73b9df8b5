"""The ISO 20022 bank as a plug-in of the simulator core: pain.001 in, pain.002 and camt.053 out.

It reads submissions with the adapter's own pain.001 reader (the very XSD file
the adapter validates against), so the simulator rejects exactly what the
contract rejects, answering ``400`` with a pain.002 group-level ``RJCT FF01``.
Reports are built with the adapter's pain.002 builder; a return after
settlement is a ``RJCT`` flagged ``RTRN``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import ClassVar

from gateway.contracts.safexml import parse_xml, text
from gateway.errors import ContractError
from gateway_adapters.iso20022_bank.camt053 import build_camt053
from gateway_adapters.iso20022_bank.camt054 import NotificationEntry
from gateway_adapters.iso20022_bank.pain001 import read_pain001
from gateway_adapters.iso20022_bank.pain002 import (
    PaymentInformationStatus,
    StatusReport,
    TransactionStatus,
    build_pain002,
)
from gateway_simulators.core.partner import (
    Partner,
    ReportLine,
    Statement,
    StatementEntry,
    Submission,
    Transaction,
)

__all__ = ["Iso20022Bank"]


class Iso20022Bank(Partner):
    """pain.001.001.09 in; signed pain.002.001.10 answers and callbacks; camt.053.001.08 statements."""

    name: ClassVar[str] = "iso20022_bank"
    submit_path: ClassVar[str] = "/pain001"
    status_path: ClassVar[str] = "/payments/{payment_id}/status"
    content_type: ClassVar[str] = "application/xml"
    statement_path: ClassVar[str | None] = "/camt053"
    codes: ClassVar[dict[str, str]] = {
        "received": "RCVD",
        "accepted": "ACTC",
        "in_process": "ACSP",
        "settled": "ACSC",
        "rejected": "RJCT",
        "returned": "RJCT",  # flagged RTRN in the report
    }

    def __init__(self) -> None:
        #: every movement on the enterprise's own account, in order: direct debits collected or returned
        #: (``direct_debits``) and credit transfers received (``incoming``); the camt.054 notifies them
        self.movements: list[NotificationEntry] = []

    def statement_entries(self, day: date) -> Sequence[tuple[str, StatementEntry]]:
        """The credit transfers received and booked on ``day``: ``CRDT`` entries of that day's camt.053."""
        return [
            (
                m.creditor_iban or "",
                StatementEntry(
                    amount=m.amount,
                    currency=m.currency,
                    credit=True,
                    booked_on=m.booked_on,
                    reference=m.end_to_end_id,
                    partner_reference=m.servicer_reference,
                    instruction_id="",
                    counterparty_name=m.debtor_name or "",
                    counterparty_iban=m.debtor_iban,
                    incoming=True,
                    value_on=m.value_on,
                    remittance_text=m.remittance_text,
                    creditor_reference=m.creditor_reference,
                ),
            )
            for m in self.movements
            if m.kind == "credit_transfer" and m.booked_on == day
        ]

    def read_submission(self, body: bytes) -> Submission:
        message = read_pain001(body)
        return Submission(
            message_id=message.message_id,
            transactions=tuple(
                Transaction(
                    key=tx.key,
                    reference=tx.end_to_end_id,
                    amount=tx.amount,
                    currency=tx.currency,
                    creditor_name=tx.creditor_name or "",
                    debtor_name=tx.debtor_name or "",
                    debtor_iban=tx.debtor_iban,
                    creditor_iban=tx.creditor_iban,
                    message_id=tx.message_id,
                    group_id=tx.payment_information_id,
                    fingerprint=tx.fingerprint(),
                )
                for tx in message.transactions
            ),
        )

    def contract_refusal(self, body: bytes, error: ContractError, *, message_id: str, now: datetime) -> bytes:
        """pain.002 group-level RJCT FF01 naming the first thing that failed."""
        try:
            original = text(parse_xml(body), "CstmrCdtTrfInitn", "GrpHdr", "MsgId") or "NOTPROVIDED"
        except ContractError:
            original = "NOTPROVIDED"
        first = error.errors[0] if error.errors else None
        detail = f"{first.pointer}: {first.message}" if first else error.message
        return build_pain002(
            StatusReport(
                message_id=message_id,
                created_at=now,
                original_message_id=original[:35],
                group_status="RJCT",
                group_reason_code="FF01",
                group_reason=detail,
            )
        )

    def render_report(
        self, lines: Sequence[ReportLine], *, message_id: str, original_message_id: str, now: datetime
    ) -> bytes:
        blocks: dict[str, list[TransactionStatus]] = {}
        for line in lines:
            blocks.setdefault(line.group_id, []).append(
                TransactionStatus(
                    status=line.code,
                    instruction_id=line.key,
                    end_to_end_id=line.reference,
                    reason_code=line.reason_code,
                    reason=line.reason,
                    account_servicer_reference=line.partner_reference,
                    returned=line.step == "returned" and line.code == "RJCT",
                    amount=line.amount,
                    currency=line.currency,
                )
            )
        return build_pain002(
            StatusReport(
                message_id=message_id,
                created_at=now,
                original_message_id=original_message_id,
                payments=tuple(PaymentInformationStatus(pmt, transactions=tuple(txs)) for pmt, txs in blocks.items()),
            )
        )

    def render_statements(self, statements: Sequence[Statement], *, message_id: str, now: datetime) -> bytes:
        return build_camt053(statements, message_id=message_id, created_at=now)
