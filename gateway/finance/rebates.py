"""The settlement of a rebate period: final amounts, true-ups, credit notes or payouts (docs/credit-and-rebates.md).

``lines`` shows a period's rows with what the settlement would post; ``settle_period``
settles each row still open, one transaction per row. A program that settles by
payout first submits a ``payout`` instruction through normal intake, with a
deterministic reference (``REB-<distributor>-<period>-<currency>``) and idempotency
key, then books it in the row's transaction: a crash in between leaves the
instruction accepted and the row open, and the next run finds the instruction
(idempotent replay) and completes the booking. Nothing is paid twice; a settled row
is never touched again.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.contracts.registry import ContractRegistry
from gateway.contracts.versions import parse_as_latest
from gateway.domain.ids import new_id
from gateway.domain.instruction import parse_instruction
from gateway.domain.money import Money
from gateway.domain.rebates import Program, parse_period
from gateway.errors import ConfigError, ConflictError
from gateway.store import rebates as store
from gateway.store.codec import InstructionCodec
from gateway.store.intake import IntakeItem, IntakeOutcome, IntakeWriter
from gateway.store.tables import business_units

__all__ = ["check_period", "lines", "settle_period"]


def check_period(period: str) -> str:
    """``period`` if it is ``YYYY-Qn`` or ``YYYY-MM``; ValueError with one line otherwise."""
    parse_period(period)
    return period


def _line(program: Program | None, row: Mapping[str, Any]) -> dict[str, Any]:
    cur = row["currency"]
    settled = row["settled_at"] is not None
    final = row["final_minor"] if settled else (program.amount(row["volume_minor"], cur) if program else None)
    view = {
        "program": row["program"],
        "distributor": row["distributor"],
        "period": row["period"],
        "currency": cur,
        "volume": str(Money.from_minor(row["volume_minor"], cur).amount),
        "rate": None if program is None else f"{program.rate_at(row['volume_minor'], cur) * 100:f}%",
        "accrued": str(Money.from_minor(row["accrued_minor"], cur).amount),
        "final": None if final is None else str(Money.from_minor(final, cur).amount),
        "true_up": None if final is None else str(Money.from_minor(final - row["accrued_minor"], cur).amount),
        "settlement": None if program is None else program.settlement,
        "settled": settled,
        "settled_at": row["settled_at"].isoformat() if settled else None,
        "credited": None if row["credited_minor"] is None else str(Money.from_minor(row["credited_minor"], cur).amount),
        "instruction_id": row["instruction_id"],
        "reference": store.payout_reference(row["distributor"], row["period"], cur),
    }
    return view


async def lines(engine: AsyncEngine, programs: Mapping[str, Program], period: str) -> list[dict[str, Any]]:
    """The period's rows with their final amounts (computed now for rows not settled yet)."""
    check_period(period)
    async with engine.connect() as conn:
        rows = await store.accrual_rows(conn, period)
    return [_line(programs.get(r["program"]), r) for r in rows]


async def _business_unit_id(engine: AsyncEngine, name: str) -> str:
    async with engine.connect() as conn:
        found = await conn.scalar(select(business_units.c.id).where(business_units.c.name == name))
    if found is None:
        raise ConfigError(f"rebates payout.business_unit: no business unit {name!r}")
    return str(found)


async def _pay(
    engine: AsyncEngine,
    program: Program,
    row: Mapping[str, Any],
    final: int,
    now: datetime,
    contracts: ContractRegistry,
    codec: InstructionCodec | None,
    writer: IntakeWriter,
) -> str:
    """Submit the row's payout instruction through normal intake; its id (the one accepted before, on a re-run)."""
    if program.payout is None or codec is None:
        raise ConfigError(f"rebates program {program.id} settles by payout: give it payout parties and encryption keys")
    cur, dist = row["currency"], row["distributor"]
    amount = Money.from_minor(final, cur)
    doc = {
        "reference": store.payout_reference(dist, row["period"], cur),
        "type": "payout",
        "amount": str(amount.amount),
        "currency": cur,
        "debtor": program.payout["debtor"],
        "creditor": program.payout["creditors"][dist],
        "remittance_information": {"unstructured": f"Rebate {program.id} {row['period']}"},
    }
    version = contracts.versions("instruction")[-1]
    try:
        contracts.validate("instruction", doc, version)
    except Exception as exc:
        raise ConfigError(f"rebates program {program.id} payout: {exc}".splitlines()[0]) from None
    data = parse_as_latest(contracts, "instruction", version, doc, parse_instruction)
    unit_id = await _business_unit_id(engine, program.payout["business_unit"])
    instruction_id = new_id("ins")
    response = {"id": instruction_id, "reference": data.reference, "status": "received", "created_at": now.isoformat()}
    canon = json.dumps([version, doc], sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    item = IntakeItem.received(
        business_unit_id=unit_id,
        idempotency_key=f"rebate:{program.id}:{dist}:{row['period']}:{cur}",
        request_hash=hashlib.sha256(canon.encode()).hexdigest(),
        instruction=codec.new_row(instruction_id, unit_id, data, version, now, submitted_by=None),
        response=response,
        now=now,
    )
    result = await writer.submit(item)
    if result.outcome is IntakeOutcome.KEY_CONFLICT:
        raise ConflictError(
            f"the rebate payout of {dist} {row['period']} {cur} was submitted before with other details;"
            " restore the program's payout parties"
        )
    if result.outcome is IntakeOutcome.DUPLICATE_REFERENCE:
        raise ConflictError(f"reference {data.reference!r} is already used by another instruction")
    return str((result.response or response)["id"])


async def settle_period(
    engine: AsyncEngine,
    programs: Mapping[str, Program],
    period: str,
    clock: Callable[[], datetime],
    *,
    contracts: ContractRegistry,
    codec: InstructionCodec | None,
    writer: IntakeWriter,
    dry_run: bool = False,
) -> list[dict[str, Any]]:
    """Settle every open row of ``period``; the rows as ``lines`` shows them, each with ``action``.

    ``action``: ``settled`` (this run), ``already_settled``, ``would_settle`` (dry run)
    or ``no_program`` (the program is no longer in the file: left open).
    """
    check_period(period)
    async with engine.connect() as conn:
        rows = await store.accrual_rows(conn, period)
    out = []
    for row in rows:
        program = programs.get(row["program"])
        action = "already_settled"
        if row["settled_at"] is None:
            action = "no_program" if program is None else ("would_settle" if dry_run else "settled")
        if action == "settled" and program is not None:
            now = clock()
            final = program.amount(row["volume_minor"], row["currency"])
            payout = None
            if program.settlement == "payout" and final > 0:
                assert program.payout is not None
                payout = (
                    program.payout["business_unit"],
                    await _pay(engine, program, row, final, now, contracts, codec, writer),
                )
            async with engine.begin() as conn:
                done = await store.settle(conn, program, row, now, payout=payout)
            if done is None:
                action = "already_settled"
        async with engine.connect() as conn:
            fresh = [r for r in await store.accrual_rows(conn, period) if _same(r, row)]
        out.append({**_line(program, fresh[0]), "action": action})
    return out


def _same(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    return all(a[k] == b[k] for k in ("program", "distributor", "currency"))
