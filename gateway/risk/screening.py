"""The screening step between intake and routing, as the dispatcher runs it for a batch.

One transaction per batch: re-read the batch's statuses (locked on PostgreSQL),
load the history slice, evaluate each payment in order (so payments of one batch
see each other), reserve credit exposure, record the transitions, alerts and
holds, write the history back, and finish the jobs of payments that stop here
(held or rejected). A crash before the commit leaves nothing behind: the lease
expires and the batch is screened again.

Outcomes → transitions:
  pass   received → accepted                      (routing follows)
  flag   received → accepted, alert               (routing follows)
  hold   received → accepted → held, alert, hold  (waits for finance)
  reject received → rejected, alert               (final)
"""

from __future__ import annotations

import dataclasses
import sqlite3
from collections.abc import Generator, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.domain.ids import new_id
from gateway.domain.status import Status
from gateway.risk import credit
from gateway.risk.engine import RiskEngine
from gateway.risk.model import Candidate, Finding, Outcome, Screening
from gateway.risk.store import HistoryQueries, history_writes, save_history
from gateway.store import repo
from gateway.store.bulk import fetch_all, insert_rows, run_queries, run_statements
from gateway.store.repo import Transition
from gateway.store.sqlite_thread import sqlite_thread
from gateway.store.tables import holds, instructions, risk_alerts

if TYPE_CHECKING:
    from gateway.partners.adapter import PaymentOrder

__all__ = ["CREDIT_LIMIT", "SOURCE", "Screener"]

S = Status
SOURCE = "dispatcher"  # screening runs in the dispatcher (status-event contract sources)
CREDIT_LIMIT = "CREDIT_LIMIT"
RISK_CODES = {Outcome.FLAG: "RISK_FLAG", Outcome.HOLD: "RISK_HOLD", Outcome.REJECT: "RISK_REJECT"}


def _limit_to_reserve(
    c: Candidate, screening: Screening, limits: dict[tuple[str, str], credit.LimitRow]
) -> credit.LimitRow | None:
    """The credit limit this payment must reserve under: it has one, and the rules let it through."""
    if not c.counterparty or screening.outcome not in (Outcome.PASS, Outcome.FLAG):
        return None
    return limits.get((c.counterparty, c.currency))


def _over_limit(screening: Screening, limit: credit.LimitRow) -> Screening:
    """The screening of a payment that would take exposure past its limit: the limit's action."""
    c = screening.candidate
    reason = f"would take exposure to {c.counterparty} past its {c.currency} limit"
    over = Finding("credit_limit", 1.0, reason, Outcome(limit.on_exceed))
    return Screening(c, Outcome(limit.on_exceed), (*screening.findings, over), CREDIT_LIMIT)


def _accepted_reason(screening: Screening) -> str:
    """The reason on the ``accepted`` event screening writes: never "passed" for a payment it is about to hold."""
    if screening.outcome is Outcome.FLAG:
        return screening.reason
    if screening.outcome is Outcome.HOLD:
        return "screening holds it for review (see the next event)"
    return "screening passed"


class Screener:
    """Screens batches of received instructions against the risk engine (see module docstring)."""

    def __init__(self, engine: RiskEngine, *, one_hop: bool = True) -> None:
        self.engine = engine
        self.one_hop = one_hop  # reads in one round trip, and on SQLite writes in one more (bulk.fetch_all)

    def candidate(self, row: dict[str, Any], order: PaymentOrder) -> Candidate:
        c = Candidate.from_order(order, row["created_at"], self.engine.fingerprints)
        counterparty = self.engine.counterparty_of(c.creditor_key, c.creditor_name)
        return c if counterparty is None else dataclasses.replace(c, counterparty=counterparty)

    async def evaluate(self, conn: AsyncConnection, candidates: Sequence[Candidate], now: datetime) -> list[Screening]:
        """Evaluate in order, reserve credit, remember; the caller's transaction commits it all.

        On SQLite (``one_hop``) the whole of it runs in one trip to the driver's
        thread; otherwise the history and credit limit reads go as one round
        trip, the reservations one by one, and the writes after the rules. Both
        run the same steps (``_in_order``).
        """
        remember = self.engine.has_rules  # no rule reads history: do not read or write it on the dispatch path
        # the history (no queries without a rule reading it) and the credit limits in one round of reads
        dialect = conn.dialect
        reads = HistoryQueries(
            dialect, candidates if remember else (), self.engine.counters, self.engine.recent_seconds
        )
        limits_query = credit.limits_query(dialect, {c.counterparty for c in candidates if c.counterparty})
        queries = [*reads.queries, *([limits_query] if limits_query else [])]
        thread = await sqlite_thread(conn, enabled=self.one_hop)
        if thread is not None:

            def in_thread(db: sqlite3.Connection) -> list[Screening]:
                steps = self._in_order(candidates, reads, run_queries(db, queries, dialect), remember)
                try:
                    c = next(steps)
                    while True:
                        args = (c.instruction_id, c.counterparty or "", c.currency, c.amount_minor, now)
                        c = steps.send(credit.reserve_in_sqlite_thread(db, dialect, *args))
                except StopIteration as done:
                    results: list[Screening] = done.value
                if remember:
                    run_statements(db, history_writes(reads.history, now, dialect))
                return results

            return await thread.run(in_thread)
        steps = self._in_order(candidates, reads, await fetch_all(conn, queries, one_hop=self.one_hop), remember)
        try:
            c = next(steps)
            while True:
                reserved = await credit.reserve(
                    conn, c.instruction_id, c.counterparty or "", c.currency, c.amount_minor, now
                )
                c = steps.send(reserved)
        except StopIteration as done:
            results = done.value
        if remember:
            await save_history(conn, reads.history, now, one_hop=self.one_hop)
        return results

    def _in_order(
        self, candidates: Sequence[Candidate], reads: HistoryQueries, fetched: Sequence[list[Any]], remember: bool
    ) -> Generator[Candidate, bool, list[Screening]]:
        """Evaluate each payment in order (so a batch's payments see each other), the same on every path.

        ``fetched``: the rows of the history queries, then of the credit limits
        (if asked for). Yields each payment that must reserve credit exposure
        and is sent whether the reservation held; returns the screenings.
        """
        history = reads.fill(fetched[: len(reads.queries)])
        limits = credit.limit_rows(fetched[-1]) if len(fetched) > len(reads.queries) else {}
        results: list[Screening] = []
        for c in candidates:
            screening = self.engine.evaluate(c, history)
            limit = _limit_to_reserve(c, screening, limits)
            if limit is not None and not (yield c):
                screening = _over_limit(screening, limit)
            if remember:
                history.record(c, learn=screening.outcome in (Outcome.PASS, Outcome.FLAG))
            results.append(screening)
        return results

    async def screen(
        self, conn: AsyncConnection, batch: Sequence[tuple[dict[str, Any], PaymentOrder]], now: datetime
    ) -> tuple[list[Screening], list[repo.StatusRecord]]:
        """Screen the instructions still ``received`` among ``batch``; record everything."""
        ids = sorted(order.id for _, order in batch)
        query = select(instructions.c.id).where(instructions.c.id.in_(ids), instructions.c.status == S.RECEIVED.value)
        if conn.dialect.name == "postgresql":
            query = query.order_by(instructions.c.id).with_for_update()
        still = {r.id for r in await conn.execute(query)}
        candidates = [self.candidate(row, order) for row, order in batch if order.id in still]
        screenings = await self.evaluate(conn, candidates, now)
        transitions: list[Transition] = []
        alerts: list[dict[str, Any]] = []
        held: list[dict[str, Any]] = []
        units = {order.id: row["business_unit_id"] for row, order in batch}
        for s in screenings:
            c = s.candidate
            code = s.reason_code or RISK_CODES.get(s.outcome)
            if s.outcome is Outcome.REJECT:
                transitions.append(Transition(c.instruction_id, S.REJECTED, SOURCE, reason_code=code, reason=s.reason))
            else:
                transitions.append(
                    Transition(
                        c.instruction_id,
                        S.ACCEPTED,
                        SOURCE,
                        reason_code=code if s.outcome is Outcome.FLAG else None,
                        reason=_accepted_reason(s),
                    )
                )
            if s.outcome is Outcome.HOLD:
                transitions.append(Transition(c.instruction_id, S.HELD, SOURCE, reason_code=code, reason=s.reason))
                expiry = self.engine.policy(c.business_unit).hold_expiry_seconds
                held.append(
                    {
                        "instruction_id": c.instruction_id,
                        "business_unit_id": units[c.instruction_id],
                        "reason_code": code,
                        "findings": [f.as_dict() for f in s.findings],
                        "held_at": now,
                        "expires_at": now + timedelta(seconds=expiry),
                        "decision": None,
                        "decided_by": None,
                        "decided_at": None,
                        "comment": None,
                    }
                )
            if s.outcome is not Outcome.PASS:
                alerts.append(
                    {
                        "id": new_id("alr"),
                        "instruction_id": c.instruction_id,
                        "business_unit_id": units[c.instruction_id],
                        "outcome": s.outcome.value,
                        "reason_code": code,
                        "findings": [f.as_dict() for f in s.findings],
                        "created_at": now,
                    }
                )
        records = await repo.record_transitions(conn, transitions, now)
        await insert_rows(conn, risk_alerts, alerts)
        await insert_rows(conn, holds, held)
        return screenings, records
