"""The partner's status reason codes (ISO 20022 ExternalStatusReason1Code, as RTP and SCT Inst use them).

One table: code → what it means, and whether it is the *creditor side* not
answering in time (``AB05``/``AB06``/``AB08``). Those are still definitive
rejections — the partner guarantees nothing was paid — unlike the adapter's
own timeout, which leaves the outcome unknown. The gateway keeps the code as
the event's ``reason_code``; a code not listed is kept as it came.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

__all__ = ["REASON_CODES", "ReasonCode", "describe_reason"]


@dataclass(frozen=True)
class ReasonCode:
    description: str
    #: the creditor side timed out or was offline: a new instruction later may succeed
    creditor_unavailable: bool = False


#: code → meaning (rejections the partner answers synchronously)
REASON_CODES: Mapping[str, ReasonCode] = MappingProxyType(
    {
        "AB05": ReasonCode("timeout at the creditor agent", creditor_unavailable=True),
        "AB06": ReasonCode("timeout at the instructed agent", creditor_unavailable=True),
        "AB08": ReasonCode("creditor agent is offline", creditor_unavailable=True),
        "AC02": ReasonCode("invalid debtor account number"),
        "AC03": ReasonCode("invalid creditor account number"),
        "AC04": ReasonCode("closed account number"),
        "AC06": ReasonCode("blocked account"),
        "AC14": ReasonCode("invalid creditor account type"),
        "AG01": ReasonCode("transaction forbidden on this account"),
        "AM02": ReasonCode("amount exceeds the rail's or the creditor's limit"),
        "AM04": ReasonCode("insufficient funds"),
        "BE04": ReasonCode("missing creditor address"),
        "DS24": ReasonCode("waiting time expired (the request arrived too late)"),
        "DUPL": ReasonCode("duplicate payment"),
        "FF02": ReasonCode("syntax error"),
        "MS03": ReasonCode("reason not specified (agent generated)"),
        "RC04": ReasonCode("invalid creditor bank identifier (routing number)"),
        "RR04": ReasonCode("regulatory reason"),
    }
)


def describe_reason(code: str | None, text: str | None) -> str | None:
    """The partner's own text if it sent one, else the description of ``code``."""
    if text:
        return text
    if code is None:
        return None
    known = REASON_CODES.get(code)
    return known.description if known else f"reason code {code}"
