"""ISO 20022 status reason codes (ExternalStatusReason1Code) this adapter maps to a readable reason.

The bank's pain.002 carries the code in ``StsRsnInf/Rsn/Cd``; the gateway keeps
the code as the event's ``reason_code`` and, when the bank sent no text of its
own, uses the description here as the ``reason``. A code not listed is kept
as it came, with a generic reason: never dropped, never guessed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from types import MappingProxyType
from typing import Literal

from gateway.domain.mandate import refund_claim_admissible, refund_claim_deadline

__all__ = [
    "DIRECT_DEBIT_REASON_CODES",
    "REASON_CODES",
    "REFUSAL_REASON_CODES",
    "RETURN_REASON_CODES",
    "RTransaction",
    "classify_r_transaction",
    "describe_direct_debit_reason",
    "describe_reason",
    "refund_admissible",
    "refund_deadline",
]

#: Rejection and return reasons of SEPA credit transfers (EPC guidance), code → description.
REASON_CODES: Mapping[str, str] = MappingProxyType(
    {
        "AC01": "incorrect account number",
        "AC04": "closed account number",
        "AC06": "blocked account",
        "AC13": "invalid debtor account type",
        "AG01": "transaction forbidden on this account",
        "AG02": "invalid bank operation code",
        "AM04": "insufficient funds",
        "AM05": "duplicate payment",
        "BE04": "missing creditor address",
        "CNOR": "creditor bank is not registered",
        "DNOR": "debtor bank is not registered",
        "FF01": "invalid file format",
        "MD07": "end customer deceased",
        "MS02": "reason not specified (customer generated)",
        "MS03": "reason not specified (agent generated)",
        "RC01": "bank identifier incorrect",
        "RR01": "missing debtor account or identification",
        "RR02": "missing debtor name or address",
        "RR03": "missing creditor name or address",
        "RR04": "regulatory reason",
        "TM01": "received after the cut-off time",
    }
)

#: The codes a bank may give when a settled payment comes back (a return).
RETURN_REASON_CODES: frozenset[str] = frozenset(
    {"AC01", "AC04", "AC06", "AG01", "AM05", "MD07", "MS02", "MS03", "RR04"}
)


def describe_reason(code: str | None, text: str | None) -> str | None:
    """The bank's own text if it sent one, else the description of ``code``."""
    if text:
        return text
    if code is None:
        return None
    return REASON_CODES.get(code, f"reason code {code}")


# -- SEPA direct debit R-transactions ------------------------------------------------------

#: Reasons of SEPA Core R-transactions (EPC guidance on reason codes), code → description.
DIRECT_DEBIT_REASON_CODES: Mapping[str, str] = MappingProxyType(
    {
        **REASON_CODES,
        "AM04": "insufficient funds",
        "BE05": "creditor identifier incorrect",
        "MD01": "no valid mandate (unauthorised transaction)",
        "MD02": "mandate data missing or incorrect",
        "MD06": "refund request by the debtor (authorised transaction)",
        "MD07": "end customer deceased",
        "MS02": "refused by the debtor",
        "SL01": "specific service offered by the debtor bank (debtor's block or limit)",
    }
)

#: Codes meaning the debtor said no (refusal), not the bank or the scheme (reject).
REFUSAL_REASON_CODES: frozenset[str] = frozenset({"MS02", "SL01"})

RKind = Literal["reject", "refusal", "return", "refund"]


@dataclass(frozen=True)
class RTransaction:
    """What an R-transaction means for a collection."""

    kind: RKind  # reject / refusal before settlement; return / refund after
    status: Literal["rejected", "returned"]  # the collection's status it leads to
    reason_code: str
    reason: str
    #: refunds only: whether the debtor's right rests on an authorised mandate (8 weeks) or not (13 months)
    authorised: bool | None = None


def describe_direct_debit_reason(code: str, text: str | None = None) -> str:
    """The bank's own text if it sent one, else the description of ``code`` (never guessed)."""
    return text or DIRECT_DEBIT_REASON_CODES.get(code, f"reason code {code}")


def classify_r_transaction(code: str, *, settled: bool, text: str | None = None) -> RTransaction:
    """Map an R-transaction's reason code to its kind and the collection status.

    Before settlement (a pain.002 ``RJCT``, or a camt.054 reject): ``refusal``
    for the debtor's own refusal (``MS02``, ``SL01``), else ``reject``; status
    ``rejected``. After settlement (camt.054 ``RtrInf``): ``refund`` for
    ``MD06`` (authorised, 8 weeks) and ``MD01`` (unauthorised, 13 months), else
    ``return``; status ``returned``.
    """
    code = (code or "").strip().upper() or "NARR"
    reason = describe_direct_debit_reason(code, text)
    if not settled:
        kind: RKind = "refusal" if code in REFUSAL_REASON_CODES else "reject"
        return RTransaction(kind, "rejected", code, reason)
    if code == "MD06":
        return RTransaction("refund", "returned", code, reason, authorised=True)
    if code == "MD01":
        return RTransaction("refund", "returned", code, reason, authorised=False)
    return RTransaction("return", "returned", code, reason)


def refund_admissible(code: str, settled_on: date, claimed_on: date) -> bool:
    """Whether a debtor's refund claim (``MD06`` / ``MD01``) reached the bank within its window."""
    if code == "MD06":
        return refund_claim_admissible(settled_on, claimed_on, authorised=True)
    if code == "MD01":
        return refund_claim_admissible(settled_on, claimed_on, authorised=False)
    return False


def refund_deadline(code: str, settled_on: date) -> date | None:
    """The last day a refund with ``code`` may be claimed; None for a code that is not a refund."""
    if code not in ("MD06", "MD01"):
        return None
    return refund_claim_deadline(settled_on, authorised=code == "MD06")
