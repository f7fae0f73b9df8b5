"""GL export: numbered batches, every entry exactly once, late entries in the next batch, identical re-runs."""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.config import read_yaml_file
from gateway.domain.status import Status
from gateway.errors import ConfigError
from gateway.finance import books
from gateway.finance.export import DEFAULT_MAPPING_FILE, GLMapping, export_batch
from gateway.ledger.errors import LedgerError, PeriodError
from gateway.ledger.rules import load_rules
from gateway.store import repo
from tests.support import NOW, insert_instruction

S = Status
DEC_2, JAN_2 = datetime(2026, 12, 2, tzinfo=UTC), datetime(2027, 1, 2, tzinfo=UTC)


def _mapping() -> GLMapping:
    return GLMapping(read_yaml_file(DEFAULT_MAPPING_FILE, "GL mapping"), str(DEFAULT_MAPPING_FILE), load_rules())


async def _settle(engine: AsyncEngine, business_unit: str, now: datetime) -> str:
    instruction_id = await insert_instruction(engine, business_unit)
    for status in (S.ACCEPTED, S.ROUTED, S.SUBMITTED, S.SETTLED):
        async with engine.begin() as conn:
            await repo.record_status(conn, instruction_id, status, source="test", now=now, adapter="bank")
    return instruction_id


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


async def test_batches_export_every_entry_once_and_late_entries_in_the_next(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    await _settle(engine, "erp-europe", NOW)
    await _settle(engine, "erp-us", NOW)
    mapping = _mapping()
    kw = {"scope": "*", "fmt": "csv", "mapping": mapping, "out_dir": tmp_path, "now": DEC_2}
    with pytest.raises(PeriodError, match="period 2026-11 is not closed; close it first"):
        await export_batch(engine, "2026-11", **kw)  # type: ignore[arg-type]
    async with engine.begin() as conn:
        await books.close_period(conn, "2026-11", DEC_2, "test")
    first = await export_batch(engine, "2026-11", **kw)  # type: ignore[arg-type]
    assert (first.batch, first.entries, first.rerun) == (1, 6, False)
    rows = _rows(first.path)
    assert {r["gl_account"] for r in rows} == {"1410", "1411", "2010", "2011", "1090", "1020"}
    assert {r["cost_centre"] for r in rows if r["ledger_account"] == "bu:erp-europe:receivable"} == {"CC-EU-100"}
    assert sum(int(r["line"]) > 0 for r in rows) == 12
    late = await _settle(engine, "erp-europe", NOW)  # news of 26 November, after November closed
    again = await export_batch(engine, "2026-11", **kw)  # type: ignore[arg-type]
    assert again.rerun and again.identical and again.sha256 == first.sha256 and again.path.read_bytes()
    async with engine.begin() as conn:
        await books.close_period(conn, "2026-12", JAN_2, "test")
    second = await export_batch(engine, "2026-12", **kw)  # type: ignore[arg-type]
    late_rows = _rows(second.path)
    assert second.batch == 2 and {r["instruction_id"] for r in late_rows} == {late}
    assert {(r["booked_date"], r["original_date"]) for r in late_rows} == {("2026-12-01", "2026-11-26")}
    exported = [r["entry_id"] for r in rows + late_rows if r["line"] == "1"]
    assert len(exported) == len(set(exported)) == 9


async def test_a_business_unit_has_its_own_batches_and_json_is_identical_on_rerun(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    await _settle(engine, "erp-europe", NOW)
    await _settle(engine, "erp-us", NOW)
    async with engine.begin() as conn:
        await books.close_period(conn, "2026-11", DEC_2, "test")
    kw = {"scope": "erp-us", "fmt": "json", "mapping": _mapping(), "out_dir": tmp_path, "now": DEC_2}
    result = await export_batch(engine, "2026-11", **kw)  # type: ignore[arg-type]
    doc = json.loads(result.path.read_text())
    assert doc["batch"] == 1 and {r["business_unit"] for r in doc["rows"]} == {"erp-us"}
    before = result.path.read_bytes()
    rerun = await export_batch(engine, "2026-11", **kw)  # type: ignore[arg-type]
    assert rerun.identical and rerun.path.read_bytes() == before


def test_a_mapping_without_an_account_of_the_chart_is_refused() -> None:
    doc = {"version": 1, "default": {"bu:{business_unit}:receivable": {"gl": "1"}}}
    mapping = GLMapping(doc, "map.yaml", load_rules())
    with pytest.raises(LedgerError, match=r"map\.yaml: no GL account for 'suspense'"):
        mapping.lookup("suspense", None)
    with pytest.raises(ConfigError, match="'nope' is not an account pattern"):
        GLMapping({"version": 1, "default": {"nope": {"gl": "1"}}}, "map.yaml", load_rules())
