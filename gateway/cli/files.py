"""``gateway files …``: ERP payment files (pain.001) in, their pain.002 status reports out (docs/files.md).

A refused file exits 2 with one line saying why (its control figures, its XSD, a hostile
construct, a message id used before); a file taken in prints its id and counts.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.cli.common import Subparsers, UsageError, command, database, group, load, require_schema
from gateway.config import Settings
from gateway.contracts.registry import contracts
from gateway.domain.clock import system_clock
from gateway.errors import ConfigError, ContractError, FieldError
from gateway.intake.files import FileDesk
from gateway.store.codec import InstructionCodec
from gateway.store.encryption import FieldCipher, parse_key_ring
from gateway.store.intake import IntakeWriter
from gateway.store.tables import business_units

__all__ = ["register"]


@asynccontextmanager
async def _desk(settings: Settings) -> AsyncIterator[tuple[AsyncEngine, FileDesk]]:
    """A file desk over its own intake writer (started and stopped here)."""
    async with database(settings) as engine:
        await require_schema(engine)
        writer = IntakeWriter(engine)
        await writer.start()
        try:
            codec = InstructionCodec(FieldCipher(parse_key_ring(settings.encryption_keys)))
            yield engine, FileDesk(engine, system_clock, contracts(), codec, writer, settings.files)
        finally:
            await writer.stop()


async def _business_unit(engine: AsyncEngine, name: str) -> str:
    async with engine.connect() as conn:
        found = await conn.scalar(select(business_units.c.id).where(business_units.c.name == name))
    if found is None:
        raise UsageError(f"no business unit {name!r}: create it with `gateway keys create --business-unit {name}`")
    return str(found)


async def _submit(args: argparse.Namespace) -> int:
    settings = load(args)
    path = Path(args.file)
    try:
        body = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from None
    async with _desk(settings) as (engine, desk):
        unit = await _business_unit(engine, args.business_unit)
        answer = await desk.submit(body, business_unit_id=unit, submitted_by=None, source="cli")
    if answer.status_code >= 400:
        detail = answer.body.get("detail", "refused")
        errors = [FieldError(e["pointer"], e["detail"]) for e in answer.body.get("errors", [])]
        raise ContractError(f"{path}: {detail} (file {answer.body.get('file_id')}, pain.002 written)", errors=errors)
    if args.json:
        print(json.dumps(answer.body))
        return 0
    body_view = answer.body
    again = " (the same file was taken in before: nothing new)" if answer.replayed else ""
    print(
        f"{path}: {body_view['id']} {body_view['version']} {body_view['message_id']}: {body_view['payments']} payments,"
        f" {body_view['accepted']} taken in, {body_view['refused']} refused{again}",
        file=sys.stderr,
    )
    print(body_view["id"])
    return 0


async def _scan(args: argparse.Namespace) -> int:
    settings = load(args)
    async with _desk(settings) as (_, desk):
        taken = await desk.scan_inbox()
        written = await desk.write_due_reports()
    print(f"{taken} inbox files processed, {written} status reports written", file=sys.stderr)
    return 0


def register(subparsers: Subparsers) -> None:
    """Add the ``files`` command group."""
    files = group(
        subparsers, "files", help="ERP payment files: pain.001 in, pain.002 status reports out (docs/files.md)"
    )
    p = command(files, "submit", _submit, help="take in one pain.001 file for a business unit")
    p.add_argument("file", help="the pain.001.001.03 or .09 file")
    p.add_argument("--business-unit", required=True, help="the business unit whose payments these are")
    p.add_argument("--json", action="store_true", help="print the answer as JSON")
    command(files, "scan", _scan, help="scan the inbox folders once and write due status reports")
