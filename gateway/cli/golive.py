"""``gateway golive check``: is a business unit ready to go live? A checklist with an exit code (docs/go-live.md).

Each check passes, fails, or is marked ``manual`` when the gateway cannot know (it says what
to run). Exit codes: 0 nothing fails, 1 something fails, 2 the command line is wrong.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import aiohttp
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.cli.common import Subparsers, UsageError, command, console, database, group, load, require_schema, table
from gateway.config import Settings
from gateway.runtime import DEV_KEY_ID
from gateway.store.encryption import parse_key_ring
from gateway.store.rollout import modes_for
from gateway.store.tables import business_units, migration_checkpoints, webhook_endpoints

__all__ = ["register"]

#: words that mark a development value in a partner's settings (the embedded config/gateway.yaml uses them)
_DEV_MARKERS = ("dev-only", "insecure", "sk_test_")
_PROBE_SECONDS = 5.0


@dataclass(frozen=True)
class Check:
    name: str
    state: str  # pass | fail | manual
    detail: str


def _dev_secrets(settings: Settings) -> Check:
    found: list[str] = []
    if DEV_KEY_ID in parse_key_ring(settings.encryption_keys):
        found.append("the development encryption key (key id 'dev') is in security.encryption_keys")
    for partner, options in settings.section("partners").items():
        for key, value in (options or {}).items():
            if isinstance(value, str) and any(marker in value for marker in _DEV_MARKERS):
                found.append(f"partners.{partner}.{key} holds a development value")
    if settings.section("webhooks").get("allow_private_addresses"):
        found.append("webhooks.allow_private_addresses is true")
    if found:
        return Check("no development secrets", "fail", "; ".join(found))
    return Check("no development secrets", "pass", "no development key or secret configured")


def _partners(settings: Settings) -> Check:
    partners: Mapping[str, Any] = settings.section("partners")
    if not partners:
        return Check("partners and conformance", "fail", "no partner is configured (partners: in the config file)")
    names = ", ".join(sorted(partners))
    return Check(
        "partners and conformance",
        "manual",
        f"configured: {names}. The gateway does not record conformance runs: run "
        "`pytest -p gateway.conformance --adapter NAME` for each and keep the report",
    )


async def _contract(conn: AsyncConnection, business_unit: str) -> Check:
    pinned = (
        await conn.execute(
            select(business_units.c.default_contract_version).where(business_units.c.name == business_unit)
        )
    ).scalar_one()
    if pinned is None:
        return Check(
            "contract version pinned",
            "fail",
            f"not pinned: run `gateway contracts pin {business_unit} VERSION`",
        )
    return Check("contract version pinned", "pass", f"instruction {pinned}")


async def _probe(session: aiohttp.ClientSession, url: str) -> str | None:
    """``None`` when the endpoint answers at all (any HTTP status), else why not."""
    try:
        async with session.get(url, allow_redirects=False):
            return None
    except (aiohttp.ClientError, TimeoutError) as exc:
        return type(exc).__name__


async def _webhooks(conn: AsyncConnection, business_unit: str) -> Check:
    t = webhook_endpoints
    rows = (
        await conn.execute(
            select(t.c.id, t.c.url)
            .join(business_units, business_units.c.id == t.c.business_unit_id)
            .where(business_units.c.name == business_unit, t.c.enabled.is_(True))
        )
    ).all()
    if not rows:
        return Check(
            "webhooks configured and reachable",
            "fail",
            f"no enabled endpoint: `gateway webhooks create --business-unit {business_unit} --url URL`",
        )
    timeout = aiohttp.ClientTimeout(total=_PROBE_SECONDS)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        failures = await asyncio.gather(*(_probe(session, url) for _, url in rows))
    down = [f"{endpoint} ({why})" for (endpoint, _), why in zip(rows, failures, strict=True) if why]
    if down:
        return Check("webhooks configured and reachable", "fail", "unreachable: " + ", ".join(down))
    return Check("webhooks configured and reachable", "pass", f"{len(rows)} endpoint(s) answer")


async def _history(conn: AsyncConnection, business_unit: str) -> Check:
    t = migration_checkpoints
    files, imported = (
        await conn.execute(
            select(func.count(), func.coalesce(func.sum(t.c.imported), 0)).where(
                t.c.business_unit == business_unit, t.c.finished.is_(True)
            )
        )
    ).one()
    if not files:
        return Check(
            "history imported",
            "fail",
            f"no finished import: `gateway migrate import FILE… --business-unit {business_unit}`",
        )
    return Check("history imported", "pass", f"{imported:,} payments from {files} file(s)")


async def _rollout(conn: AsyncConnection, settings: Settings, business_unit: str) -> Check:
    handoff = settings.section("rollout").get("handoff_adapter")  # the old system: not a partner to roll out
    partners = sorted(p for p in settings.section("partners") if p != handoff)
    stored = (await modes_for(conn, [business_unit])).get(business_unit, {})
    unset = [p for p in partners if p not in stored]
    if not partners or unset:
        names = ", ".join(unset) or "none configured"
        return Check(
            "rollout mode set",
            "fail",
            f"no mode set for {names}: `gateway rollout set {business_unit} PARTNER off|shadow|canary|live`",
        )
    return Check("rollout mode set", "pass", ", ".join(f"{p}: {stored[p]}" for p in partners))


async def _check(args: argparse.Namespace) -> int:
    settings = load(args)
    bu = args.business_unit
    async with database(settings) as engine:
        await require_schema(engine)
        async with engine.connect() as conn:
            known = (
                await conn.execute(select(business_units.c.id).where(business_units.c.name == bu))
            ).scalar_one_or_none()
            if known is None:
                raise UsageError(f"no business unit named {bu!r}")
            checks = [
                await _contract(conn, bu),
                _partners(settings),
                _dev_secrets(settings),
                await _webhooks(conn, bu),
                await _history(conn, bu),
                await _rollout(conn, settings, bu),
            ]
    ok = not any(c.state == "fail" for c in checks)
    if args.json:
        print(json.dumps({"business_unit": bu, "ok": ok, "checks": [asdict(c) for c in checks]}))
    else:
        shown = table(f"go-live checklist for {bu}", "check", "state", "detail", names=("state",))
        for c in checks:
            style = {"pass": "green", "fail": "red"}.get(c.state, "yellow")
            shown.add_row(c.name, f"[{style}]{c.state}[/]", c.detail)
        out = console()
        out.print(shown)
        out.print("ready to go live" if ok else "not ready: fix what fails")
    return 0 if ok else 1


def register(subparsers: Subparsers) -> None:
    commands = group(subparsers, "golive", help="is a business unit ready to go live (docs/go-live.md)")
    p = command(
        commands,
        "check",
        _check,
        help="the go-live checklist: exit 0 when nothing fails, 1 when something does",
    )
    p.add_argument("--business-unit", required=True, metavar="NAME")
    p.add_argument("--json", action="store_true", help="the checks as JSON")
