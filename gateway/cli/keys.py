"""``gateway keys``: API keys for business units — create, list, revoke, rotate.

The same life cycle is served over HTTP to an ``admin`` key (``/v1/api-keys``, docs/operations.md);
both go through the store functions in ``gateway.store.repo``.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from datetime import timedelta

from gateway.cli.common import Subparsers, command, console, create_key, database, group, load, table
from gateway.domain.clock import system_clock
from gateway.store import repo

__all__ = ["register"]

_KEY_ID = re.compile(r"key_[0-9A-Z]{26}")


def _key_id(value: str) -> str:
    if not _KEY_ID.fullmatch(value):
        raise argparse.ArgumentTypeError(f"{value!r} is not a key id (key_ + 26 characters; see `gateway keys list`)")
    return value


def _grace(value: str) -> timedelta:
    if not value.isdigit():
        raise argparse.ArgumentTypeError(f"{value!r} is not a number of seconds")
    grace = timedelta(seconds=int(value))
    if grace > repo.MAX_ROTATION_GRACE:
        raise argparse.ArgumentTypeError(f"at most {int(repo.MAX_ROTATION_GRACE.total_seconds())} seconds (7 days)")
    return grace


async def create_command(args: argparse.Namespace) -> int:
    """``gateway keys create``: the new key alone on stdout, so scripts can capture it."""
    key = await create_key(load(args), args.business_unit, args.scope or ["instructions"])
    print(key)
    return 0


async def list_command(args: argparse.Namespace) -> int:
    """``gateway keys list``: every key, newest first, without secrets."""
    now = system_clock()
    async with database(load(args)) as engine, engine.connect() as conn:
        keys = await repo.list_api_keys(conn, now, business_unit=args.business_unit, state=args.state)
    rows = [k.as_dict(now) for k in keys]
    if args.json:
        print(json.dumps(rows))
        return 0
    shown = table("API keys", "id", "business unit", "scopes", "prefix", "state", names=("id",))
    for r in rows:
        state = "active" if r["active"] else f"revoked {r['revoked_at'][:16]}" if r["revoked_at"] else "inactive"
        shown.add_row(r["id"], r["business_unit"], ",".join(r["scopes"]), r["prefix"], state)
    console().print(shown if rows else "no API keys")
    return 0


async def revoke_command(args: argparse.Namespace) -> int:
    """``gateway keys revoke``: the key stops working at once (within seconds in other processes)."""
    async with database(load(args)) as engine, engine.begin() as conn:
        info = await repo.revoke_api_key(conn, args.key_id, system_clock())
    print(f"revoked {info.id} ({info.business_unit})", file=sys.stderr)
    return 0


async def rotate_command(args: argparse.Namespace) -> int:
    """``gateway keys rotate``: a new key for the same unit and scopes on stdout; the old one stops after --grace."""
    async with database(load(args)) as engine, engine.begin() as conn:
        plaintext, _ = await repo.rotate_api_key(conn, args.key_id, system_clock(), args.grace)
    print(plaintext)
    return 0


def register(subparsers: Subparsers) -> None:
    keys = group(subparsers, "keys", help="API keys")
    p = command(keys, "create", create_command, help="create an API key; prints only the key on stdout")
    p.add_argument("--business-unit", required=True, help="business unit name (created if new)")
    p.add_argument(
        "--scope",
        action="append",
        choices=sorted(repo.SCOPES),
        help="repeatable; default instructions",
    )
    p = command(keys, "list", list_command, help="every key, newest first (never a secret)")
    p.add_argument("--business-unit", help="only this business unit's keys")
    p.add_argument("--state", choices=repo.KEY_STATES, default="all")
    p.add_argument("--json", action="store_true", help="print one JSON array")
    p = command(keys, "revoke", revoke_command, help="stop a key working, at once")
    p.add_argument("key_id", type=_key_id, help="the key's id (see `gateway keys list`)")
    p = command(keys, "rotate", rotate_command, help="a new key for the same unit and scopes; prints only the key")
    p.add_argument("key_id", type=_key_id, help="the key's id (see `gateway keys list`)")
    p.add_argument(
        "--grace", type=_grace, default=timedelta(0), metavar="SECONDS", help="how long the old key keeps working"
    )
