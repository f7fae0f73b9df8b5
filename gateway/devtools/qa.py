"""``gateway qa run``: a gateway in-process against a partner simulator playing a scenario.

Like ``gateway demo`` (throw-away SQLite, port-0 sockets, simulators found
through the plugin hooks), but the simulator plays a QA scenario and the run is
judged: every instruction must reach the final status the scenario predicts
(asked from the simulator's ``POST /_sim/predict``), and the partner must have
booked each payment at most once (its journal: one created payment per
instruction id and per reference; idempotent retries are fine).

The core never imports a simulator: it talks to it only through its admin API.
"""

from __future__ import annotations

import asyncio
import random
import time
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Any

import aiohttp
import yaml
from aiohttp import web
from rich.progress import Progress

from gateway.config import Settings
from gateway.contracts.registry import contracts
from gateway.contracts.versions import default_version, parse_as_latest
from gateway.devtools.demo import SAMPLE_IBANS, DemoInstruction, us_account
from gateway.devtools.harness import fetch_statuses, local_gateway, post_all
from gateway.devtools.qa_report import fault_marks, write_html
from gateway.domain.clock import OffsetClock
from gateway.domain.instruction import parse_instruction, payment_order
from gateway.domain.money import minor_units
from gateway.errors import ConfigError
from gateway.plugins.manager import Plugins
from gateway.runtime import Runtime

__all__ = [
    "PARTNER_SHAPES",
    "InstructionResult",
    "Scenario",
    "ScenarioCheck",
    "check_routing",
    "check_scenario",
    "event_line",
    "explain",
    "journal_line",
    "qa_instructions",
    "run_qa",
    "shipped_scenarios",
    "write_junit",
]

#: statuses nothing moves a payment out of (settled may still be returned)
_FINAL = frozenset({"rejected", "failed", "returned", "cancelled"})
_DEFAULT_POPULATION: tuple[Mapping[str, Any], ...] = (
    {"creditor_name": "Nordic Parts AB", "amount": {"min": "10.00", "max": "5000.00"}},
)


@dataclass(frozen=True)
class InstructionResult:
    instruction_id: str
    reference: str
    expected: str
    reached: str
    payments_at_partner: int
    submissions: int
    seconds: float
    #: why it ended other than predicted: its last event and the simulator's last journal line about it
    why: str | None = None

    @property
    def ok(self) -> bool:
        return self.reached == self.expected and self.payments_at_partner <= 1

    @property
    def problem(self) -> str | None:
        if self.payments_at_partner > 1:
            return f"booked {self.payments_at_partner} times at the partner"
        if self.reached != self.expected:
            return f"expected {self.expected}, reached {self.reached}"
        return None


def _amount(spec: Any, currency: str, rng: random.Random) -> str:
    exponent = minor_units(currency)
    if isinstance(spec, Mapping):
        scale = 10**exponent
        low, high = (int(Decimal(str(spec[k])) * scale) for k in ("min", "max"))
        value = Decimal(rng.randint(min(low, high), max(low, high))) / scale
    else:
        value = Decimal(str(spec if spec is not None else "100"))
    return f"{value:.{exponent}f}"


#: the payment each built-in partner carries, as config/routing.yaml routes it there (others: SEPA)
PARTNER_SHAPES: Mapping[str, str] = {
    "iso20022_bank": "sepa",
    "card_acquirer": "wallet",
    "ach_nacha": "ach",
    "instant_rtp": "instant",
}
#: per shape: (default currency, default type)
_SHAPE_DEFAULTS: Mapping[str, tuple[str, str]] = {
    "sepa": ("EUR", "credit_transfer"),
    "wallet": ("EUR", "payout"),
    "ach": ("USD", "credit_transfer"),
    "instant": ("USD", "credit_transfer"),
}


def qa_instructions(
    population: Sequence[Mapping[str, Any]], count: int, seed: int, partner: str = "iso20022_bank"
) -> list[dict[str, Any]]:
    """``count`` instruction bodies from the scenario's population (templates in turn, ``weight`` times each).

    The accounts, currency and urgency fit ``partner`` (``PARTNER_SHAPES``): SEPA credit
    transfers between IBANs for the bank, wallet payouts for the card acquirer, USD between
    US accounts (valid ABA routing numbers) for the ACH file and, marked instant, for the
    instant rail. A template's ``currency`` and ``type`` win over the shape's defaults.
    """
    shape = PARTNER_SHAPES.get(partner, "sepa")
    default_currency, default_type = _SHAPE_DEFAULTS[shape]
    templates = [t for t in (population or _DEFAULT_POPULATION) for _ in range(int(t.get("weight", 1)))]
    rng = random.Random(f"qa:{seed}")
    bodies = []
    for i in range(count):
        template = templates[i % len(templates)]
        currency = str(template.get("currency", default_currency))
        debtor, creditor = rng.sample(SAMPLE_IBANS, 2)
        body: dict[str, Any] = {
            "reference": f"QA{seed}-{i:05d}",
            "type": template.get("type", default_type),
            "amount": _amount(template.get("amount"), currency, rng),
            "currency": currency,
            "debtor": {
                "name": "HE Appliances Europe GmbH",
                "account": {"iban": debtor},
                "agent": {"bic": "COBADEFFXXX"},
            },
            "creditor": {"name": template["creditor_name"], "account": {"iban": creditor}},
            "remittance_information": f"QA run {seed} item {i}",
        }
        if shape == "wallet":
            body["creditor"]["account"] = {"wallet": f"wal_{rng.getrandbits(48):012x}"}
        elif shape in ("ach", "instant"):
            body["urgency"] = "instant" if shape == "instant" else "standard"
            body["debtor"] = {"name": "HE Appliances America Inc", "account": us_account(rng)}
            body["creditor"]["account"] = us_account(rng)
        bodies.append(body)
    return bodies


@dataclass(frozen=True)
class Scenario:
    """A scenario shipped with the simulators: ``gateway qa run NAME``."""

    name: str
    partner: str | None
    description: str


def _scenario_folder() -> Path:
    # data of the simulators package (read, never imported)
    return Path(str(resources.files("gateway_simulators") / "scenarios"))


def shipped_scenarios() -> list[Scenario]:
    """Every shipped scenario, by name."""
    found = []
    for path in sorted(_scenario_folder().glob("*.yaml")):
        document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        found.append(
            Scenario(str(document.get("name") or path.stem), document.get("partner"), document.get("description", ""))
        )
    return found


def _scenario_partner(scenario: str) -> str | None:
    """The ``partner`` the scenario names, if it names one (and can be read)."""
    path = Path(scenario)
    if not path.suffix and not path.exists() and "/" not in scenario:
        path = _scenario_folder() / f"{scenario}.yaml"  # a shipped scenario by name
    if path.is_file():
        try:
            document = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError):
            document = None  # the simulator reports what is wrong with it, with the line
        if isinstance(document, Mapping) and isinstance(document.get("partner"), str):
            return str(document["partner"])
    return None


def _partner_of(scenario: str, settings: Settings, asked: str | None = None) -> str:
    """The partner under test: ``asked`` (``--partner``), else the scenario's, else the only configured simulator.

    A scenario written for one partner is refused for another (its rules and codes are that partner's).
    """
    named = _scenario_partner(scenario)
    if asked and named and asked != named:
        others = [s.name for s in shipped_scenarios() if s.partner == asked]
        hint = f"; shipped for {asked}: {', '.join(others)}" if others else ""
        raise ConfigError(f"scenario {scenario} is for partner {named}, not {asked}{hint}")
    if asked or named:
        return str(asked or named)
    configured = list(settings.section("simulators"))
    if len(configured) != 1:
        raise ConfigError(f"say which partner the scenario is for (--partner); configured: {', '.join(configured)}")
    return configured[0]


def _plays_scenarios(app: web.Application) -> bool:
    """Whether a simulator app has the simulator core's scenario admin API (``GET /_sim/scenario``)."""
    return any(r.canonical == "/_sim/scenario" for r in app.router.resources())


@dataclass(frozen=True)
class ScenarioCheck:
    """What ``gateway qa scenario check FILE`` found: the scenario's name and partner, or every problem."""

    file: str
    name: str | None
    partner: str | None
    #: one ``FILE:LINE: /pointer: message`` per problem, the best match first
    problems: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.problems


def _key_line(text: str, key: str) -> int | None:
    """1-based line of a top-level ``key`` in YAML ``text`` (None when absent or unreadable)."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return None
    if isinstance(root, yaml.MappingNode):
        for k, _ in root.value:
            if isinstance(k, yaml.ScalarNode) and k.value == key:
                return int(k.start_mark.line) + 1
    return None


def check_scenario(base: Settings, file: str) -> ScenarioCheck:
    """Check a scenario file the way ``qa run`` will load it: by its partner's simulator, every error with its line."""
    path = Path(file)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        return ScenarioCheck(file, None, None, (f"{file}: cannot read: {exc.strerror}",))
    except UnicodeDecodeError:
        return ScenarioCheck(file, None, None, (f"{file}: not UTF-8 text",))
    partner = _scenario_partner(str(path))
    factories = Plugins().simulator_factories()
    configured = base.section("simulators")
    if partner is not None and partner not in factories:
        line = _key_line(text, "partner") or "?"
        installed = ", ".join(factories) or "none"
        return ScenarioCheck(
            file,
            None,
            partner,
            (f"{file}:{line}: /partner: no simulator named {partner!r} is installed ({installed})",),
        )
    # the rules are the simulator core's, so any simulator that plays scenarios checks one the same way
    judge = partner or next((n for n in configured if n in factories), None) or next(iter(factories), None)
    if judge is None:
        return ScenarioCheck(file, None, partner, (f"{file}: no simulator is installed to check it with",))
    settings = {k: v for k, v in configured.get(judge, {}).items() if k not in ("host", "port")}
    try:
        app = factories[judge](settings | {"scenario": str(path)})
    except ConfigError as exc:
        problems = tuple(f"{file}:{e.line or '?'}: {e.pointer or '/'}: {e.message}" for e in exc.errors)
        return ScenarioCheck(file, None, partner, problems or (str(exc),))
    if not _plays_scenarios(app):  # built only to load the scenario; never started
        line = _key_line(text, "partner") or "?"
        return ScenarioCheck(
            file, None, partner, (f"{file}:{line}: /partner: the {judge} simulator plays no scenarios",)
        )
    document = yaml.safe_load(text)
    return ScenarioCheck(file, str(document["name"]), partner)


def check_routing(runtime: Runtime, bodies: Sequence[Mapping[str, Any]], partner: str, scenario: str) -> None:
    """``ConfigError`` (one line) unless the gateway's routing sends every body to ``partner``."""
    registry = contracts()
    now = datetime.now(UTC)
    version = default_version(registry, "instruction", now)  # what intake reads a body without a version as
    today = now.date()
    for body in bodies:
        errors = registry.errors("instruction", body, version)
        if errors:
            raise ConfigError(
                f"scenario {scenario}: the population makes instructions the contract refuses "
                f"({errors[0].pointer or '/'}: {errors[0].message})"
            )
        data = parse_as_latest(registry, "instruction", version, dict(body), parse_instruction)
        decision = runtime.router.decide(
            payment_order("ins_qa_route", "qa", data), runtime.adapters, channel=data.channel, today=today, probe=False
        )
        if decision.adapter != partner:
            raise ConfigError(
                f"scenario {scenario} is for {partner}, but the routing disagrees for {body['reference']}: "
                f"{decision.reason}"
            )


def write_junit(path: Path, scenario: str, results: Sequence[InstructionResult], seconds: float) -> None:
    """JUnit XML: one testcase per instruction, a ``failure`` for each that missed its prediction."""
    failures = [r for r in results if not r.ok]
    suites = ET.Element("testsuites", tests=str(len(results)), failures=str(len(failures)), errors="0")
    suite = ET.SubElement(
        suites,
        "testsuite",
        name=f"qa.{scenario}",
        tests=str(len(results)),
        failures=str(len(failures)),
        errors="0",
        skipped="0",
        time=f"{seconds:.3f}",
    )
    for r in results:
        case = ET.SubElement(
            suite,
            "testcase",
            classname=f"qa.{scenario}",
            name=f"{r.reference} ({r.instruction_id})",
            time=f"{r.seconds:.3f}",
        )
        if r.problem:
            failure = ET.SubElement(case, "failure", message=r.problem, type="QaMismatch")
            failure.text = (
                f"expected={r.expected} reached={r.reached} "
                f"payments_at_partner={r.payments_at_partner} submissions={r.submissions}"
                + (f"\n{r.why}" if r.why else "")
            )
    ET.ElementTree(suites).write(path, encoding="utf-8", xml_declaration=True)


async def _json(session: aiohttp.ClientSession, method: str, url: str, **kw: Any) -> Any:
    async with session.request(method, url, **kw) as resp:
        if resp.status >= 400:
            raise ConfigError(f"simulator refused {method} {url}: HTTP {resp.status} {await resp.text()}")
        return await resp.json()


def journal_line(entry: Mapping[str, Any]) -> str:
    """One simulator journal entry as a line: sequence, direction, exchange, answer, partner status, faults."""
    parts = [f"#{entry['seq']}", entry["direction"], entry["kind"]]
    if entry.get("method") or entry.get("path"):
        parts.append(f"{entry.get('method', '')} {entry.get('path', '')}".strip())
    if entry.get("http_status") is not None:
        parts.append(f"HTTP {entry['http_status']}")
    parts += [str(entry[k]) for k in ("outcome", "partner_status") if entry.get(k)]
    if entry.get("faults"):
        parts.append(f"faults={','.join(entry['faults'])}")
    if entry.get("detail"):
        parts.append(f"({entry['detail']})")
    return " ".join(parts)


def event_line(event: Mapping[str, Any]) -> str:
    """One gateway event as a line: status, source, reason code and reason."""
    line = f"{event['status']} by {event.get('source') or '?'}"
    if event.get("reason_code"):
        line += f" {event['reason_code']}"
    if event.get("reason"):
        line += f": {event['reason']}"
    return line


async def _events(session: aiohttp.ClientSession, url: str, key: str, instruction_id: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        params = {"limit": "200", **({"cursor": cursor} if cursor else {})}
        page = await _json(
            session,
            "GET",
            f"{url}/v1/instructions/{instruction_id}/events",
            params=params,
            headers={"Authorization": f"Bearer {key}"},
        )
        events += page["items"]
        cursor = page.get("next_cursor")
        if not cursor:
            return events


def explain(events: Sequence[Mapping[str, Any]], journal: Sequence[Mapping[str, Any]], reference: str) -> str:
    """Why a payment ended where it did: its last applied event, and the simulator's journal line about it
    (the last exchange a fault struck, else the last exchange)."""
    applied = [e for e in events if e.get("applied")]
    last = applied[-1] if applied else (events[-1] if events else None)
    mine = [
        e
        for e in journal
        if e.get("instruction_id") == (last or {}).get("instruction_id") or e.get("end_to_end_id") == reference
    ]
    # the partner's telling word: its last exchange with an injected fault, else its last exchange
    telling = next((e for e in reversed(mine) if e.get("faults")), mine[-1] if mine else None)
    said = f"last event: {event_line(last)}" if last else "no event recorded"
    heard = f"simulator: {journal_line(telling)}" if telling else "simulator: never heard of it"
    return f"{said}; {heard}"


async def run_qa(
    base: Settings,
    scenario: str,
    *,
    count: int,
    seed: int | None = None,
    partner: str | None = None,
    junit: Path | None = None,
    html: Path | None = None,
    quiet: bool = False,
) -> dict[str, Any]:
    """Run ``scenario`` with ``count`` instructions; the summary's ``ok`` is the verdict.

    ``junit`` and ``html`` name report files to write (JUnit XML; a page with a timeline chart).
    """
    started = time.perf_counter()
    name = _partner_of(scenario, base, partner)
    factories = Plugins().simulator_factories()
    if name not in factories:
        raise ConfigError(f"no simulator named {name!r} is installed ({', '.join(factories) or 'none'})")
    if name not in base.section("partners"):
        raise ConfigError(f"partners.{name} is not configured, so the gateway cannot route to it")
    sim_cfg = {k: v for k, v in base.section("simulators").get(name, {}).items() if k not in ("host", "port")}
    sim_cfg["scenario"] = scenario
    if seed is not None:
        sim_cfg["seed"] = seed
    # one clock for the gateway and a file partner, so cut-offs come by jumping, not waiting (as in the demo)
    clock = OffsetClock()
    file_partner = PARTNER_SHAPES.get(name) == "ach"
    extra: dict[str, Any] = {f"partners__{name}__tick_seconds": 0.1} if file_partner else {}
    if file_partner:
        sim_cfg["clock"] = clock
    sim_app = factories[name](sim_cfg)  # a bad scenario fails here, naming line and field
    if not _plays_scenarios(sim_app):
        raise ConfigError(f"the {name} simulator plays no scenarios (it has no /_sim/scenario)")

    async with (
        local_gateway(
            base,
            {name: sim_app},
            business_unit="qa",
            clock=clock,
            risk__file=None,  # QA proves the partner path; a scenario's bursts would trip velocity rules
            dispatch__idle_poll_seconds=0.05,
            dispatch__backoff_base_seconds=0.2,
            dispatch__backoff_max_seconds=2,
            dispatch__status_poll_interval_seconds=0.5,
            dispatch__status_poll_after_seconds=1,
            **{f"partners__{name}__timeout_seconds": 1.5},
            **extra,
        ) as local,
        aiohttp.ClientSession() as session,
    ):
        url, key, sim_url = local.url, local.key, local.simulator_urls[name]
        info = await _json(session, "GET", f"{sim_url}/_sim/scenario")
        used_seed = int(info["seed"])
        document = info.get("document") or {}
        bodies = qa_instructions(document.get("population") or (), count, used_seed, name)
        check_routing(local.runtime, bodies, name, str(info.get("name") or scenario))
        asks = [
            {k: b[k] for k in ("reference", "amount", "currency")} | {"creditor_name": b["creditor"]["name"]}
            for b in bodies
        ]
        predicted = await _json(session, "POST", f"{sim_url}/_sim/predict", json=asks)
        items = [DemoInstruction(b, p) for b, p in zip(bodies, predicted, strict=True)]
        posted_at = time.monotonic()
        posted_wall = datetime.now(UTC)
        reached_at: dict[str, float] = {}
        statuses: dict[str, str] = {}
        with Progress(disable=quiet, transient=True) as progress:
            sending = progress.add_task("sending", total=count)
            ids = await post_all(session, url, key, items, lambda: progress.advance(sending))
            waiting = progress.add_task("waiting for final statuses", total=len(ids))
            deadline = time.monotonic() + 30 + count * 0.2
            while time.monotonic() < deadline:
                statuses = await fetch_statuses(session, url, key)
                for i, item in ids.items():
                    s = statuses.get(i)
                    done = s == item.expected or s in _FINAL
                    if done and i not in reached_at:
                        reached_at[i] = time.monotonic() - posted_at
                progress.update(waiting, completed=len(reached_at))
                if len(reached_at) == len(ids):
                    break
                calendar = getattr(local.runtime.adapters.get(name), "calendar", None)
                if calendar is not None:  # a file partner: move time on to the next cut-off instead of waiting
                    clock.advance_to(calendar.next_cutoff(clock()))
                await asyncio.sleep(0.2)
        journal = (await _json(session, "GET", f"{sim_url}/_sim/journal"))["entries"]
        why = {
            i: explain(await _events(session, url, key, i), journal, item.body["reference"])
            for i, item in ids.items()
            if statuses.get(i) != item.expected
        }

    created_by_id: Counter[str] = Counter()
    created_by_ref: Counter[str] = Counter()
    submissions: Counter[str] = Counter()
    faults: Counter[str] = Counter()
    for entry in journal:
        faults.update(entry.get("faults") or ())
        if entry["kind"] != "submit":
            continue
        submissions[entry.get("instruction_id") or ""] += 1
        if entry["outcome"] == "created":
            created_by_id[entry["instruction_id"]] += 1
            created_by_ref[entry["end_to_end_id"]] += 1
    results = [
        InstructionResult(
            instruction_id=i,
            reference=item.body["reference"],
            expected=item.expected,
            reached=statuses.get(i, "missing"),
            payments_at_partner=max(created_by_id[i], created_by_ref[item.body["reference"]]),
            submissions=submissions[i],
            seconds=reached_at.get(i, time.monotonic() - posted_at),
            why=why.get(i),
        )
        for i, item in ids.items()
    ]
    results.sort(key=lambda r: r.reference)
    seconds = round(time.perf_counter() - started, 2)
    failed = [r for r in results if not r.ok]
    summary: dict[str, Any] = {
        "scenario": str(info.get("name") or scenario),
        "partner": name,
        "seed": used_seed,
        "sent": count,
        "passed": len(results) - len(failed),
        "failed": len(failed) + (count - len(results)),
        "double_submissions": sum(1 for r in results if r.payments_at_partner > 1),
        "expected": dict(sorted(Counter(r.expected for r in results).items())),
        "by_status": dict(sorted(Counter(r.reached for r in results).items())),
        "faults_injected": dict(sorted(faults.items())),
        "failures": [
            {"instruction_id": r.instruction_id, "reference": r.reference, "problem": r.problem, "why": r.why}
            for r in failed
        ],
        "seconds": seconds,
    }
    summary["ok"] = summary["failed"] == 0
    if junit is not None:
        write_junit(junit, summary["scenario"], results, seconds)
    if html is not None:
        references = {r.reference: r.instruction_id for r in results}
        write_html(html, summary, results, fault_marks(journal, posted_wall, references, journal_line))
    return summary
