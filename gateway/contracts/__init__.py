"""Versioned JSON contracts: the registry and validation, version negotiation and upcasts, the diff
between versions, generated docs, and the compiled pre-check."""
