"""Periodic reports (``builtin``: settlement, risk, reconciliation, partners) and operational anomaly detection."""

from gateway.reports import builtin as builtin
