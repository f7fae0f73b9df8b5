"""``gateway qa scenario check FILE``: every problem with its line, exit 2; a good file, exit 0."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from gateway.cli import main
from gateway.config import load_settings
from gateway.devtools.qa import check_scenario, shipped_scenarios
from gateway_simulators.core import scenario_names
from gateway_simulators.core.scenario import SCENARIO_DIR

BAD = """\
name: Bad Name
partner: iso20022_bank
rules:
  - {outcome: explode}
faults:
  - kind: latency
  - {kind: reset, probabilty: 0.1}
"""


def test_every_error_is_listed_with_its_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    file = tmp_path / "bad.yaml"
    file.write_text(BAD)

    code = main(["qa", "scenario", "check", str(file)])

    lines = capsys.readouterr().err.splitlines()
    assert code == 2
    assert sorted(lines) == sorted(
        [
            f"{file}:1: /name: 'Bad Name' does not match '^[a-z0-9][a-z0-9-]*$'",
            f"{file}:4: /rules/0/outcome: 'explode' is not one of ['accept', 'settle', 'reject', 'return']",
            f"{file}:6: /faults/0/delay: 'delay' is a required property",
            f"{file}:7: /faults/1/probabilty: unknown field 'probabilty'; allowed: after, amount_delta, code, copies, "
            "currency, days, delay, exchange, kind, probability, retry_after, seconds, status, steps, times",
        ]
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("name: x\n  bad: [\n", ":2: not valid YAML"),
        ("name: x\npartner: nobody\n", ":2: /partner: no simulator named 'nobody' is installed"),
        ("name: x\npartner: ach_nacha\nrules:\n  - {outcome: return}\n", ":4: /rules/0/reason_code: 'reason_code' is"),
        (
            "name: x\nrules:\n  - {match: {amount: {min: '9', max: '1'}}, outcome: settle}\n",
            ":3: /rules/0/match/amount: min 9 is above max 1",
        ),
    ],
)
def test_each_kind_of_problem_names_its_line(tmp_path: Path, text: str, expected: str) -> None:
    file = tmp_path / "s.yaml"
    file.write_text(text)

    check = check_scenario(load_settings(env={}), str(file))

    assert not check.ok
    assert len(check.problems) == 1 and check.problems[0].startswith(f"{file}{expected}"), check.problems


@pytest.mark.parametrize("name", scenario_names())
def test_every_shipped_scenario_checks_clean(name: str) -> None:
    check = check_scenario(load_settings(env={}), str(SCENARIO_DIR / f"{name}.yaml"))

    assert check.ok, check.problems
    assert check.name == name


def test_json_output_and_exit_0_for_a_good_file(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["qa", "scenario", "check", str(SCENARIO_DIR / "card-happy.yaml"), "--json"])

    answer = json.loads(capsys.readouterr().out)
    assert code == 0
    assert answer | {"file": None} == {
        "file": None,
        "ok": True,
        "name": "card-happy",
        "partner": "card_acquirer",
        "problems": [],
    }


def test_an_unreadable_file_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["qa", "scenario", "check", str(tmp_path / "absent.yaml")])

    assert code == 2
    assert capsys.readouterr().err.strip() == f"{tmp_path / 'absent.yaml'}: cannot read: No such file or directory"


def test_docs_list_every_shipped_scenario_under_its_partner() -> None:
    text = (Path(__file__).resolve().parents[2] / "docs" / "qa.md").read_text(encoding="utf-8")
    section = text.split("## Shipped scenarios", 1)[1].split("\n## ", 1)[0]
    listed: set[tuple[str, str]] = set()
    partner = ""
    for row in re.findall(r"^\| *(`?[\w-]*`?) *\| *`([\w-]+)` *\|", section, re.M):
        partner = row[0].strip("`") or partner  # an empty cell: the partner of the row above
        listed.add((partner, row[1]))

    shipped = {(s.partner or "any", s.name) for s in shipped_scenarios()}
    assert listed == shipped, f"docs/qa.md lists {sorted(listed - shipped)}, misses {sorted(shipped - listed)}"
