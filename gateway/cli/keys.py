"""``gateway keys``: API keys for business units."""

from __future__ import annotations

import argparse

from gateway.cli.common import Subparsers, command, create_key, group, load

__all__ = ["register"]


async def create_command(args: argparse.Namespace) -> int:
    """``gateway keys create``: the new key alone on stdout, so scripts can capture it."""
    key = await create_key(load(args), args.business_unit, args.scope or ["instructions"])
    print(key)
    return 0


def register(subparsers: Subparsers) -> None:
    keys = group(subparsers, "keys", help="API keys")
    p = command(keys, "create", create_command, help="create an API key; prints only the key on stdout")
    p.add_argument("--business-unit", required=True, help="business unit name (created if new)")
    p.add_argument(
        "--scope",
        action="append",
        choices=["instructions", "finance", "admin"],
        help="repeatable; default instructions",
    )
