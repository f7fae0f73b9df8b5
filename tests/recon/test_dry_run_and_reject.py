"""``recon run --dry-run`` writes nothing and foretells the real run; a rejected suggestion frees its line and
payments and is not suggested again until its data changes."""

from __future__ import annotations

import hashlib
import json
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.domain.statements import Statement, StatementLine
from gateway.errors import ConflictError
from gateway.recon.breaks import BREAK_STATES, list_breaks
from gateway.recon.rules import load_recon_rules
from gateway.recon.service import confirm_match, reject_match, run_recon
from gateway.store.statements import store_statements
from gateway.store.tables import instructions, metadata, recon_match_lines, recon_match_payments, recon_matches
from tests.support import (
    NOW,
    Database,
    LiveGateway,
    cli_config,
    insert_instruction,
    run_cli,
    start_gateway,
    stop_gateway,
)

RULES = load_recon_rules()
TODAY: date = NOW.date()


async def _payment(
    engine: AsyncEngine, reference: str, amount: str = "1250.00", partner_reference: str | None = None
) -> str:
    instruction_id = await insert_instruction(engine, reference=reference, amount=amount)
    async with engine.begin() as conn:
        await conn.execute(
            update(instructions)
            .where(instructions.c.id == instruction_id)
            .values(status="settled", adapter="bank", partner_reference=partner_reference, updated_at=NOW)
        )
    return instruction_id


def _line(amount_minor: int = 125000, **refs: str) -> StatementLine:
    return StatementLine(amount_minor=amount_minor, credit=False, currency="EUR", booked_on=TODAY, **refs)


async def _statement(engine: AsyncEngine, name: str, *lines: StatementLine) -> None:
    statement = Statement(
        source="bank",
        format="test",
        statement_id=name,
        currency="EUR",
        period_start=TODAY,
        period_end=TODAY + timedelta(days=3),
        lines=lines,
    )
    await store_statements(engine, [statement], digest=name.ljust(64, "0")[:64], now=NOW)


async def _snapshot(engine: AsyncEngine) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, in a stable order."""
    async with engine.connect() as conn:
        return {
            t.name: sorted((tuple(r) for r in (await conn.execute(select(t))).all()), key=repr)
            for t in metadata.sorted_tables
        }


async def _a_day_with_every_outcome(engine: AsyncEngine) -> dict[str, str]:
    ids = {
        "exact": await _payment(engine, "INV-1"),
        "batch_a": await _payment(engine, "INV-2", "100.00", partner_reference="BATCH-9"),
        "batch_b": await _payment(engine, "INV-3", "200.00", partner_reference="BATCH-9"),
        "fuzzy": await _payment(engine, "INV-4", "990.00"),
        "missing": await _payment(engine, "INV-5", "5.00"),
    }
    await _statement(
        engine,
        "S-1",
        _line(end_to_end_id="INV-1"),
        _line(30_100, partner_reference="BATCH-9"),  # 1:N less a fee of 1.00
        _line(99_000, counterparty_name="Nordic Parts AB"),  # suggested by amount, date and counterparty
        _line(777, end_to_end_id="NOBODY"),  # unexpected
    )
    return ids


async def test_a_dry_run_writes_nothing_and_foretells_the_real_run(engine: AsyncEngine, database: Database) -> None:
    await _a_day_with_every_outcome(engine)
    sqlite_file = Path(database.url.split("///", 1)[1]) if database.url.startswith("sqlite") else None
    before = await _snapshot(engine)
    file_before = hashlib.sha256(sqlite_file.read_bytes()).hexdigest() if sqlite_file else None

    dry = (await run_recon(engine, RULES, now=NOW, dry_run=True)).as_dict()

    assert await _snapshot(engine) == before  # every table, row for row
    if sqlite_file is not None:
        assert hashlib.sha256(sqlite_file.read_bytes()).hexdigest() == file_before  # and the file byte for byte
    real = (await run_recon(engine, RULES, now=NOW)).as_dict()
    breaks = await list_breaks(engine)
    async with engine.connect() as conn:
        stored = (await conn.execute(select(recon_matches.c.id, recon_matches.c.status, recon_matches.c.rule))).all()

    assert dry["dry_run"] is True and "dry_run" not in real
    assert {k: dry[k] for k in real} == real
    assert [(m["match"], m["status"], m["rule"]) for m in dry["matches"]] == [
        (f"m_{i}", status, rule) for i, status, rule in sorted(stored)
    ]
    assert sorted((b["kind"], b["subject"]) for b in dry["breaks_to_open"]) == sorted(
        (b["kind"], b["subject"]) for b in breaks
    )
    batch = next(m for m in dry["matches"] if m["rule"] == "batch")
    assert (batch["lines_amount"], batch["payments_amount"], batch["difference"]) == ("301.00", "300.00", "1.00")


async def test_a_rejected_suggestion_frees_its_line_and_payment_and_is_not_suggested_again(
    engine: AsyncEngine,
) -> None:
    fuzzy = await _payment(engine, "INV-4", "990.00")
    await _statement(engine, "S-1", _line(99_000, counterparty_name="Nordic Parts AB"))
    await run_recon(engine, RULES, now=NOW)
    (suggested,) = [b for b in await list_breaks(engine) if b["kind"] == "suggested_match"]

    done = await reject_match(engine, suggested["subject"], "not the same supplier invoice", by="ana", now=NOW)
    again = await run_recon(engine, RULES, now=NOW)
    async with engine.connect() as conn:
        links = (await conn.execute(select(recon_match_lines))).all()
        pays = (await conn.execute(select(recon_match_payments))).all()
        status = await conn.scalar(select(recon_matches.c.status).where(recon_matches.c.id == int(done["match"][2:])))
    by_state = {(b["kind"], b["state"]) for b in await list_breaks(engine, states=BREAK_STATES)}

    assert done["payments"] == [fuzzy] and status == "rejected"
    assert (links, pays) == ([], [])  # free again
    assert (again.confirmed, again.suggested) == (0, 0)  # the same pairing is not suggested again
    assert ("suggested_match", "resolved") in by_state
    assert ("unexpected_line", "open") in by_state  # the line is now an unexplained line for finance
    with pytest.raises(ConflictError, match="only a suggested match can be rejected"):
        await reject_match(engine, done["match"], "again", by="ana", now=NOW)
    with pytest.raises(ConflictError, match="already confirmed"):
        await confirm_match(engine, done["match"], by="ana", now=NOW)

    # the data changes (the bank's reference for the payment is learnt): a new pairing may be suggested
    async with engine.begin() as conn:
        await conn.execute(update(instructions).where(instructions.c.id == fuzzy).values(partner_reference="LATER"))
    changed = await run_recon(engine, RULES, now=NOW)
    assert changed.suggested == 1


async def test_a_confirmed_match_cannot_be_rejected(engine: AsyncEngine) -> None:
    await _payment(engine, "INV-1")
    await _statement(engine, "S-1", _line(end_to_end_id="INV-1"))
    await run_recon(engine, RULES, now=NOW)

    with pytest.raises(ConflictError, match="m_1 is confirmed"):
        await reject_match(engine, "m_1", "wrong", by="ana", now=NOW)


def test_cli_dry_run_and_reject(tmp_path: Path, partner_files: Path) -> None:
    config = cli_config(tmp_path)
    run_cli("recon", "import", str(partner_files / "nacha" / "return-WEB.ach"), config=config)
    before = hashlib.sha256((tmp_path / "cli.db").read_bytes()).hexdigest()

    dry = run_cli("recon", "run", "--dry-run", config=config)
    dry_json = json.loads(run_cli("recon", "run", "--dry-run", "--json", config=config).stdout)
    after = hashlib.sha256((tmp_path / "cli.db").read_bytes()).hexdigest()
    unknown = run_cli("recon", "reject", "m_99", "--reason", "x", config=config)

    assert dry.returncode == 0 and dry.stderr.startswith("dry run, nothing written:")
    assert "2 would open" in dry.stderr
    assert [b["kind"] for b in dry_json["breaks_to_open"]] == ["unexpected_line", "unexpected_line"]
    assert after == before  # the database file, byte for byte
    assert unknown.returncode == 2 and unknown.stderr.strip() == "gateway: no match m_99"


async def test_api_dry_run_and_reject(database: Database) -> None:
    gw: LiveGateway = await start_gateway(database, simulators=False, dispatch=False, poll=False, partners={})
    try:
        fuzzy = await _payment(gw.runtime.engine, "INV-4", "990.00")
        await _statement(gw.runtime.engine, "S-1", _line(99_000, counterparty_name="Nordic Parts AB"))
        finance = await gw.new_key("treasury", ("finance",))
        h = gw.headers(finance)
        async with gw.session.post(f"{gw.url}/v1/recon/run?dry_run=true", headers=h) as resp:
            dry = (resp.status, await resp.json())
        async with gw.session.post(f"{gw.url}/v1/recon/run?dry_run=maybe", headers=h) as resp:
            bad = resp.status
        async with gw.session.post(f"{gw.url}/v1/recon/run", headers=h) as resp:
            real = await resp.json()
        async with gw.session.post(f"{gw.url}/v1/recon/matches/m_1/reject", headers=h, json={}) as resp:
            no_reason = resp.status
        async with gw.session.post(f"{gw.url}/v1/recon/matches/m_1/reject", headers=h, json={"reason": "no"}) as resp:
            rejected = (resp.status, await resp.json())
    finally:
        await stop_gateway(gw)

    assert dry[0] == 200 and dry[1]["dry_run"] is True and dry[1]["matches"][0]["payments"] == [fuzzy]
    assert bad == 400 and real["suggested"] == 1 and no_reason == 422
    assert rejected == (
        200,
        {"match": "m_1", "status": "rejected", "lines": ["ln_1_1"], "payments": [fuzzy], "reason": "no"},
    )
