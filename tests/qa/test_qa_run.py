"""``gateway qa run``: every shipped scenario passes; JUnit XML; exit codes."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from gateway.cli import main
from gateway.config import DEFAULT_CONFIG, load_settings
from gateway.devtools.qa import InstructionResult, run_qa, shipped_scenarios, write_junit
from gateway_simulators.core import scenario_names

#: each scenario's run takes 1-5 s (20 payments; the ACH clock jumps from cut-off to cut-off): the whole
#: matrix stays around a minute, and one run that hangs is cut off instead of holding CI
SCENARIO_TIMEOUT = 60


@pytest.mark.qa_scenarios
@pytest.mark.timeout(SCENARIO_TIMEOUT)
@pytest.mark.parametrize("scenario", scenario_names())
async def test_every_shipped_scenario_passes(scenario: str, tmp_path: Path) -> None:
    junit = tmp_path / "qa.xml"
    partner = next(s.partner for s in shipped_scenarios() if s.name == scenario)

    summary = await run_qa(load_settings(env={}), scenario, count=20, partner=partner, junit=junit, quiet=True)

    assert summary["ok"], summary["failures"]
    assert summary["partner"] == partner is not None  # every shipped scenario names the partner it is for
    assert summary["passed"] == 20 and summary["double_submissions"] == 0
    assert summary["by_status"] == summary["expected"]
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite is not None
    assert (suite.get("name"), suite.get("tests"), suite.get("failures")) == (f"qa.{scenario}", "20", "0")
    assert len(suite.findall("testcase")) == 20
    if scenario == "ach-file-chaos":  # acknowledgements lost (reset, hang) and malformed, each file booked once
        assert {"reset", "hang", "truncated_body", "wrong_content_type"} <= set(summary["faults_injected"])
    if scenario == "ach-return-chaos":  # return files late, duplicated, forged, replayed; status queries faulted
        assert {"callback_late", "callback_duplicate", "callback_wrong_key", "callback_replay"} <= set(
            summary["faults_injected"]
        )
        assert summary["expected"].get("returned", 0) >= 5
    if scenario.endswith(("flaky-network", "callback-chaos", "webhook-chaos", "file-chaos", "return-chaos")):
        # the chaos really happened (an ACH run uploads a file or two, so fewer exchanges are hit)
        assert len(summary["faults_injected"]) >= (2 if scenario.startswith("ach-") else 5)
    if scenario.endswith(("rejections", "returns")):
        assert summary["expected"].get("rejected", 0) + summary["expected"].get("returned", 0) >= 10
    if scenario == "instant-unknown-outcomes":
        assert summary["faults_injected"].get("reset", 0) >= 1  # answers really were lost


def test_every_built_in_partner_has_its_shipped_scenarios() -> None:
    by_partner: dict[str, set[str]] = {}
    for s in shipped_scenarios():
        by_partner.setdefault(s.partner or "any", set()).add(s.name)

    assert {"happy", "flaky-network", "callback-chaos", "rejections", "slow-partner"} <= by_partner["iso20022_bank"]
    assert {"card-happy", "card-flaky-network", "card-webhook-chaos", "card-rejections", "card-slow-partner"} <= (
        by_partner["card_acquirer"]
    )
    assert {
        "instant-happy",
        "instant-flaky-network",
        "instant-rejections",
        "instant-slow-partner",
        "instant-unknown-outcomes",
    } <= by_partner["instant_rtp"]
    assert {
        "ach-happy",
        "ach-flaky-network",
        "ach-file-chaos",
        "ach-return-chaos",
        "ach-returns",
        "ach-late-returns",
        "ach-changes",
        "ach-slow-partner",
    } <= (by_partner["ach_nacha"])


def test_cli_prints_json_and_exits_0_on_pass(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["qa", "run", "happy", "--count", "3", "--seed", "4", "--json"])

    summary = json.loads(capsys.readouterr().out)
    assert code == 0
    assert (summary["ok"], summary["seed"], summary["sent"]) == (True, 4, 3)


def test_cli_exits_1_when_a_prediction_is_missed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # every submission fails for good: the gateway marks the payments failed, the scenario predicts settled
    scenario = tmp_path / "broken.yaml"
    scenario.write_text(
        "name: broken\npartner: iso20022_bank\n"
        "faults:\n  - {kind: http_error, status: 503, retry_after: 0, times: 100}\n"
    )
    for shipped in DEFAULT_CONFIG.parent.glob("*.yaml"):  # the files gateway.yaml names, beside it
        (tmp_path / shipped.name).write_text(shipped.read_text())
    settings = tmp_path / "gateway.yaml"
    settings.write_text(DEFAULT_CONFIG.read_text().replace("max_attempts: 8", "max_attempts: 2"))

    code = main(["--config", str(settings), "qa", "run", str(scenario), "--count", "2", "--json"])

    summary = json.loads(capsys.readouterr().out)
    assert code == 1
    assert summary["failed"] == 2 and summary["by_status"] == {"failed": 2}
    for failure in summary["failures"]:
        assert failure["why"].startswith("last event: failed by dispatcher RETRIES_EXHAUSTED")
        assert "; simulator: #" in failure["why"] and "HTTP 503 refused faults=http_error" in failure["why"]


def test_cli_says_why_without_verbose(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # the bank refuses every submission for good: each FAIL line is followed by the reason
    scenario = tmp_path / "down.yaml"
    scenario.write_text(
        "name: down\npartner: iso20022_bank\nfaults:\n  - {kind: http_error, status: 503, retry_after: 0, times: 100}\n"
    )

    code = main(["qa", "run", str(scenario), "--count", "1"])

    out = " ".join(capsys.readouterr().out.split())  # the terminal may wrap the line
    assert code == 1
    assert "expected settled, reached failed last event: failed by dispatcher RETRIES_EXHAUSTED" in out
    assert "simulator: #" in out and "POST /pain001 HTTP 503 refused faults=http_error" in out


def test_cli_bad_scenario_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    scenario = tmp_path / "bad.yaml"
    scenario.write_text("name: bad\npartner: iso20022_bank\nfaults:\n  - kind: latency\n")

    code = main(["qa", "run", str(scenario), "--count", "1"])

    assert code == 2
    assert f"{scenario}:4: /faults/0/delay" in capsys.readouterr().err


def test_junit_counts_failures(tmp_path: Path) -> None:
    results = [
        InstructionResult("ins_1", "QA-1", "settled", "settled", 1, 1, 0.5),
        InstructionResult("ins_2", "QA-2", "settled", "failed", 1, 8, 2.0),
        InstructionResult("ins_3", "QA-3", "rejected", "rejected", 2, 2, 0.7),
    ]

    write_junit(tmp_path / "r.xml", "demo", results, 3.2)

    suite = ET.parse(tmp_path / "r.xml").getroot().find("testsuite")
    assert suite is not None and (suite.get("tests"), suite.get("failures")) == ("3", "2")
    failures = {c.get("name"): c.find("failure") for c in suite.findall("testcase")}
    assert failures["QA-1 (ins_1)"] is None
    assert failures["QA-2 (ins_2)"].get("message") == "expected settled, reached failed"  # type: ignore[union-attr]
    assert failures["QA-3 (ins_3)"].get("message") == "booked 2 times at the partner"  # type: ignore[union-attr]
