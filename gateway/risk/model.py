"""What risk screening looks at and what it says: candidates, findings, outcomes.

A ``Candidate`` is the part of an instruction the rules need, with accounts
replaced by keyed fingerprints (HMAC), so risk state never holds an account
number. A ``Finding`` is one rule's verdict; a ``Screening`` is the policy's
outcome over all findings.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import unicodedata
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from functools import lru_cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Mapping

    from gateway.partners.adapter import PaymentOrder

__all__ = [
    "Candidate",
    "Finding",
    "Fingerprinter",
    "Outcome",
    "Screening",
    "normalise_name",
    "normalise_text",
]


class Outcome(StrEnum):
    """What happens to the payment, in rising severity."""

    PASS = "pass"  # goes on to routing
    FLAG = "flag"  # goes on to routing, and raises an alert
    HOLD = "hold"  # waits for finance (four eyes)
    REJECT = "reject"  # final

    @property
    def severity(self) -> int:
        return _SEVERITY[self]


_SEVERITY = {Outcome.PASS: 0, Outcome.FLAG: 1, Outcome.HOLD: 2, Outcome.REJECT: 3}

# Legal-form words that do not tell two companies apart ("Nordic Parts AB" = "NORDIC PARTS").
_LEGAL_FORMS = frozenset(
    [
        "ab",
        "ag",
        "as",
        "asa",
        "bv",
        "co",
        "corp",
        "corporation",
        "company",
        "gmbh",
        "inc",
        "incorporated",
        "kg",
        "limited",
        "llc",
        "llp",
        "ltd",
        "nv",
        "oy",
        "oyj",
        "plc",
        "sa",
        "sarl",
        "sas",
        "spa",
        "srl",
        "the",
    ]
)
_NON_ALNUM = re.compile(r"[^0-9a-z]+")


@lru_cache(maxsize=65536)
def normalise_text(value: str | None) -> str:
    """Case-, accent- and punctuation-insensitive form of free text."""
    if not value:
        return ""
    folded = unicodedata.normalize("NFKD", value.casefold())
    ascii_only = "".join(ch for ch in folded if not unicodedata.combining(ch))
    return " ".join(_NON_ALNUM.sub(" ", ascii_only).split())


@lru_cache(maxsize=65536)
def normalise_name(value: str | None) -> str:
    """A party name for matching: normalised text without legal-form words."""
    words = [w for w in normalise_text(value).split() if w not in _LEGAL_FORMS]
    return " ".join(words)


class Fingerprinter:
    """Keyed, stable fingerprints of accounts: equal accounts, equal fingerprints; no way back.

    HMAC-SHA256 over the account's canonical JSON, truncated to 128 bits. The
    key must stay the same for the risk history to stay meaningful (see
    docs/risk.md: ``risk.fingerprint_key``).
    """

    def __init__(self, key: bytes) -> None:
        self._key = key
        self._cache: dict[str, str] = {}

    def account(self, account: Mapping[str, str]) -> str:
        canonical = json.dumps(dict(account), sort_keys=True, separators=(",", ":"))
        found = self._cache.get(canonical)
        if found is None:
            found = hmac.new(self._key, canonical.encode(), hashlib.sha256).hexdigest()[:32]
            if len(self._cache) > 200_000:
                self._cache.clear()
            self._cache[canonical] = found
        return found


@dataclass(frozen=True, slots=True)
class Candidate:
    """One instruction as the rules see it."""

    instruction_id: str
    business_unit: str
    at: datetime  # when the gateway received it (UTC)
    type: str
    currency: str
    amount: Decimal
    amount_minor: int
    debtor_key: str
    creditor_key: str
    debtor_name: str  # normalised (``normalise_name``)
    creditor_name: str  # normalised
    remittance: str  # normalised (``normalise_text``)
    #: the counterparty whose credit limit this payment uses (from risk.yaml), if any
    counterparty: str | None = None
    #: raw account canonical forms, only for the blocked-list rule (never stored)
    creditor_account: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_order(
        cls,
        order: PaymentOrder,
        at: datetime,
        fingerprints: Fingerprinter,
        counterparty: str | None = None,
    ) -> Candidate:
        money = order.money
        creditor_account = order.creditor.account.as_dict()
        return cls(
            instruction_id=order.id,
            business_unit=order.business_unit,
            at=at,
            type=order.type,
            currency=money.currency,
            amount=money.amount,
            amount_minor=money.minor,
            debtor_key=fingerprints.account(order.debtor.account.as_dict()),
            creditor_key=fingerprints.account(creditor_account),
            debtor_name=normalise_name(order.debtor.name),
            creditor_name=normalise_name(order.creditor.name),
            remittance=normalise_text(order.remittance_information),
            counterparty=counterparty,
            creditor_account=creditor_account,
        )


@dataclass(frozen=True, slots=True)
class Finding:
    """One rule's verdict on one candidate.

    ``score`` is in [0, 1]: the policy compares it with its ``flag_at`` and
    ``hold_at`` thresholds unless the rule is configured with a fixed ``action``.
    """

    rule: str
    score: float
    reason: str
    action: Outcome | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"rule": self.rule, "score": round(self.score, 3), "reason": self.reason}
        if self.action is not None:
            out["action"] = self.action.value
        return out


@dataclass(frozen=True, slots=True)
class Screening:
    """The outcome for one candidate and the findings behind it."""

    candidate: Candidate
    outcome: Outcome
    findings: tuple[Finding, ...] = ()
    #: set when the credit limit decided the outcome: "CREDIT_LIMIT"
    reason_code: str | None = None

    @property
    def reason(self) -> str:
        if not self.findings:
            return "screening passed"
        return "; ".join(f"{f.rule}: {f.reason}" for f in self.findings)[:500]

    def rules(self) -> list[str]:
        return [f.rule for f in self.findings]
