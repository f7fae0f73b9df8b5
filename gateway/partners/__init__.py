"""Talking to partners: the adapter interface, the partner HTTP client and message signing."""
