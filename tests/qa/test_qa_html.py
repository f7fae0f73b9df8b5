"""``gateway qa run --html FILE``: a self-contained page whose chart and tables match the run."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import lxml.html
import pytest

from gateway.cli import main
from gateway.devtools.qa import InstructionResult
from gateway.devtools.qa_report import fault_marks, render_html

SVG = "{http://www.w3.org/2000/svg}"


def _svg_items(page: lxml.html.HtmlElement, cls: str) -> list[lxml.html.HtmlElement]:
    return [e for e in page.iter() if isinstance(e.tag, str) and (e.get("class") or "") == cls]


def test_html_report_of_a_run_holds_its_numbers(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    report = tmp_path / "qa.html"

    code = main(["qa", "run", "flaky-network", "--count", "8", "--seed", "3", "--json", "--html", str(report)])

    summary = json.loads(capsys.readouterr().out)
    assert code == 0
    text = report.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>")
    # readable without the tool: nothing to fetch, nothing to run
    assert "<script" not in text and "http://" not in text.replace("http://www.w3.org/2000/svg", "")
    page = lxml.html.fromstring(text)
    assert page.findtext(".//title").startswith("gateway qa run flaky-network (iso20022_bank, seed 3)")
    svg = page.findall(".//svg")
    assert len(svg) == 1 and svg[0].get("xmlns") == "http://www.w3.org/2000/svg"
    bars = _svg_items(page, "payment")
    assert len(bars) == summary["sent"] == 8
    assert sorted(b.get("data-status") for b in bars) == sorted(
        s for s, n in summary["by_status"].items() for _ in range(n)
    )
    marks = _svg_items(page, "fault")
    injected = summary["faults_injected"]
    assert sum(injected.values()) >= 1 and len(marks) == sum(injected.values())
    assert {m.get("data-kind") for m in marks} == set(injected)
    verdict = page.find_class("verdict")[0].text_content()
    assert verdict.startswith(f"PASS: {summary['passed']} of 8 reached their predicted status")
    assert f"{summary['double_submissions']} double submissions" in verdict
    faults = {r[0].text_content(): int(r[1].text_content()) for r in page.find_class("faults")[0].findall("tr")[1:]}
    assert faults == injected
    payments = page.find_class("payments")[0].findall("tr")[1:]
    assert len(payments) == 8 and all(r[2].text_content() == r[3].text_content() for r in payments)


def test_run_content_is_escaped_and_misses_are_outlined() -> None:
    started = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    results = [
        InstructionResult("ins_1", "<script>alert(1)</script>", "settled", "settled", 1, 1, 0.5),
        InstructionResult("ins_2", "QA-2", "settled", "failed", 1, 3, 2.0, why='last event: failed "&" <b>'),
    ]
    journal = [
        {"seq": 1, "at": (started + timedelta(seconds=1)).isoformat(), "kind": "submit", "faults": ["reset"],
         "instruction_id": "ins_2"},
        {"seq": 2, "at": (started + timedelta(seconds=1.5)).isoformat(), "kind": "file", "faults": ["hang"]},
    ]  # fmt: skip
    summary = {
        "scenario": "x<y",
        "partner": "iso20022_bank",
        "seed": 1,
        "sent": 2,
        "passed": 1,
        "failed": 1,
        "double_submissions": 0,
        "expected": {"settled": 2},
        "by_status": {"failed": 1, "settled": 1},
        "faults_injected": {"hang": 1, "reset": 1},
        "seconds": 2.5,
        "ok": False,
    }

    text = render_html(summary, results, fault_marks(journal, started, {}))

    assert "<script>" not in text and "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "<b>" not in text and "x&lt;y" in text
    page = lxml.html.fromstring(text)
    bars = {b.findtext("title").split(" ")[0]: b for b in _svg_items(page, "payment")}
    assert bars["QA-2"].get("stroke-width") == "2" and bars["<script>alert(1)</script>"].get("stroke-width") == "0"
    marks = _svg_items(page, "fault")
    assert [m.findtext("title").split(" at ")[0] for m in marks] == ["reset", "hang"]
    assert page.find_class("verdict")[0].text_content().startswith("FAIL: 1 of 2")


def test_html_to_a_missing_folder_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["qa", "run", "happy", "--count", "1", "--html", str(tmp_path / "nope" / "r.html")])

    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "--html" in err and "existing folder" in err
