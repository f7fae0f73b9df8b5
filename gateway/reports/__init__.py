"""Periodic reports (``builtin``: settlement, risk, reconciliation, partners; ``rebates``) and anomaly detection."""

from gateway.reports import builtin as builtin
from gateway.reports import rebates as rebates
