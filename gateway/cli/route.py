"""``gateway route``: which partner an instruction would go to, and why (sends nothing)."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.ext.asyncio import create_async_engine

from gateway.cli.common import Subparsers, UsageError, command, console, group, load, table
from gateway.contracts.registry import contracts
from gateway.contracts.versions import negotiate, parse_as_latest
from gateway.domain.instruction import parse_instruction, payment_order
from gateway.errors import ContractError
from gateway.runtime import Runtime

__all__ = ["register"]

#: route explain reads no database: an in-memory one keeps it from creating the configured file
_NO_DATABASE = "sqlite+aiosqlite:///:memory:"


def _read(file: str) -> object:
    try:
        return json.loads(Path(file).read_text(encoding="utf-8"))
    except OSError as exc:
        raise UsageError(f"cannot read {file}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise UsageError(f"{file} is not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise UsageError(f"{file} is not JSON (line {exc.lineno} column {exc.colno}: {exc.msg})") from None


async def explain_command(args: argparse.Namespace) -> int:
    """``gateway route explain FILE``: the routing decision, every candidate's verdict."""
    settings = load(args)
    doc = _read(args.file)
    registry = contracts()
    now = datetime.now(UTC)
    version = negotiate(registry, "instruction", requested=args.contract_version, pinned=None, now=now).version
    errors = registry.errors("instruction", doc, version)
    if errors:
        every = "; ".join(f"{e.pointer or '/'}: {e.message}" for e in errors)
        raise ContractError(f"{args.file} does not match instruction contract {version}: {every}", errors=errors)
    data = parse_as_latest(registry, "instruction", version, doc, parse_instruction)
    runtime = Runtime(
        settings, engine=create_async_engine(_NO_DATABASE)
    )  # builds adapters and the router; starts nothing
    try:
        decision = runtime.router.decide(
            payment_order("ins_explain", args.business_unit, data),
            runtime.adapters,
            channel=data.channel,
            today=now.date(),
            probe=False,
        )
    finally:
        await runtime.engine.dispose()
    if args.json:
        print(json.dumps(decision.as_dict()))
        return 0
    out = console()
    out.print(f"[bold]{decision.reason}[/]")
    candidates = table(
        f"candidates ({'rule ' + decision.rule if decision.rule else 'no rule matched'})",
        "partner",
        "verdict",
        names=("partner",),
    )
    for name in decision.candidates:
        verdict = "[green]chosen[/]" if name == decision.adapter else decision.skipped.get(name, "not reached")
        candidates.add_row(name, verdict)
    out.print(candidates)
    return 0


def register(subparsers: Subparsers) -> None:
    route = group(subparsers, "route", help="routing")
    p = command(
        route, "explain", explain_command, help="show which partner an instruction would go to, and why; sends nothing"
    )
    p.add_argument("file", help="an instruction as JSON (the body of POST /v1/instructions)")
    p.add_argument("--business-unit", default="explain", help="business unit name the rules match on")
    p.add_argument("--contract-version", help="contract version of the file (default: the default version)")
    p.add_argument("--json", action="store_true", help="print the decision as one JSON object")
