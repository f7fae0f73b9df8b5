"""``gateway qa``: a partner simulator plays a scenario against an in-process gateway (``gateway.devtools.qa``)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from gateway.cli.common import Subparsers, command, console, group, load, positive, table
from gateway.devtools.qa import check_scenario, run_qa, shipped_scenarios
from gateway.errors import ConfigError

__all__ = ["print_summary", "register"]


def print_summary(summary: Mapping[str, Any]) -> None:
    """The run's verdict: statuses predicted and reached, the faults injected, the first failures."""
    out = console()
    out.print(f"gateway qa run {summary['scenario']} (seed {summary['seed']}): {summary['seconds']} s")
    statuses = table("final statuses", "final status", "predicted", "reached", numbers=("predicted", "reached"))
    for status in sorted(set(summary["expected"]) | set(summary["by_status"])):
        statuses.add_row(status, str(summary["expected"].get(status, 0)), str(summary["by_status"].get(status, 0)))
    out.print(statuses)
    if summary["faults_injected"]:
        faults = table("faults injected", "fault", "times", names=("fault",), numbers=("times",))
        for kind, n in summary["faults_injected"].items():
            faults.add_row(kind, str(n))
        out.print(faults)
    for failure in summary["failures"][:20]:
        out.print(f"[red]FAIL[/] {failure['reference']} {failure['instruction_id']}: {failure['problem']}")
        if failure.get("why"):
            out.print(f"     {failure['why']}", markup=False, highlight=False)
    doubles = f"{summary['double_submissions']} double submissions"
    if summary["ok"]:
        out.print(f"[green]PASS: {summary['passed']}/{summary['sent']} reached their predicted status, {doubles}[/]")
    else:
        out.print(f"[red]FAIL: {summary['failed']} of {summary['sent']} failed, {doubles}[/]")


def _report_path(option: str, value: str | None) -> Path | None:
    """A report file to write, checked before the run (its folder must exist)."""
    if not value:
        return None
    path = Path(value)
    if path.is_dir() or not path.parent.is_dir():
        raise ConfigError(f"{option} {value}: name a file in an existing folder")
    return path


async def run_command(args: argparse.Namespace) -> int:
    """``gateway qa run SCENARIO``: exit 0 when every instruction passed, 1 otherwise."""
    junit, html = _report_path("--junit", args.junit), _report_path("--html", args.html)
    summary = await run_qa(
        load(args),
        args.scenario,
        count=args.count,
        seed=args.seed,
        partner=args.partner,
        junit=junit,
        html=html,
        quiet=args.json,
    )
    if args.json:
        print(json.dumps(summary))
    else:
        print_summary(summary)
    return 0 if summary["ok"] else 1


async def scenarios_list_command(args: argparse.Namespace) -> int:
    """``gateway qa scenarios list``: the shipped scenarios, by the name ``gateway qa run`` takes."""
    scenarios = shipped_scenarios()
    if args.partner:
        scenarios = [s for s in scenarios if s.partner in (args.partner, None)]
    if args.json:
        print(json.dumps([{"name": s.name, "partner": s.partner, "description": s.description} for s in scenarios]))
        return 0
    out = table("Shipped scenarios (gateway qa run NAME)", "name", "partner", "description", names=("name", "partner"))
    for s in scenarios:
        out.add_row(s.name, s.partner or "any", s.description)
    console().print(out)
    return 0


async def scenario_check_command(args: argparse.Namespace) -> int:
    """``gateway qa scenario check FILE``: exit 0 if the scenario loads, 2 with every problem (line-numbered)."""
    check = check_scenario(load(args), args.file)
    if args.json:
        print(json.dumps({"file": check.file, "ok": check.ok, "name": check.name, "partner": check.partner,
                          "problems": list(check.problems)}))  # fmt: skip
    elif check.ok:
        console().print(f"{check.file}: scenario {check.name} for {check.partner or 'any partner'} is valid")
    else:
        for problem in check.problems:
            print(problem, file=sys.stderr)
    return 0 if check.ok else 2


def register(subparsers: Subparsers) -> None:
    qa = group(subparsers, "qa", help="QA runs against partner simulators")
    p = command(qa, "run", run_command, help="run a scenario against an in-process gateway; exit 1 unless all pass")
    p.add_argument(
        "scenario", help="scenario YAML file, or the name of a shipped one (see `gateway qa scenarios list`)"
    )
    p.add_argument("--count", type=positive, default=50, help="instructions to send (default 50)")
    p.add_argument("--seed", type=int, help="seed for every random choice (default: the scenario's)")
    p.add_argument("--partner", help="simulator to run (default: the scenario's partner)")
    p.add_argument("--junit", help="write a JUnit XML report (one testcase per instruction) to this file")
    p.add_argument("--html", help="write an HTML report (timeline chart of payments and faults) to this file")
    p.add_argument("--json", action="store_true", help="print one JSON summary object")
    scenarios = group(qa, "scenarios", help="the shipped scenarios")
    p = command(scenarios, "list", scenarios_list_command, help="the shipped scenarios and the partner each is for")
    p.add_argument("--partner", help="only the scenarios for this partner (and those for any)")
    p.add_argument("--json", action="store_true", help="print one JSON list")
    scenario = group(qa, "scenario", help="one scenario file")
    p = command(scenario, "check", scenario_check_command, help="check a scenario file; every error with its line")
    p.add_argument("file", help="scenario YAML file")
    p.add_argument("--json", action="store_true", help="print one JSON object")
