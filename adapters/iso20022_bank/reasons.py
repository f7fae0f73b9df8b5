"""ISO 20022 status reason codes (ExternalStatusReason1Code) this adapter maps to a readable reason.

The bank's pain.002 carries the code in ``StsRsnInf/Rsn/Cd``; the gateway keeps
the code as the event's ``reason_code`` and, when the bank sent no text of its
own, uses the description here as the ``reason``. A code not listed is kept
as it came, with a generic reason: never dropped, never guessed.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

__all__ = ["REASON_CODES", "RETURN_REASON_CODES", "describe_reason"]

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
