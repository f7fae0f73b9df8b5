"""The card acquirer's message contracts: JSON Schemas in ``contracts/partners/card_acquirer/``.

The adapter (what it sends and what it receives) and the simulator (what it
accepts) load the very same files through ``partner_contracts()``, so the two
cannot drift. Validators are built once per process.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from gateway.contracts.registry import ContractRegistry

__all__ = [
    "CHARGE",
    "CHARGE_CREATE",
    "CHARGE_EVENT",
    "CONTRACTS_DIR",
    "ERROR",
    "PAYOUT",
    "PAYOUT_CREATE",
    "REFUND",
    "REFUND_CREATE",
    "WEBHOOK_EVENT",
    "contract_files",
    "partner_contracts",
    "validate",
]

#: ``<message>/<version>.json`` files of this partner (package data of ``gateway_contracts``)
CONTRACTS_DIR: Path = Path(str(resources.files("gateway_contracts"))) / "partners" / "card_acquirer"

PAYOUT_CREATE = "payout-create"
CHARGE_CREATE = "charge-create"
CHARGE = "charge"
CHARGE_EVENT = "charge-event"
REFUND_CREATE = "refund-create"
REFUND = "refund"
PAYOUT = "payout"
WEBHOOK_EVENT = "webhook-event"
ERROR = "error"


@cache
def partner_contracts() -> ContractRegistry:
    """The registry of this partner's contracts (loaded and compiled once)."""
    return ContractRegistry(root=CONTRACTS_DIR)


def contract_files() -> dict[str, str]:
    """Message name → schema file, for ``Adapter.partner_contracts``."""
    return {path.parent.name: str(path) for path in sorted(CONTRACTS_DIR.glob("*/*.json"))}


def validate(message: str, instance: Any) -> None:
    """Raise ``ContractError`` (every failing JSON pointer, best match first) if ``instance`` breaks ``message``."""
    partner_contracts().validate(message, instance)
