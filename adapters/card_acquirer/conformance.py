"""How the conformance kit drives the card/wallet acquirer adapter against its simulator."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gateway.adapter import ConformanceProfile, PaymentOrder
from gateway.domain.accounts import IbanAccount, Party, WalletAccount
from gateway.domain.money import Money
from gateway_adapters.card_acquirer.adapter import SIGNATURE_HEADER

__all__ = ["profile"]

_API_KEY = "sk_test_conformance_kit_key"
_WEBHOOK_SECRET = "whsec_conformance_kit_secret"


def _settings(base_url: str, scratch: Path) -> dict[str, Any]:
    return {"base_url": base_url, "api_key": _API_KEY, "webhook_secret": _WEBHOOK_SECRET}


def _order(instruction_id: str, creditor_name: str) -> PaymentOrder:
    return PaymentOrder(
        id=instruction_id,
        business_unit="conformance",
        reference=f"CONF-{instruction_id[-10:]}",
        type="payout",
        money=Money("25.50", "EUR"),
        debtor=Party("ACME Retail GmbH", IbanAccount.parse("DE89370400440532013000", "/debtor/account/iban")),
        creditor=Party(creditor_name, WalletAccount.parse("wal_conformance_01", "/creditor/account/wallet")),
        remittance_information="Conformance kit",
    )


def profile() -> ConformanceProfile:
    return ConformanceProfile(
        adapter_settings=_settings,
        simulator_settings={
            "api_key": _API_KEY,
            "webhook_secret": _WEBHOOK_SECRET,
            "callback_delay": 0.01,
            "settle_delay": 0.02,
            "callback_backoff": 0.01,
            "callback_attempts": 1,
        },
        sample_order=_order,
        reject_marker="REJECTNOW-AM04",
        signature_header=SIGNATURE_HEADER,
    )
