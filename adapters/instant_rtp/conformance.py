"""How the conformance kit drives the instant payments adapter against its simulator."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gateway.adapter import ConformanceProfile, PaymentOrder
from gateway.domain.accounts import Party, UsAccount
from gateway.domain.money import Money

__all__ = ["profile"]

_REQUEST_SECRET = "conformance-rtp-request-secret"
_RESPONSE_SECRET = "conformance-rtp-response-secret"


def _settings(base_url: str, scratch: Path) -> dict[str, Any]:
    return {"base_url": base_url, "request_secret": _REQUEST_SECRET, "response_secret": _RESPONSE_SECRET}


def _order(instruction_id: str, creditor_name: str) -> PaymentOrder:
    return PaymentOrder(
        id=instruction_id,
        business_unit="conformance",
        reference=f"CONF-{instruction_id[-10:]}",
        type="credit_transfer",
        money=Money("250.00", "USD"),
        debtor=Party("HE Appliances US LLC", UsAccount.parse("123456789", "021000021", "/debtor/account")),
        creditor=Party(creditor_name, UsAccount.parse("987654321", "011000015", "/creditor/account")),
        remittance_information="Conformance kit",
        urgency="instant",
    )


def profile() -> ConformanceProfile:
    return ConformanceProfile(
        adapter_settings=_settings,
        simulator_settings={"request_secret": _REQUEST_SECRET, "callback_secret": _RESPONSE_SECRET},
        sample_order=_order,
        reject_marker="REJECT-AC03",
    )
