"""Simulator of an ODFI's ACH file drop: NACHA files in, entry statuses and return files out.

Reads files with the adapter's own strict NACHA reader, so the simulator rejects
exactly what the adapter's format rules reject.
"""

from __future__ import annotations

from gateway_simulators.ach_nacha.app import ODFI, FileDrop, create_app

__all__ = ["ODFI", "FileDrop", "create_app"]
