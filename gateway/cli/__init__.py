"""The ``gateway`` command line: one module per command group, each with ``register(subparsers)``."""

from gateway.cli.main import main

__all__ = ["main"]
