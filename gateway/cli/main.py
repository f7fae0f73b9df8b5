"""The ``gateway`` command line: the parser built from one module per command group, and its errors.

Every user error exits with code 2 and one line saying what to fix; never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence
from types import ModuleType

from gateway.cli import (
    adapters,
    contracts,
    creditlines,
    db,
    demo,
    docs,
    export,
    files,
    golive,
    keys,
    ledger,
    migrate,
    qa,
    rebates,
    receivables,
    recon,
    reports,
    rollout,
    route,
    serve,
    simulate,
    webhooks,
)
from gateway.cli.common import Parser, common_options
from gateway.errors import GatewayError
from gateway.logs import configure_logging

__all__ = ["GROUPS", "build_parser", "main"]

#: the command groups, in the order ``gateway --help`` lists them; each has ``register(subparsers)``
GROUPS: tuple[ModuleType, ...] = (
    serve,
    demo,
    simulate,
    keys,
    webhooks,
    db,
    route,
    docs,
    contracts,
    adapters,
    qa,
    ledger,
    recon,
    receivables,
    creditlines,
    rebates,
    files,
    reports,
    export,
    migrate,
    golive,
    rollout,
)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="gateway", description="Partner Gateway: payment integration gateway.", parents=[common_options()]
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True, parser_class=Parser)
    for module in GROUPS:
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        # servers log what an operator watches (requests, transitions) at INFO; one-shot commands only problems
        level = logging.INFO if args.command in ("serve", "simulate") else logging.WARNING
        configure_logging(getattr(args, "log_format", None), getattr(args, "verbose", False), level=level)
        return int(asyncio.run(args.func(args)))
    except GatewayError as exc:
        print(f"gateway: {exc.message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
