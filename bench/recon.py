"""Reconciliation benchmark: matching 1M statement lines against 1M payments with every kind of break.

Targets (issue 14), SQLite:

* matching 1,000,000 statement lines against 1,000,000 payments < 10 s
  (loading excluded and reported separately);
* precision of auto-confirmed matches 1.0, and >= 99 % of matchable lines matched.

The data (seeded, reproducible) has 1 % of each break kind — payments missing
from the statement, unexpected lines, amount mismatches (+10..50 %), duplicated
lines, lines debited for payments rejected here (status mismatch) — 5 % of
payments settled in one-to-many lines (batches of 2-5, less a fee under 1 %),
and the rest one line per payment: most by reference, 5 % only through the
remittance text, 3 % with no reference at all (amount + date + counterparty:
suggested). Each line carries its truth, so precision and recall are counted,
not estimated.

Figures, each with its baseline measured in the same run:

* **decide**: ``gateway.recon.matching.decide`` (every rule of the shipped
  ``config/reconciliation.yaml``) over the lines and payments in memory,
  against a plain dict-join (payments by reference, one look-up per line);
* **sqlite** (``--sqlite``, default on): the same data bulk-loaded into a SQLite
  file (reported as ``load``), then ``run_recon`` — reading what is open
  (``read``), deciding (``decide``), writing the matches with their ledger
  entries (``write``) and syncing the breaks (``breaks``), one transaction.

    .venv/bin/python bench/recon.py [--json] [--lines 1000000] [--no-sqlite] [--no-ledger] [--serial-read]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sqlalchemy import insert  # noqa: E402

from gateway.ledger.rules import load_rules  # noqa: E402
from gateway.recon import matching  # noqa: E402
from gateway.recon.matching import LineView, PaymentView, decide  # noqa: E402
from gateway.recon.rules import load_recon_rules  # noqa: E402
from gateway.recon.service import run_recon  # noqa: E402
from gateway.store.bulk import execute_all, insert_statement  # noqa: E402
from gateway.store.db import create_engine  # noqa: E402
from gateway.store.journal import bind  # noqa: E402
from gateway.store.migrate import upgrade  # noqa: E402
from gateway.store.tables import business_units, instructions, statement_lines, statements  # noqa: E402
from gateway_adapters.iso20022_bank.camt053 import build_camt053  # noqa: E402
from gateway_simulators.core.partner import Statement, StatementEntry  # noqa: E402

NOW = datetime(2026, 11, 26, 18, 0, tzinfo=UTC)
DAY: date = NOW.date()
SOURCE = "bank"
BREAK_KINDS = ("missing", "unexpected", "amount_mismatch", "duplicate", "status_mismatch")


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass
class Data:
    payments: list[PaymentView]  # settled, open
    rejected: list[PaymentView]  # not settled here (status mismatch when on the statement)
    lines: list[LineView]
    truth: dict[str, frozenset[str]]  # line id -> the payments it truly settles (matchable lines only)
    kinds: dict[str, str]  # line id -> what it is (one, remittance, counterparty, batch, or a break kind)


def generate(n: int, seed: int = 14) -> Data:
    """About ``n`` lines and ``n`` payments, with the mix the module docstring describes."""
    rng = random.Random(seed)
    payments: list[PaymentView] = []
    rejected: list[PaymentView] = []
    lines: list[LineView] = []
    truth: dict[str, frozenset[str]] = {}
    kinds: dict[str, str] = {}
    counter = iter(range(1, 10**9))

    def payment(amount: int, partner_ref: str | None = None, creditor: str | None = None) -> PaymentView:
        k = next(counter)
        return PaymentView(
            id=f"ins_{k:012d}",
            reference=f"INV-{k:010d}",
            partner_reference=partner_ref or f"BNK{k:012d}",
            adapter=SOURCE,
            amount_minor=amount,
            currency="EUR",
            day=DAY,
            creditor=creditor or f"creditor {k}",
            business_unit="bench",
        )

    def line(
        amount: int, refs: tuple[str, ...], kind: str, counterparty: str = "", words: tuple[str, ...] = ()
    ) -> LineView:
        view = LineView(1, len(lines) + 1, SOURCE, amount, "debit", "EUR", DAY, refs, counterparty, words)
        lines.append(view)
        kinds[view.id] = kind
        return view

    while len(lines) < n:
        roll = rng.random()
        amount = rng.randint(1_00, 50_000_00)
        if roll < 0.01:  # missing: settled here, no line
            payments.append(payment(amount))
            kinds[f"missing:{len(payments)}"] = "missing"
        elif roll < 0.02:  # unexpected line
            line(amount, (f"UNKNOWN-{next(counter)}",), "unexpected")
        elif roll < 0.03:  # amount mismatch: +10..50 %
            p = payment(amount)
            payments.append(p)
            line(amount + amount * rng.randint(10, 50) // 100, (p.reference,), "amount_mismatch")
        elif roll < 0.04:  # duplicate: the same line twice
            p = payment(amount)
            payments.append(p)
            first = line(amount, (p.reference, p.partner_reference or ""), "one")
            truth[first.id] = frozenset({p.id})
            line(amount, (p.reference, p.partner_reference or ""), "duplicate")
        elif roll < 0.05:  # rejected here, debited there
            p = payment(amount)
            rejected.append(p)
            line(amount, (p.reference,), "status_mismatch")
        elif roll < 0.10:  # one line settles a batch, less a fee under 1 %
            batch = f"BATCH{next(counter):010d}"
            group = [payment(rng.randint(1_00, 5_000_00), partner_ref=batch) for _ in range(rng.randint(2, 5))]
            payments.extend(group)
            total = sum(p.amount_minor for p in group)
            view = line(total + total * rng.randint(0, 90) // 10_000, (batch,), "batch")
            truth[view.id] = frozenset(p.id for p in group)
        elif roll < 0.15:  # only our reference in the remittance text
            p = payment(amount)
            payments.append(p)
            view = line(amount, (), "remittance", words=("Invoice", p.reference, "thanks"))
            truth[view.id] = frozenset({p.id})
        elif roll < 0.18:  # no reference at all: amount + date + counterparty
            p = payment(amount, creditor=f"creditor {rng.randint(1, 10**9)}")
            payments.append(p)
            view = line(amount, (), "counterparty", counterparty=p.creditor)
            truth[view.id] = frozenset({p.id})
        else:  # plain: end-to-end id and the bank's reference
            p = payment(amount)
            payments.append(p)
            view = line(amount, (p.reference, p.partner_reference or ""), "one")
            truth[view.id] = frozenset({p.id})
    return Data(payments, rejected, lines, truth, kinds)


def dict_join(data: Data) -> int:
    """The baseline: payments by reference, one look-up per line (no rules, no tolerance, no groups)."""
    by_ref = {}
    for p in data.payments:
        by_ref[p.reference] = p
        if p.partner_reference:
            by_ref[p.partner_reference] = p
    found = 0
    for x in data.lines:
        for ref in x.refs:
            if ref in by_ref:
                found += 1
                break
    return found


def score(data: Data, decisions: list[Any]) -> dict[str, Any]:
    confirmed = [d for d in decisions if d.status == "confirmed"]
    wrong = 0
    for d in confirmed:
        for x in d.lines:
            if data.truth.get(x.id) != frozenset(p.id for p in d.payments):
                wrong += 1
                break
    matched_lines = {x.id for d in decisions for x in d.lines}
    matchable = set(data.truth)
    by_kind: dict[str, int] = defaultdict(int)
    for d in decisions:
        for x in d.lines:
            by_kind[data.kinds[x.id]] += 1
    return {
        "confirmed": len(confirmed),
        "suggested": len(decisions) - len(confirmed),
        "confirmed_wrong": wrong,
        "precision_confirmed": round(1 - wrong / len(confirmed), 6) if confirmed else 1.0,
        "matchable_lines": len(matchable),
        "matchable_matched": len(matchable & matched_lines),
        "recall": round(len(matchable & matched_lines) / len(matchable), 6) if matchable else 1.0,
        "matched_by_kind": dict(sorted(by_kind.items())),
    }


def elsewhere(data: Data) -> set[tuple[str, str]]:
    return {(p.adapter, ref) for p in data.rejected for ref in p.keys}


async def _bulk(conn: Any, table: Any, rows: list[dict[str, Any]]) -> None:
    """The bench's own load: driver-level ``executemany`` in chunks (``gateway.store.bulk``), one hop each."""
    for i in range(0, len(rows), 50_000):
        await execute_all(conn, [insert_statement(table, rows[i : i + 50_000], conn.dialect)])


async def sqlite_load(data: Data, path: Path) -> float:
    """The data in a fresh SQLite file at ``path``; the seconds it took."""
    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    await upgrade(engine)
    clock = time.perf_counter()
    settled_at = datetime.combine(DAY, datetime.min.time(), tzinfo=UTC) + timedelta(hours=10)
    async with engine.begin() as conn:
        await conn.execute(insert(business_units).values(id="bu_bench", name="bench", created_at=NOW))
        base = {
            "business_unit_id": "bu_bench",
            "type": "credit_transfer",
            "currency": "EUR",
            "debtor_name": "Bench GmbH",
            "debtor_account": "x",
            "creditor_account": "x",
            "masked": {},
            "urgency": "standard",
            "metadata": {},
            "contract_version": "1.1",
            "adapter": SOURCE,
            "event_count": 4,
            "created_at": settled_at,
            "updated_at": settled_at,
        }
        rows = [
            {
                **base,
                "id": p.id,
                "reference": p.reference,
                "amount": str(p.amount_minor),
                "amount_minor": p.amount_minor,
                "status": status,
                "creditor_name": p.creditor,
                "partner_reference": p.partner_reference,
            }
            for status, group in (("settled", data.payments), ("rejected", data.rejected))
            for p in group
        ]
        await _bulk(conn, instructions, rows)
        del rows
        result = await conn.execute(
            insert(statements).values(
                source=SOURCE,
                statement_id="BENCH-1",
                format="bench",
                currency="EUR",
                period_start=DAY,
                period_end=DAY,
                line_count=len(data.lines),
                credits_minor=0,
                debits_minor=sum(x.amount_minor for x in data.lines),
                file_sha256="0" * 64,
                imported_at=NOW,
            )
        )
        pk = int(result.inserted_primary_key[0])
        text = {x.id: " ".join(x.words) for x in data.lines if x.words}
        line_rows = [
            {
                "statement_pk": pk,
                "line": x.line,
                "amount_minor": x.amount_minor,
                "direction": x.direction,
                "currency": "EUR",
                "booked_on": DAY,
                "value_on": DAY,
                "end_to_end_id": x.refs[0] if x.refs else None,
                "partner_reference": x.refs[1] if len(x.refs) > 1 else None,
                "servicer_reference": None,
                "counterparty_name": x.counterparty or None,
                "counterparty_account": None,
                "kind": "booked",
                "reason_code": None,
                "original_reference": None,
                "text": text.get(x.id),
            }
            for x in data.lines
        ]
        await _bulk(conn, statement_lines, line_rows)
        del line_rows
    load = time.perf_counter() - clock
    await engine.dispose()
    return load


async def sqlite_run(data: Data, ledger: bool) -> dict[str, Any]:
    """Load the data into a SQLite file (timed apart), then one ``run_recon``."""
    folder = Path(tempfile.mkdtemp(prefix="bench-recon-"))
    load = await sqlite_load(data, folder / "recon.db")
    engine = create_engine(f"sqlite+aiosqlite:///{folder / 'recon.db'}")
    bind(engine, load_rules() if ledger else None)
    log(
        f"sqlite: loaded {len(data.lines)} lines and {len(data.payments) + len(data.rejected)} payments in {load:.1f} s"
    )
    clock, cpu = time.perf_counter(), time.process_time()
    report = await run_recon(engine, load_recon_rules(), now=NOW)
    total, total_cpu = time.perf_counter() - clock, time.process_time() - cpu
    log(f"sqlite: run_recon {total:.1f} s ({total_cpu:.1f} s CPU): {report.seconds} {report.as_dict()}")
    await engine.dispose()
    seconds = {k: round(v, 3) for k, v in report.seconds.items()}
    cpu_seconds = {k: round(v, 3) for k, v in report.cpu_seconds.items()}
    return {
        "load_seconds": round(load, 3),
        "run_seconds": round(total, 3),
        "run_cpu_seconds": round(total_cpu, 3),
        "parts_seconds": seconds,
        "parts_cpu_seconds": cpu_seconds,
        "matching_seconds": round(seconds.get("read", 0) + seconds["decide"], 3),
        # the run's own CPU and, where a worker process read the lines, the worker's (on the other core)
        "matching_cpu_seconds": round(
            cpu_seconds.get("read", 0) + cpu_seconds["decide"] + cpu_seconds.get("read_worker", 0), 3
        ),
        "lines_read_by_worker": "read_worker" in cpu_seconds,
        "report": report.as_dict(),
        "ledger": ledger,
        "database": str(folder / "recon.db"),
    }


def write_camt053(n: int, path: Path) -> int:
    """A camt.053 (v8) file of one statement with ``n`` booked entries, as the bank simulator renders them."""
    rng = random.Random(53)
    entries = []
    for k in range(n):
        entries.append(
            StatementEntry(
                amount=Decimal(rng.randint(1_00, 50_000_00)) / 100,
                currency="EUR",
                credit=False,
                booked_on=DAY,
                reference=f"INV-{k:010d}",
                partner_reference=f"BNK{k:012d}",
                instruction_id=f"ins_{k:012d}",
                counterparty_name=f"Creditor {k}",
            )
        )
    outflow = sum((e.amount for e in entries), Decimal(0))
    statement = Statement(
        statement_id="BENCH-CAMT-1",
        account_iban="DE89370400440532013000",
        currency="EUR",
        day=DAY,
        created_at=NOW,
        opening_balance=outflow,
        closing_balance=Decimal(0),
        entries=tuple(entries),
    )
    body = build_camt053([statement], message_id="BENCH-CAMT", created_at=NOW)
    path.write_bytes(body)
    return len(body)


def camt_import(n: int) -> dict[str, Any]:
    """Write an ``n``-entry camt.053, import it in a child process (its own peak RSS), report entries/s."""
    folder = Path(tempfile.mkdtemp(prefix="bench-camt-"))
    path = folder / "camt053.xml"
    size = write_camt053(n, path)
    # bench/statements.py's import child: a fresh SQLite file, CPU seconds, the child's own peak RSS
    child = subprocess.run(
        [sys.executable, str(Path(__file__).with_name("statements.py")), "--child", "import", str(path)],
        capture_output=True,
        text=True,
        check=True,
    )
    doc = json.loads(child.stdout.strip().splitlines()[-1])
    doc["entries"] = n
    doc["file_mb"] = round(size / 2**20, 1)
    doc["entries_per_second"] = round(n / doc["seconds"]) if doc["seconds"] else None
    doc["entries_per_cpu_second"] = round(n / doc["cpu_seconds"]) if doc["cpu_seconds"] else None
    path.unlink()
    return doc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    parser.add_argument("--no-sqlite", action="store_true", help="only the in-memory decision")
    parser.add_argument("--no-ledger", action="store_true", help="run_recon with the ledger off")
    parser.add_argument("--camt-entries", type=int, default=0, help="also import a camt.053 of this many entries")
    parser.add_argument(
        "--serial-read", action="store_true", help="run_recon reads its lines in-process (no line reader worker)"
    )
    args = parser.parse_args()
    if args.serial_read:
        matching.PARALLEL_MIN_LINES = sys.maxsize
    clock = time.perf_counter()
    data = generate(args.lines)
    log(f"generated {len(data.lines)} lines, {len(data.payments)} payments in {time.perf_counter() - clock:.1f} s")
    rules = load_recon_rules()

    clock, cpu = time.perf_counter(), time.process_time()
    baseline_found = dict_join(data)
    baseline, baseline_cpu = time.perf_counter() - clock, time.process_time() - cpu
    clock, cpu = time.perf_counter(), time.process_time()
    decisions = decide(data.lines, data.payments, rules, elsewhere(data))
    decide_seconds, decide_cpu = time.perf_counter() - clock, time.process_time() - cpu
    quality = score(data, decisions)
    log(f"decide {decide_seconds:.1f} s ({decide_cpu:.1f} s CPU), dict-join {baseline:.2f} s: {quality}")
    result: dict[str, Any] = {
        "lines": len(data.lines),
        "payments": len(data.payments) + len(data.rejected),
        "decide_seconds": round(decide_seconds, 3),
        "decide_cpu_seconds": round(decide_cpu, 3),
        "dict_join_seconds": round(baseline, 3),
        "dict_join_cpu_seconds": round(baseline_cpu, 3),
        "load_average": round(os.getloadavg()[0], 1),
        "decide_vs_dict_join": round(decide_seconds / baseline, 2) if baseline else None,
        "dict_join_found": baseline_found,
        **quality,
    }
    if not args.no_sqlite:
        result["sqlite"] = asyncio.run(sqlite_run(data, ledger=not args.no_ledger))
    if args.camt_entries:
        result["camt053_import"] = camt_import(args.camt_entries)
    result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    result["targets"] = {
        "matching_under_10s": (result["sqlite"]["matching_seconds"] if "sqlite" in result else decide_seconds) < 10,
        "precision_1": quality["confirmed_wrong"] == 0,
        "recall_99": quality["recall"] >= 0.99,
    }
    rows = [
        ("decide (in memory, every rule)", f"{decide_seconds:.2f} s", f"{result['decide_vs_dict_join']} x dict-join"),
        ("decide, CPU time", f"{decide_cpu:.2f} s", f"load average {result['load_average']}"),
        ("dict-join baseline", f"{baseline:.2f} s", f"{baseline_found} lines found"),
        ("confirmed / suggested", f"{quality['confirmed']} / {quality['suggested']}", ""),
        ("precision of confirmed", str(quality["precision_confirmed"]), f"{quality['confirmed_wrong']} wrong"),
        ("matchable lines matched", f"{quality['recall'] * 100:.2f} %", f"of {quality['matchable_lines']}"),
    ]
    if "sqlite" in result:
        s = result["sqlite"]
        rows += [
            ("sqlite: load (excluded)", f"{s['load_seconds']:.2f} s", ""),
            (
                "sqlite: read + decide",
                f"{s['matching_seconds']:.2f} s",
                f"{s['matching_cpu_seconds']:.2f} s CPU; target < 10 s",
            ),
            (
                "sqlite: read",
                f"{s['parts_seconds']['read']:.2f} s",
                f"{s['parts_cpu_seconds']['read']:.2f} s CPU"
                + (
                    f" + the line reader's {s['parts_cpu_seconds']['read_worker']:.2f} s CPU"
                    if s["lines_read_by_worker"]
                    else "; lines read in-process"
                ),
            ),
            (
                "sqlite: decide",
                f"{s['parts_seconds']['decide']:.2f} s",
                f"{s['parts_cpu_seconds']['decide']:.2f} s CPU",
            ),
            (
                "sqlite: write matches + ledger",
                f"{s['parts_seconds'].get('write', 0):.2f} s",
                f"{s['parts_cpu_seconds'].get('write', 0):.2f} s CPU; ledger {s['ledger']}",
            ),
            (
                "sqlite: breaks sync",
                f"{s['parts_seconds'].get('breaks', 0):.2f} s",
                f"{s['parts_cpu_seconds'].get('breaks', 0):.2f} s CPU; {s['report']}",
            ),
        ]
    if "camt053_import" in result:
        c = result["camt053_import"]
        rows.append(
            (
                f"camt.053 import, {c['entries']} entries ({c['file_mb']} MB)",
                f"{c['entries_per_second']} /s",
                f"peak RSS {c['peak_rss_mb']} MB (target >= 50,000/s, < 300 MB)",
            )
        )
    width = max(len(r[0]) for r in rows)
    for name, value, note in rows:
        print(f"{name:<{width}}  {value:>16}  {note}")
    if args.json:
        print(json.dumps(result))


if __name__ == "__main__":
    main()
