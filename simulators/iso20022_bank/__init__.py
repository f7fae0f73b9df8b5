"""Simulator of an ISO 20022 bank (pain.001.001.09 in, signed pain.002.001.10 out, camt.053 statements).

A plug-in of the simulator core (``gateway_simulators.core``): it imports the
adapter's own pain.001 reader (same XSD file) and pain.002 builder, so the
simulator rejects exactly what the contract rejects.
"""

from __future__ import annotations

from gateway_simulators.core import Simulator
from gateway_simulators.iso20022_bank.app import BANK, create_app, signed_status_report
from gateway_simulators.iso20022_bank.partner import Iso20022Bank

# the engine, under the name older callers use
Bank = Simulator

__all__ = ["BANK", "Bank", "Iso20022Bank", "create_app", "signed_status_report"]
