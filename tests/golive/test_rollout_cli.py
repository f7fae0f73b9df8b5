"""``gateway rollout status|set``: modes per business unit and partner, audited, exit 2 on bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.golive.test_golive_check import run

BANK = "iso20022_bank"


@pytest.fixture
def config(tmp_path: Path) -> Path:
    file = tmp_path / "gateway.yaml"
    file.write_text(f"database:\n  url: sqlite+aiosqlite:///{tmp_path / 'g.db'}\nsimulators: {{}}\n")
    assert run(file, "db", "upgrade").returncode == 0
    assert run(file, "keys", "create", "--business-unit", "erp").returncode == 0
    return file


def test_set_and_status_and_the_audit_trail(config: Path) -> None:
    empty = run(config, "rollout", "status", "--json")
    assert empty.returncode == 0 and json.loads(empty.stdout) == {"default": "live", "modes": []}
    steps = [("canary", "25"), ("live", None), ("off", None)]
    for mode, percent in steps:
        extra = ["--percent", percent] if percent else []
        done = run(config, "rollout", "set", "erp", BANK, mode, *extra)
        assert done.returncode == 0, done.stderr
    assert run(config, "rollout", "set", "erp", "ach_nacha", "shadow").returncode == 0
    modes = json.loads(run(config, "rollout", "status", "--json").stdout)["modes"]
    assert [(m["business_unit"], m["partner"], m["mode"], m["percent"]) for m in modes] == [
        ("erp", "ach_nacha", "shadow", None),
        ("erp", BANK, "off", None),
    ]
    assert all(m["updated_by"].startswith("cli:") for m in modes)
    shown = run(config, "rollout", "status")
    assert shown.returncode == 0 and "iso20022_bank" in shown.stdout and "shadow" in shown.stdout


#: bad command lines and the one line each must print (exit 2, nothing written)
BAD = [
    (["erp", BANK, "sideways"], "gateway: mode must be one of off, shadow, canary, live, not 'sideways'"),
    (["erp", BANK, "canary"], "gateway: canary needs --percent between 1 and 99"),
    (["erp", BANK, "canary", "--percent", "100"], "gateway: canary needs --percent between 1 and 99"),
    (["erp", BANK, "canary", "--percent", "ten"], "gateway: --percent must be a whole number, not 'ten'"),
    (["erp", BANK, "live", "--percent", "5"], "gateway: --percent applies only to canary, not to live"),
    (["nobody", BANK, "off"], "gateway: no business unit named 'nobody'"),
]


def test_bad_input_exits_2_with_one_line_and_writes_nothing(config: Path) -> None:
    for args, message in BAD:
        done = run(config, "rollout", "set", *args)
        assert (done.returncode, done.stderr.strip()) == (2, message)
    unknown = run(config, "rollout", "set", "erp", "carrier_pigeon", "off")
    assert unknown.returncode == 2
    assert unknown.stderr.strip().startswith("gateway: no adapter named 'carrier_pigeon' (installed: ")
    assert json.loads(run(config, "rollout", "status", "--json").stdout)["modes"] == []
