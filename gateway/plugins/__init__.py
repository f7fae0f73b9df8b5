"""Plugins: hook markers, hook specifications and the typed plugin manager."""
