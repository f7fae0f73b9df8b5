"""The instant payments partner as a plug-in of the simulator core: JSON requests in, signed JSON reports out.

It reads requests with the adapter's own reader (the same JSON Schema files
in ``contracts/partners/instant_rtp/``), so it refuses exactly what the
contract refuses, answering ``400`` in its own error format (``error.json``,
code ``FF01``, every failing pointer). It is ``synchronous``: the answer to a
request already carries the final outcome (``ACSC`` or ``RJCT``), so there is
no timeline and no callback; the status endpoint reports the same outcome.

The account's statement of a day (``GET /v1/statements?date=``, signed like the
other routes; ``/_sim/statements/{date}`` unsigned) is a camt.053 written by the
bank adapter's writer: every payment the rail settled that day, with the
scenario's statement breaks.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import ClassVar

from gateway.errors import ContractError
from gateway_adapters.instant_rtp.messages import Report, build_error, build_report, read_request
from gateway_adapters.iso20022_bank.camt053 import build_camt053
from gateway_simulators.core.partner import Partner, ReportLine, Statement, Submission, Transaction

__all__ = ["InstantRtp"]


class InstantRtp(Partner):
    """``POST /v1/payments`` answered with the outcome; ``GET /v1/payments/{id}`` for its status."""

    name: ClassVar[str] = "instant_rtp"
    submit_path: ClassVar[str] = "/v1/payments"
    status_path: ClassVar[str] = "/v1/payments/{payment_id}"
    content_type: ClassVar[str] = "application/json"
    statement_path: ClassVar[str | None] = "/v1/statements"
    statement_content_type: ClassVar[str | None] = "application/xml"
    synchronous: ClassVar[bool] = True
    codes: ClassVar[dict[str, str]] = {
        "received": "RCVD",
        "accepted": "ACTC",
        "in_process": "ACSP",
        "settled": "ACSC",
        "rejected": "RJCT",
        "returned": "RJCT",  # never reached: a synchronous partner does not simulate returns
    }

    def read_submission(self, body: bytes) -> Submission:
        request = read_request(body)
        doc = request.document
        return Submission(
            message_id=doc["message_id"],
            transactions=(
                Transaction(
                    key=request.instruction_id,
                    reference=doc["end_to_end_id"],
                    amount=request.amount,
                    currency=doc["currency"],
                    creditor_name=doc["creditor"]["name"],
                    debtor_name=doc["debtor"]["name"],
                    debtor_account=doc["debtor"]["account"]["number"],
                    message_id=doc["message_id"],
                    group_id=request.instruction_id,
                    fingerprint=request.fingerprint(),
                ),
            ),
        )

    def contract_refusal(self, body: bytes, error: ContractError, *, message_id: str, now: datetime) -> bytes:
        """``FF01`` with the best-matching error first and every failing pointer."""
        return build_error("FF01", error.message, error.errors)

    def error_body(self, code: str, message: str) -> tuple[bytes, str]:
        return build_error(code, message), self.content_type

    def render_report(
        self, lines: Sequence[ReportLine], *, message_id: str, original_message_id: str, now: datetime
    ) -> bytes:
        line = lines[0]  # one payment per request
        return build_report(
            Report(
                message_id=message_id,
                original_message_id=original_message_id,
                instruction_id=line.key,
                end_to_end_id=line.reference,
                transaction_id=line.partner_reference,
                status=line.code,
                amount=line.amount,
                currency=line.currency,
                created_at=now,
                reason_code=line.reason_code,
                reason=line.reason,
            )
        )

    def render_statements(self, statements: Sequence[Statement], *, message_id: str, now: datetime) -> bytes:
        """The account's camt.053.001.08 (the bank adapter's writer): one ``Stmt`` per debtor account and currency,
        each settled payment a ``DBIT`` entry (``InstrId``, ``EndToEndId``, ``AcctSvcrRef`` = the transaction id),
        the account a US account number (``Othr/Id``)."""
        return build_camt053(statements, message_id=message_id, created_at=now, iban=False)
