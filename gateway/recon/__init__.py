"""Reconciliation: partner statements in, matched against the gateway's instructions, breaks out."""
