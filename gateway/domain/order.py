"""A payment order: a validated instruction as an adapter sees it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date

from gateway.domain.accounts import IbanAccount, Party, UltimateParty, UsAccount, WalletAccount, mask
from gateway.domain.money import Money

__all__ = ["PaymentOrder"]


@dataclass(frozen=True)
class PaymentOrder:
    """A validated instruction as an adapter sees it (accounts decrypted).

    ``id`` is the gateway's instruction id; adapters MUST send it to the
    partner as the idempotency key, so a retry never pays twice.

    Remittance: ``remittance_information`` is always the text to pass on. For a
    structured remittance (contract 2.0) it holds the ISO 11649 creditor reference,
    so an adapter that only knows unstructured text still transmits it; an adapter
    that can send structured remittance (pain.001 ``Strd/CdtrRefInf``, type SCOR)
    uses ``creditor_reference`` instead when it is set.
    """

    id: str
    business_unit: str
    reference: str
    type: str
    money: Money
    debtor: Party
    creditor: Party
    remittance_information: str | None = None
    requested_execution_date: date | None = None
    urgency: str = "standard"
    metadata: Mapping[str, str] = field(default_factory=dict)
    partner_reference: str | None = None
    #: ISO 11649 creditor reference (structured remittance, type SCOR), or None
    creditor_reference: str | None = None
    #: ISO 20022 ExternalPurpose1Code, or None
    purpose: str | None = None
    ultimate_debtor: UltimateParty | None = None
    ultimate_creditor: UltimateParty | None = None

    def redact(self, text: str) -> str:
        """``text`` with the order's account identifiers masked (a partner message may echo them back)."""
        for party in (self.debtor, self.creditor):
            account = party.account
            if isinstance(account, IbanAccount):
                text = text.replace(account.iban, mask(account.iban))
            elif isinstance(account, UsAccount):
                text = text.replace(account.number, mask(account.number))
            elif isinstance(account, WalletAccount):
                text = text.replace(account.wallet, mask(account.wallet))
        return text
