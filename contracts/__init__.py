"""Versioned contracts (import name ``gateway_contracts``): ``<message>/<version>.json``."""
