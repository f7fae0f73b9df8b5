"""``gateway webhooks``: business units' status webhook endpoints (docs/webhooks.md).

A new or rotated signing secret is printed alone on stdout (so scripts can capture
it), once; everything else goes to stderr or a table.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import timedelta

from sqlalchemy import select

from gateway.cli.common import Subparsers, UsageError, command, console, database, group, load, require_schema, table
from gateway.domain.clock import system_clock
from gateway.domain.status import Status
from gateway.store import webhooks as store
from gateway.store.encryption import FieldCipher, parse_key_ring
from gateway.store.tables import business_units
from gateway.webhooks.urls import check_url

__all__ = ["register"]


async def _list(args: argparse.Namespace) -> int:
    settings = load(args)
    now = system_clock()
    async with database(settings) as engine:
        await require_schema(engine)
        async with engine.connect() as conn:
            found = await store.list_endpoints(conn, business_unit=args.business_unit)
    if args.json:
        print(json.dumps([e.as_dict(now) for e in found]))
        return 0
    out = table(
        "Webhook endpoints",
        "id",
        "business unit",
        "url",
        "events",
        "enabled",
        "failures",
        names=("id",),
        numbers=("failures",),
    )
    for e in found:
        state = "yes" if e.enabled else f"no: {e.disabled_reason}"
        out.add_row(e.id, e.business_unit, e.url, ",".join(e.events), state, str(e.consecutive_failures))
    console().print(out)
    return 0


async def _create(args: argparse.Namespace) -> int:
    settings = load(args)
    url = check_url(args.url, allow_private=settings.webhooks.allow_private_addresses)
    cipher = FieldCipher(parse_key_ring(settings.encryption_keys))
    async with database(settings) as engine:
        await require_schema(engine)
        async with engine.begin() as conn:
            unit = await conn.scalar(select(business_units.c.id).where(business_units.c.name == args.business_unit))
            if unit is None:
                raise UsageError(f"no business unit named {args.business_unit!r} (create its API key first)")
            endpoint, secret = await store.create_endpoint(
                conn,
                cipher,
                str(unit),
                url,
                args.event or [store.ALL_EVENTS],
                system_clock(),
                enabled=not args.disabled,
            )
    print(f"webhook endpoint {endpoint.id} created for {endpoint.business_unit}; its signing secret:", file=sys.stderr)
    print(secret)
    return 0


async def _set_enabled(args: argparse.Namespace, enabled: bool) -> int:
    settings = load(args)
    async with database(settings) as engine:
        await require_schema(engine)
        async with engine.begin() as conn:
            endpoint = await store.update_endpoint(
                conn, args.id, system_clock(), enabled=enabled, reason=getattr(args, "reason", None)
            )
    print(f"webhook endpoint {endpoint.id} {'enabled' if endpoint.enabled else 'disabled'}")
    return 0


async def _disable(args: argparse.Namespace) -> int:
    return await _set_enabled(args, False)


async def _enable(args: argparse.Namespace) -> int:
    return await _set_enabled(args, True)


async def _rotate(args: argparse.Namespace) -> int:
    settings = load(args)
    cipher = FieldCipher(parse_key_ring(settings.encryption_keys))
    seconds = settings.webhooks.secret_overlap_seconds if args.overlap_seconds is None else args.overlap_seconds
    async with database(settings) as engine:
        await require_schema(engine)
        async with engine.begin() as conn:
            endpoint, secret = await store.rotate_secret(
                conn, cipher, args.id, system_clock(), timedelta(seconds=seconds)
            )
    until = endpoint.previous_secret_until
    print(
        f"webhook endpoint {endpoint.id}: new signing secret; "
        + (f"the old one also signs until {until.isoformat()}" if until else "the old one no longer signs"),
        file=sys.stderr,
    )
    print(secret)
    return 0


def _seconds(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number of seconds") from None
    if number < 0:
        raise argparse.ArgumentTypeError("must be 0 or more")
    return number


def register(subparsers: Subparsers) -> None:
    hooks = group(subparsers, "webhooks", help="status webhook endpoints of business units")
    p = command(hooks, "list", _list, help="endpoints, newest first (never their secrets)")
    p.add_argument("--business-unit", help="only this business unit's")
    p.add_argument("--json", action="store_true", help="a JSON array instead of a table")
    p = command(hooks, "create", _create, help="register an endpoint; prints only its signing secret on stdout")
    p.add_argument("--business-unit", required=True, help="an existing business unit's name")
    p.add_argument("--url", required=True, help="http(s) URL the gateway POSTs status events to")
    p.add_argument(
        "--event",
        action="append",
        choices=[store.ALL_EVENTS, *(s.value for s in Status)],
        help="a status to be told about; repeatable; default * (every status change)",
    )
    p.add_argument("--disabled", action="store_true", help="create it disabled")
    p = command(hooks, "disable", _disable, help="stop sending to an endpoint (its deliveries wait)")
    p.add_argument("id", help="endpoint id (whe_…)")
    p.add_argument("--reason", help="noted on the endpoint")
    p = command(hooks, "enable", _enable, help="send to an endpoint again (clears its failure count)")
    p.add_argument("id", help="endpoint id (whe_…)")
    p = command(hooks, "rotate-secret", _rotate, help="a new signing secret; prints only it on stdout")
    p.add_argument("id", help="endpoint id (whe_…)")
    p.add_argument(
        "--overlap-seconds",
        type=_seconds,
        help="how long the old secret keeps signing too (default: webhooks.secret_overlap_seconds; at most 7 days)",
    )
