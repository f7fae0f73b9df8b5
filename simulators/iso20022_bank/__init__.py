"""Simulator of an ISO 20022 bank (pain.001.001.09 in, signed pain.002.001.10 out).

It imports the adapter's own pain.001 reader (same XSD file) and pain.002
builder, so the simulator rejects exactly what the contract rejects.
"""

from __future__ import annotations

from gateway_simulators.iso20022_bank.app import BANK, create_app, signed_status_report
from gateway_simulators.iso20022_bank.bank import Bank, SimulatorSettings

__all__ = ["BANK", "Bank", "SimulatorSettings", "create_app", "signed_status_report"]
