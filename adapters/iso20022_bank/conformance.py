"""How the conformance kit drives the ISO 20022 bank adapter against its simulator."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gateway.adapter import ConformanceProfile, PaymentOrder
from gateway.domain.accounts import Agent, IbanAccount, Party
from gateway.domain.money import Money

__all__ = ["profile"]

_REQUEST_SECRET = "conformance-bank-request-secret"
_CALLBACK_SECRET = "conformance-bank-callback-secret"


def _settings(base_url: str, scratch: Path) -> dict[str, Any]:
    return {"base_url": base_url, "request_secret": _REQUEST_SECRET, "callback_secret": _CALLBACK_SECRET}


def _order(instruction_id: str, creditor_name: str) -> PaymentOrder:
    return PaymentOrder(
        id=instruction_id,
        business_unit="conformance",
        reference=f"CONF-{instruction_id[-10:]}",
        type="credit_transfer",
        money=Money("125.00", "EUR"),
        debtor=Party(
            "ACME Retail GmbH",
            IbanAccount.parse("DE89370400440532013000", "/debtor/account/iban"),
            Agent.parse("COBADEFFXXX", "/debtor/agent/bic"),
        ),
        creditor=Party(
            creditor_name,
            IbanAccount.parse("FR1420041010050500013M02606", "/creditor/account/iban"),
            Agent.parse("BNPAFRPPXXX", "/creditor/agent/bic"),
        ),
        remittance_information="Conformance kit",
    )


def profile() -> ConformanceProfile:
    return ConformanceProfile(
        adapter_settings=_settings,
        simulator_settings={
            "request_secret": _REQUEST_SECRET,
            "callback_secret": _CALLBACK_SECRET,
            "callback_delay": 0.01,
            "settle_delay": 0.02,
            "callback_backoff": 0.01,
            "callback_attempts": 1,
        },
        sample_order=_order,
        reject_marker="REJECTNOW-AC04",
    )
