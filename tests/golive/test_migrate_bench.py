"""bench/migrate.py runs small and reports the import against its raw executemany baseline."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support import load_bench


def test_the_benchmark_imports_every_row_and_reports_a_ratio(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        load_bench("migrate").main(["--rows", "3000", "--creditors", "40", "--cache-dir", str(tmp_path), "--json"]) == 0
    )
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["import"]["rows"] == result["import"]["imported"] == 3000
    assert result["import"]["rejected"] == result["import"]["duplicates"] == 0
    assert result["baseline"]["rows"] == 3000 and result["ratio"] > 0
    assert set(result["targets"]) == {"import_rows_per_s>=20000"}
