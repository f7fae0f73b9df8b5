"""How the conformance kit drives the ACH adapter against its file-drop simulator.

``submit`` only spools, so the kit delivers with ``run_cutoff``; the file drop refuses
by returning an entry after settlement (``RETURN-Rnn`` in the receiver's name).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from gateway.adapter import Adapter, ConformanceProfile, PaymentOrder
from gateway.domain.accounts import Party, UsAccount
from gateway.domain.money import Money
from gateway.domain.status import Status

if TYPE_CHECKING:
    from aiohttp import web

__all__ = ["profile"]

_API_KEY = "conformance-ach-api-key"
_CALLBACK_SECRET = "conformance-ach-callback-secret"


def _settings(base_url: str, scratch: Path) -> dict[str, Any]:
    return {
        "base_url": base_url,
        "api_key": _API_KEY,
        "callback_secret": _CALLBACK_SECRET,
        "spool_dir": str(scratch / "spool"),
    }


def _order(instruction_id: str, creditor_name: str) -> PaymentOrder:
    return PaymentOrder(
        id=instruction_id,
        business_unit="conformance",
        reference=f"C{instruction_id[-10:]}",
        type="credit_transfer",
        money=Money("125.50", "USD"),
        debtor=Party("HE Appliances US Inc", UsAccount.parse("987654321", "011000015", "/debtor/account")),
        creditor=Party(creditor_name, UsAccount.parse("12345678", "021000021", "/creditor/account")),
        remittance_information="Conformance kit",
    )


async def _deliver(adapter: Adapter) -> object:
    from gateway_adapters.ach_nacha.adapter import AchNachaAdapter

    assert isinstance(adapter, AchNachaAdapter)
    return await adapter.run_cutoff()


def _booked(app: web.Application, order: PaymentOrder) -> int:
    from gateway_simulators.ach_nacha import ODFI

    return sum(1 for b in app[ODFI].entries.values() if b.entry.individual_id.strip() == order.reference.upper())


def profile() -> ConformanceProfile:
    return ConformanceProfile(
        adapter_settings=_settings,
        simulator_settings={
            "api_key": _API_KEY,
            "callback_secret": _CALLBACK_SECRET,
            "settle_delay": 0.05,
            "return_delay": 0.05,
            "tick": 0.02,
            "send_callbacks": False,
        },
        sample_order=_order,
        reject_marker="RETURN-R01",
        rejection_status=Status.RETURNED,
        deliver=_deliver,
        payments_at_partner=_booked,
    )
