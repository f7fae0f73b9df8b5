"""Risk history in the database: load the slice a batch needs, write back what it changed.

Five indexed queries load a batch's history (counters, pairs, beneficiaries,
names, recent payments), whatever the number of stored payments; the writes are
``executemany`` upserts. Velocity counters are incremented atomically in SQL
(``count = count + excluded.count``), so several gateway processes on one
PostgreSQL database never lose a count; pair amounts, beneficiaries and names
are last-writer-wins (two processes screening the same pair in the same
instant may drop one amount from the pair's memory; documented in docs/risk.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, delete, or_, select, tuple_
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.risk.history import Beneficiary, CounterKey, History, NameAccounts, PairStats, Recent
from gateway.risk.model import Candidate
from gateway.store.bulk import insert_rows
from gateway.store.tables import (
    risk_beneficiaries,
    risk_counters,
    risk_names,
    risk_pairs,
    risk_recent,
)

__all__ = ["counter_row", "load_history", "prune_history", "recent_row", "save_history", "upsert"]


def upsert(
    conn: AsyncConnection,
    table: Any,
    rows: Sequence[dict[str, Any]],
    keys: Sequence[str],
    *,
    add: Sequence[str] = (),
    keep: Sequence[str] = (),
) -> Any:
    """``INSERT … ON CONFLICT (keys) DO UPDATE`` for SQLite and PostgreSQL, as one executemany.

    Columns in ``add`` are incremented by the new row's value, columns in
    ``keep`` keep the stored value, every other column takes the new value.
    """
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    stmt = dialect.insert(table)
    values = {}
    for name in rows[0]:
        if name in keys or name in keep:
            continue
        values[name] = table.c[name] + stmt.excluded[name] if name in add else stmt.excluded[name]
    stmt = stmt.on_conflict_do_update(index_elements=[table.c[k] for k in keys], set_=values)
    return conn.execute(stmt, list(rows))


def _since(candidates: Sequence[Candidate], seconds: int) -> datetime:
    return min(c.at for c in candidates) - timedelta(seconds=seconds)


async def load_history(
    conn: AsyncConnection,
    candidates: Sequence[Candidate],
    bucket_sizes: Sequence[int] | set[int],
    recent_seconds: int,
) -> History:
    """The history the rules need for these candidates (see module docstring)."""
    history = History(bucket_sizes, recent_seconds or 86_400)
    if not candidates:
        return history
    units = sorted({c.business_unit for c in candidates})
    parties = sorted({c.debtor_key for c in candidates} | {c.creditor_key for c in candidates})
    creditors = sorted({c.creditor_key for c in candidates})
    if bucket_sizes:
        # each bucket size only as far back as its own windows reach (24 buckets plus the partial one),
        # not as far as the longest window: an hour's small buckets are not loaded for a whole day
        reach = or_(
            *(
                and_(
                    risk_counters.c.bucket_seconds == size,
                    risk_counters.c.bucket_start >= int(_since(candidates, size * 25).timestamp()),
                )
                for size in sorted(bucket_sizes)
            )
        )
        rows = await conn.execute(
            select(risk_counters).where(
                risk_counters.c.key.in_(parties),
                risk_counters.c.business_unit.in_(units),
                reach,
            )
        )
        for r in rows:
            key = (r.business_unit, r.subject, r.key, r.currency, r.bucket_seconds)
            history.counters.setdefault(key, {})[r.bucket_start] = [r.count, r.sum_minor]
    pair_keys = sorted({(c.creditor_key, c.debtor_key) for c in candidates})
    rows = await conn.execute(
        select(risk_pairs).where(
            tuple_(risk_pairs.c.creditor_key, risk_pairs.c.debtor_key).in_(pair_keys)
            if conn.dialect.name == "postgresql"
            else risk_pairs.c.creditor_key.in_(creditors),
            risk_pairs.c.business_unit.in_(units),
        )
    )
    for r in rows:
        history.pairs[(r.business_unit, r.debtor_key, r.creditor_key, r.currency)] = PairStats(r.count, list(r.amounts))
    rows = await conn.execute(
        select(risk_beneficiaries).where(
            risk_beneficiaries.c.creditor_key.in_(creditors), risk_beneficiaries.c.business_unit.in_(units)
        )
    )
    for r in rows:
        history.beneficiaries[(r.business_unit, r.creditor_key)] = Beneficiary(r.first_seen, r.count, r.max_minor)
    names = sorted({c.creditor_name for c in candidates if c.creditor_name})
    if names:
        rows = await conn.execute(
            select(risk_names).where(risk_names.c.creditor_name.in_(names), risk_names.c.business_unit.in_(units))
        )
        for r in rows:
            named = history.names.setdefault((r.business_unit, r.creditor_name), NameAccounts())
            named.accounts[r.creditor_key] = r.count
    if recent_seconds:
        rows = await conn.execute(
            select(risk_recent)
            .where(
                risk_recent.c.creditor_key.in_(creditors),
                risk_recent.c.at >= _since(candidates, recent_seconds),
            )
            .order_by(risk_recent.c.id)
        )
        for r in rows:
            history.recent.setdefault((r.business_unit, r.creditor_key), []).append(
                Recent(r.at, r.instruction_id, r.currency, r.amount_minor, r.remittance)
            )
    return history


def counter_row(ckey: CounterKey, bucket: int, count: int, total: int) -> dict[str, Any]:
    """A ``risk_counters`` row for one bucket of a history counter."""
    bu, subject, key, currency, size = ckey
    return {
        "key": key,
        "subject": subject,
        "business_unit": bu,
        "currency": currency,
        "bucket_seconds": size,
        "bucket_start": bucket,
        "count": count,
        "sum_minor": total,
    }


def recent_row(business_unit: str, creditor_key: str, r: Recent) -> dict[str, Any]:
    """A ``risk_recent`` row for one remembered payment."""
    return {
        "creditor_key": creditor_key,
        "business_unit": business_unit,
        "at": r.at,
        "instruction_id": r.instruction_id,
        "currency": r.currency,
        "amount_minor": r.amount_minor,
        "remittance": r.remittance[:140],
    }


async def save_history(conn: AsyncConnection, history: History, now: datetime) -> None:
    """Write back what the batch changed (one executemany per table)."""
    changes = history.changes
    if changes.counters:
        rows = [counter_row(ckey, bucket, n, total) for (ckey, bucket), (n, total) in sorted(changes.counters.items())]
        await upsert(conn, risk_counters, rows, _PK_COUNTERS, add=("count", "sum_minor"))
    if changes.pairs:
        rows = [
            {
                "creditor_key": ck,
                "debtor_key": dk,
                "business_unit": bu,
                "currency": cur,
                "count": history.pairs[(bu, dk, ck, cur)].count,
                "amounts": history.pairs[(bu, dk, ck, cur)].amounts,
                "updated_at": now,
            }
            for bu, dk, ck, cur in sorted(changes.pairs)
        ]
        await upsert(conn, risk_pairs, rows, ("creditor_key", "debtor_key", "business_unit", "currency"))
    if changes.beneficiaries:
        rows = [
            {
                "creditor_key": ck,
                "business_unit": bu,
                "first_seen": history.beneficiaries[(bu, ck)].first_seen,
                "count": history.beneficiaries[(bu, ck)].count,
                "max_minor": history.beneficiaries[(bu, ck)].max_minor,
            }
            for bu, ck in sorted(changes.beneficiaries)
        ]
        await upsert(conn, risk_beneficiaries, rows, ("creditor_key", "business_unit"), keep=("first_seen",))
    if changes.names:
        rows = [
            {
                "creditor_name": name,
                "business_unit": bu,
                "creditor_key": key,
                "count": history.names[(bu, name)].accounts[key],
                "updated_at": now,
            }
            for bu, name, key in sorted(changes.names)
        ]
        await upsert(conn, risk_names, rows, ("creditor_name", "business_unit", "creditor_key"))
    if changes.recents and history.recent_seconds:
        await insert_rows(conn, risk_recent, [recent_row(bu, ck, r) for bu, ck, r in changes.recents])
    history.changes = type(changes)()


_PK_COUNTERS = ("key", "subject", "business_unit", "currency", "bucket_seconds", "bucket_start")


async def prune_history(conn: AsyncConnection, now: datetime, keep_counters: int, keep_recent: int) -> int:
    """Delete counters and recent payments that no window reaches any more; returns rows deleted."""
    counters = await conn.execute(
        delete(risk_counters).where(risk_counters.c.bucket_start < int(now.timestamp()) - keep_counters)
    )
    recent = await conn.execute(delete(risk_recent).where(risk_recent.c.at < now - timedelta(seconds=keep_recent)))
    return int(counters.rowcount or 0) + int(recent.rowcount or 0)
