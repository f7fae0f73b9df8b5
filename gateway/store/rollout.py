"""Staged rollout: a mode per business unit and partner (docs/go-live.md, "Staged rollout").

``off`` (the partner is not used for the business unit), ``canary`` with a
percent (that share of payments, chosen by a hash of their reference, takes the
partner; the rest route as if it were off), ``shadow`` (recorded; routing treats
it like off in this version) or ``live``. No row means ``live``, so setups from
before rollout existed keep working. Every change appends a row to
``rollout_changes`` (who, when, from, to) in the same transaction as the change;
that table is never updated or deleted from.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from gateway.store.tables import rollout_changes, rollout_modes

__all__ = [
    "DEFAULT",
    "MODES",
    "RolloutMode",
    "canary_takes",
    "changes",
    "modes_for",
    "parse_mode",
    "set_mode",
    "table_modes",
]

MODES = ("off", "shadow", "canary", "live")


@dataclass(frozen=True, slots=True)
class RolloutMode:
    mode: str
    percent: int | None = None

    def __str__(self) -> str:
        return f"canary {self.percent}%" if self.mode == "canary" else self.mode


#: the mode of a business unit and partner with no row: live (existing setups keep working)
DEFAULT = RolloutMode("live")


def parse_mode(mode: str, percent: int | None) -> RolloutMode:
    """The mode, or ``ValueError`` saying what to fix (canary needs 1..99; only canary takes a percent)."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
    if mode == "canary":
        if percent is None or not 1 <= percent <= 99:
            raise ValueError("canary needs --percent between 1 and 99")
        return RolloutMode(mode, percent)
    if percent is not None:
        raise ValueError(f"--percent applies only to canary, not to {mode}")
    return RolloutMode(mode)


def canary_takes(reference: str, percent: int) -> bool:
    """Whether a payment with this reference is in the canary's ``percent``: same reference, same side."""
    bucket = int.from_bytes(hashlib.sha256(reference.encode("utf-8")).digest()[:8], "big") % 100
    return bucket < percent


async def table_modes(conn: AsyncConnection) -> dict[tuple[str, str], tuple[RolloutMode, datetime, str]]:
    """Every stored mode: (business unit, partner) → (mode, updated at, updated by)."""
    t = rollout_modes
    rows = (await conn.execute(select(t).order_by(t.c.business_unit, t.c.partner))).mappings()
    return {
        (r["business_unit"], r["partner"]): (RolloutMode(r["mode"], r["percent"]), r["updated_at"], r["updated_by"])
        for r in rows
    }


async def modes_for(conn: AsyncConnection, business_units: Collection[str]) -> dict[str, dict[str, RolloutMode]]:
    """Business unit → partner → stored mode (absent partners are live), in one query."""
    if not business_units:
        return {}
    t = rollout_modes
    rows = await conn.execute(
        select(t.c.business_unit, t.c.partner, t.c.mode, t.c.percent).where(
            t.c.business_unit.in_(sorted(set(business_units)))
        )
    )
    found: dict[str, dict[str, RolloutMode]] = {}
    for bu, partner, mode, percent in rows:
        found.setdefault(bu, {})[partner] = RolloutMode(mode, percent)
    return found


async def set_mode(
    engine: AsyncEngine,
    business_unit: str,
    partner: str,
    mode: RolloutMode,
    who: str,
    now: datetime,
    reason: str | None = None,
) -> tuple[RolloutMode, RolloutMode]:
    """Store the mode and append the change (with ``reason``, if given), in one transaction; returns (from, to).

    Payments already routed keep their route: only routing decisions made after
    the commit read the new mode.
    """
    t = rollout_modes
    async with engine.begin() as conn:
        row = (
            await conn.execute(
                select(t.c.mode, t.c.percent).where(t.c.business_unit == business_unit, t.c.partner == partner)
            )
        ).one_or_none()
        before = RolloutMode(row.mode, row.percent) if row else DEFAULT
        values = {"mode": mode.mode, "percent": mode.percent, "updated_at": now, "updated_by": who}
        if row is None:
            await conn.execute(insert(t).values(business_unit=business_unit, partner=partner, **values))
        else:
            await conn.execute(
                update(t).where(t.c.business_unit == business_unit, t.c.partner == partner).values(**values)
            )
        await conn.execute(
            insert(rollout_changes).values(
                business_unit=business_unit,
                partner=partner,
                from_mode=before.mode,
                from_percent=before.percent,
                to_mode=mode.mode,
                to_percent=mode.percent,
                changed_by=who,
                changed_at=now,
                reason=reason,
            )
        )
    return before, mode


async def changes(
    conn: AsyncConnection, business_unit: str | None = None, *, newest: int | None = None
) -> list[Mapping[str, object]]:
    """The change log, oldest first (``newest``: only the last that many, newest first)."""
    t = rollout_changes
    query = select(t).order_by(t.c.id if newest is None else t.c.id.desc())
    if business_unit is not None:
        query = query.where(t.c.business_unit == business_unit)
    if newest is not None:
        query = query.limit(newest)
    return [dict(r) for r in (await conn.execute(query)).mappings()]
