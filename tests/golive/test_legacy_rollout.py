"""The legacy hand-off, shadow mode and the comparison report, end to end (SQLite and PostgreSQL).

Real components: the gateway with its dispatcher, the instant_rtp simulator as the live partner,
a second instant_rtp simulator as the shadow sandbox (both on loopback ports), the ``legacy_file``
adapter writing to a tmp folder, and ``gateway rollout compare`` run as a subprocess.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from gateway.api.server import RunningApp, bind, start_app
from gateway.domain.clock import system_clock
from gateway.plugins.manager import Plugins
from gateway.store.rollout import RolloutMode, canary_takes, set_mode
from gateway.store.shadow import read_outcomes
from tests.golive.test_rollout import BU, post, usd
from tests.support import Database, LiveGateway, start_gateway, stop_gateway

GATEWAY = [sys.executable, "-m", "gateway.cli"]
RTP_SECRETS = {"request_secret": "sandbox-rtp-request-secret", "response_secret": "sandbox-rtp-response-secret"}


def routing(tmp_path: Path) -> str:
    file = tmp_path / "routing.yaml"
    file.write_text("rules:\n  - name: usd\n    match: {currencies: [USD]}\n    partners: [instant_rtp]\n")
    return str(file)


def legacy(tmp_path: Path) -> dict[str, Any]:
    return {"dir": str(tmp_path / "handoff"), "cutoff_seconds": 3600}


async def submitted(gw: LiveGateway, instruction_id: str) -> dict[str, Any]:
    return await gw.wait_for(instruction_id, lambda v: v["status"] in ("submitted", "settled", "rejected"))


def handoff_lines(folder: Path) -> dict[str, dict[str, Any]]:
    """Every line of every hand-off file, by instruction id (and no half-written file around)."""
    lines: dict[str, dict[str, Any]] = {}
    for file in sorted(folder.glob("handoff-*.jsonl")):
        for text in file.read_text().splitlines():
            line = json.loads(text)
            assert line["instruction_id"] not in lines, "a payment handed off twice"
            lines[line["instruction_id"]] = line
    assert not list(folder.glob(".*.tmp")), "a temporary file left behind"
    return lines


def write_feed(path: Path, rows: list[dict[str, str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        out = csv.DictWriter(f, fieldnames=["business_unit", "reference", "status", "status_at", "reason_code"])
        out.writeheader()
        out.writerows(rows)


def cli_config(tmp_path: Path, database: Database) -> Path:
    url = database.url if database.schema is None else f"{database.url}?schema={database.schema}"
    file = tmp_path / "cli.yaml"
    file.write_text(
        f"database:\n  url: {url}\npartners: {{}}\nsimulators: {{}}\n"
        "security:\n  encryption_keys: 't1:MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY='\n"
    )
    return file


def run(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [*GATEWAY, "--config", str(config), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, env={"PATH": "/usr/bin:/bin"})


async def test_canary_remainder_goes_to_the_legacy_folder_and_settles_from_the_status_feed(
    database: Database, tmp_path: Path
) -> None:
    gw = await start_gateway(
        database,
        routing__file=routing(tmp_path),
        rollout__handoff_adapter="legacy_file",
        partners__legacy_file=legacy(tmp_path),
    )
    try:
        await set_mode(gw.runtime.engine, BU, "instant_rtp", RolloutMode("canary", 50), "alice", system_clock())
        bodies = [{**usd(), "reference": f"CANARY-{i:03d}"} for i in range(10)]
        outside = {b["reference"] for b in bodies if not canary_takes(b["reference"], 50)}
        assert 0 < len(outside) < len(bodies)  # fixed references: both sides, every run
        ids = {b["reference"]: await post(gw, b) for b in bodies}
        views = {ref: await submitted(gw, i) for ref, i in ids.items()}
        for ref, view in views.items():
            if ref in outside:
                assert (view["status"], view["adapter"]) == ("submitted", "legacy_file"), view["events"]
                routed = next(e for e in view["events"] if e["status"] == "routed")
                assert "the rollout's hand-off to the old system" in routed["reason"]
                assert "instant_rtp: rollout canary 50% for erp-europe" in routed["reason"]
                assert view["events"][-1]["partner_status"] == "handed_off"
            else:
                assert (view["status"], view["adapter"]) == ("settled", "instant_rtp")

        adapter = gw.runtime.adapters["legacy_file"]
        folder = tmp_path / "handoff"
        assert handoff_lines(folder) == {}  # nothing leaves before the cut-off
        name = await adapter.run_cutoff()  # type: ignore[attr-defined]
        assert name is not None and name.startswith("handoff-")
        lines = handoff_lines(folder)
        assert {line["reference"] for line in lines.values()} == outside
        line = lines[ids[min(outside)]]
        assert (line["amount"], line["currency"], line["business_unit"]) == ("1250.00", "USD", BU)
        assert line["creditor"]["account"] == {"number": "000123456789", "routing": "021000021"}
        # a second submit of the same instruction and a second cut-off change nothing
        assert await adapter.run_cutoff() is None  # type: ignore[attr-defined]
        assert handoff_lines(folder) == lines

        settled, refused = sorted(outside)[0], sorted(outside)[1]
        write_feed(
            folder / "status" / "feed-1.csv",
            [
                {"business_unit": BU, "reference": settled, "status": "SETTLED", "status_at": "2026-12-06T10:00:00Z"},
                {"business_unit": BU, "reference": refused, "status": "rejected", "reason_code": "AC04"},
                {"business_unit": BU, "reference": "SOMETHING-ELSE", "status": "pending"},
            ],
        )
        scheduler = gw.runtime.scheduler
        assert scheduler is not None
        for ref in outside:
            await scheduler.poll([ids[ref]])
        assert (await gw.get_instruction(ids[settled]))["status"] == "settled"
        rejected = await gw.get_instruction(ids[refused])
        assert rejected["status"] == "rejected" and rejected["events"][-1]["reason_code"] == "AC04"
        others = [await gw.get_instruction(ids[r]) for r in outside - {settled, refused}]
        assert {v["status"] for v in others} == {"submitted"}  # the feed does not name them yet
    finally:
        await stop_gateway(gw)


async def start_sandbox() -> RunningApp:
    factory = Plugins().simulator_factories()["instant_rtp"]
    settings = {"request_secret": RTP_SECRETS["request_secret"], "callback_secret": RTP_SECRETS["response_secret"]}
    return await start_app(factory(settings), bind("127.0.0.1", 0))


def submits(sim: RunningApp) -> list[str]:
    """The instruction ids a simulator took a submit for (the simulator core's journal)."""
    app = sim.runner.app
    for key in app:
        journal = getattr(app[key], "journal", None)
        if callable(getattr(journal, "select", None)):
            return [e.instruction_id for e in journal.select({"kind": "submit", "outcome": "created"})]
    raise AssertionError("the simulator has no journal")


async def test_shadow_pays_through_legacy_rehearses_with_the_sandbox_and_compare_reports(
    database: Database, tmp_path: Path
) -> None:
    sandbox = await start_sandbox()
    sandbox_url = f"http://127.0.0.1:{sandbox.port}"
    gw = await start_gateway(
        database,
        routing__file=routing(tmp_path),
        rollout__handoff_adapter="legacy_file",
        rollout__shadow_sandboxes={"instant_rtp": {"base_url": sandbox_url, **RTP_SECRETS}},
        partners__legacy_file=legacy(tmp_path),
    )
    try:
        await set_mode(gw.runtime.engine, BU, "instant_rtp", RolloutMode("shadow"), "alice", system_clock())
        good = await post(gw, {**usd(), "reference": "SHADOW-OK"})
        bad_body = usd()
        bad_body["creditor"]["name"] = "REJECT-AC03"
        bad = await post(gw, {**bad_body, "reference": "SHADOW-RJ"})
        third = await post(gw, {**usd(), "reference": "SHADOW-3"})
        for instruction_id in (good, bad, third):
            view = await submitted(gw, instruction_id)
            assert (view["status"], view["adapter"]) == ("submitted", "legacy_file"), view["events"]
        async with gw.runtime.engine.connect() as conn:
            outcomes = {o.reference: o for o in await read_outcomes(conn, BU, "instant_rtp")}
        assert set(outcomes) == {"SHADOW-OK", "SHADOW-RJ", "SHADOW-3"}
        assert (outcomes["SHADOW-OK"].outcome, outcomes["SHADOW-OK"].expected_status) == ("sandbox_settled", "settled")
        assert (
            outcomes["SHADOW-OK"].message == "payment-request" and len(outcomes["SHADOW-OK"].message_sha256 or "") == 64
        )
        rj = outcomes["SHADOW-RJ"]
        assert (rj.outcome, rj.expected_status, rj.reason_code) == ("sandbox_rejected", "rejected", "AC03")
        # the sandbox saw every shadow payment; the live partner none
        assert sorted(submits(sandbox)) == sorted([good, bad, third])
        assert submits(gw.simulators["instant_rtp"]) == []

        feed = tmp_path / "legacy-status.csv"
        write_feed(
            feed,
            [
                {"business_unit": BU, "reference": "SHADOW-OK", "status": "settled"},
                {"business_unit": BU, "reference": "SHADOW-RJ", "status": "settled"},  # the old system paid it
                {"business_unit": BU, "reference": "SHADOW-3", "status": "in progress"},
            ],
        )
        config = cli_config(tmp_path, database)
        report = tmp_path / "compare.csv"
        done = run(config, "rollout", "compare", "--business-unit", BU, "--legacy-feed", str(feed), "--json",
                   "--csv", str(report))  # fmt: skip
        assert done.returncode == 1, done.stderr  # a disagreement
        result = json.loads(done.stdout)
        assert result["counts"] == {
            "agree": 1,
            "disagree": 1,
            "legacy_pending": 1,
            "no_legacy_status": 0,
            "inconclusive": 0,
        }
        [disagreement] = result["disagreements"]
        assert (disagreement["reference"], disagreement["expected_status"], disagreement["legacy_status"]) == (
            "SHADOW-RJ",
            "rejected",
            "settled",
        )
        with report.open() as f:
            rows = {r["reference"]: r for r in csv.DictReader(f)}
        assert {r: rows[r]["verdict"] for r in rows} == {
            "SHADOW-OK": "agree",
            "SHADOW-RJ": "disagree",
            "SHADOW-3": "legacy_pending",
        }
        shown = run(config, "rollout", "compare", "--business-unit", BU, "--legacy-feed", str(feed))
        assert shown.returncode == 1 and "disagreements" in shown.stdout and "SHADOW-RJ" in shown.stdout
        missing = run(config, "rollout", "compare", "--business-unit", "nobody", "--legacy-feed", str(feed))
        assert (missing.returncode, missing.stderr.strip()) == (2, "gateway: no business unit named 'nobody'")
        (tmp_path / "bad.csv").write_text("ref,state\nA,settled\n")
        bad_feed = run(config, "rollout", "compare", "--business-unit", BU, "--legacy-feed", str(tmp_path / "bad.csv"))
        assert bad_feed.returncode == 2 and "no column 'reference'" in bad_feed.stderr
    finally:
        await stop_gateway(gw)
        await sandbox.stop()


async def test_shadow_without_a_sandbox_only_renders_and_validates(database: Database, tmp_path: Path) -> None:
    gw = await start_gateway(
        database,
        routing__file=routing(tmp_path),
        rollout__handoff_adapter="legacy_file",
        partners__legacy_file=legacy(tmp_path),
    )
    try:
        await set_mode(gw.runtime.engine, BU, "instant_rtp", RolloutMode("shadow"), "alice", system_clock())
        view = await submitted(gw, await post(gw, {**usd(), "reference": "RENDER-ONLY"}))
        assert view["adapter"] == "legacy_file"
        async with gw.runtime.engine.connect() as conn:
            [outcome] = await read_outcomes(conn, BU)
        assert (outcome.partner, outcome.outcome, outcome.expected_status) == ("instant_rtp", "rendered", "submitted")
        assert submits(gw.simulators["instant_rtp"]) == []  # never sent to the live partner
    finally:
        await stop_gateway(gw)


async def test_off_goes_to_legacy_only_when_a_handoff_is_configured(database: Database, tmp_path: Path) -> None:
    gw = await start_gateway(
        database,
        routing__file=routing(tmp_path),
        rollout__handoff_adapter="legacy_file",
        partners__legacy_file=legacy(tmp_path),
    )
    try:
        await set_mode(gw.runtime.engine, BU, "instant_rtp", RolloutMode("off"), "alice", system_clock())
        view = await submitted(gw, await post(gw, {**usd(), "reference": "OFF-1"}))
        assert (view["status"], view["adapter"]) == ("submitted", "legacy_file")
        async with gw.runtime.engine.connect() as conn:
            assert await read_outcomes(conn, BU) == []  # off is not shadow: nothing rehearsed
    finally:
        await stop_gateway(gw)
