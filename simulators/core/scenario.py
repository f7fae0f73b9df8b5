"""Scenarios: YAML files that tell a partner simulator what to do with each payment.

A scenario is checked against its own JSON Schema (``scenario.schema.json``
beside this module); a bad file is a ``ScenarioError`` naming the file, the line
and the field (the JSON pointer is mapped back to a line with the YAML node
marks). Rules are tried in order, the first match decides the payment's
outcome; ``predict`` is the same decision as a pure function, so a QA run knows
the final status every payment must reach.

Every random choice is seeded: a rule's ``probability`` is drawn from
``Random(f"{seed}:{reference}:rule:{index}")``, so the same seed and the same
payments give the same decisions, run after run.
"""

from __future__ import annotations

import copy
import json
import math
import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match

from gateway.errors import ConfigError, FieldError

__all__ = [
    "FAULT_KINDS",
    "SCENARIO_DIR",
    "Decision",
    "Delay",
    "Fault",
    "PaymentFields",
    "Rule",
    "Scenario",
    "ScenarioError",
    "StatementBreak",
    "load_scenario",
    "parse_scenario",
    "scenario_names",
    "shipped_for",
]

#: the scenarios shipped with the package (``gateway simulate NAME --scenario happy``)
SCENARIO_DIR = Path(str(resources.files("gateway_simulators") / "scenarios"))

Outcome = Literal["accept", "settle", "reject", "return"]
Step = Literal["in_process", "settled", "rejected", "returned"]

#: the gateway status a payment ends in, by scenario outcome
FINAL_STATUS: Mapping[str, str] = {
    "accept": "submitted",
    "settle": "settled",
    "reject": "rejected",
    "return": "returned",
}

CALLBACK_FAULTS = frozenset(
    {
        "callback_duplicate",
        "callback_out_of_order",
        "callback_late",
        "callback_missing",
        "callback_replay",
        "callback_early",
        "callback_wrong_key",
    }
)
TRANSPORT_FAULTS = frozenset({"latency", "hang", "reset", "http_error"})
PAYLOAD_FAULTS = frozenset({"truncated_body", "wrong_content_type", "wrong_amount", "wrong_currency", "unknown_status"})
#: every fault kind, by layer (transport, payload, callback): what ``GET /_sim/scenarios`` offers to inject
FAULT_KINDS = (
    *sorted(TRANSPORT_FAULTS),
    *sorted(PAYLOAD_FAULTS),
    *sorted(CALLBACK_FAULTS),
)


class ScenarioError(ConfigError):
    """A scenario file is invalid; ``line`` and ``pointer`` say where."""

    default_message = "invalid scenario"

    def __init__(
        self,
        message: str | None = None,
        *,
        errors: list[FieldError] | None = None,
        line: int | None = None,
        pointer: str | None = None,
    ) -> None:
        super().__init__(message, errors=errors)
        self.line = line
        self.pointer = pointer


@cache
def _validator() -> Draft202012Validator:
    schema = json.loads((Path(__file__).parent / "scenario.schema.json").read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


# -- values -------------------------------------------------------------------------


@dataclass(frozen=True)
class Delay:
    """A duration: fixed, or drawn from a distribution (capped at ``cap`` seconds)."""

    distribution: Literal["fixed", "uniform", "normal", "lognormal"] = "fixed"
    a: float = 0.0
    b: float = 0.0
    cap: float = 30.0

    @classmethod
    def parse(cls, data: Any, default: Delay | None = None) -> Delay:
        if data is None:
            return default or cls()
        if isinstance(data, int | float):
            return cls("fixed", float(data))
        dist = data["distribution"]
        cap = float(data.get("max", 30.0))
        params = {
            "fixed": ("seconds", "seconds"),
            "uniform": ("low", "high"),
            "normal": ("mean", "stddev"),
            "lognormal": ("mu", "sigma"),
        }[dist]
        return cls(dist, float(data[params[0]]), float(data[params[1]]), cap)

    def sample(self, rng: random.Random) -> float:
        if self.distribution == "fixed":
            value = self.a
        elif self.distribution == "uniform":
            value = rng.uniform(min(self.a, self.b), max(self.a, self.b))
        elif self.distribution == "normal":
            value = rng.gauss(self.a, self.b)
        else:
            value = rng.lognormvariate(self.a, self.b)
        return max(0.0, min(self.cap, value if math.isfinite(value) else self.cap))


@dataclass(frozen=True)
class Fault:
    """One fault: what, where, how often (see docs/qa.md for every kind)."""

    kind: str
    probability: float = 1.0
    times: int | None = None
    on: str = "submit"
    after: bool = False
    delay: Delay = Delay()
    seconds: float = 30.0
    status: int = 503
    retry_after: int | None = None
    copies: int = 2
    days: float = 3.0
    steps: frozenset[str] | None = None
    code: str = "ZZZZ"
    amount_delta: Decimal = Decimal("1.00")
    currency: str | None = None

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> Fault:
        kind = data["kind"]
        default_times = None if kind in ("latency",) else 1
        return cls(
            kind=kind,
            probability=float(data.get("probability", 1.0)),
            times=data.get("times", default_times),
            on=data.get("exchange", "submit"),
            after=bool(data.get("after", False)),
            delay=Delay.parse(data.get("delay")),
            seconds=float(data.get("seconds", 30.0)),
            status=int(data.get("status", 503)),
            retry_after=data.get("retry_after"),
            copies=int(data.get("copies", 2)),
            days=float(data.get("days", 3.0)),
            steps=frozenset(data["steps"]) if "steps" in data else None,
            code=data.get("code", "ZZZZ"),
            amount_delta=Decimal(str(data.get("amount_delta", "1.00"))),
            currency=data.get("currency"),
        )

    def applies_to(self, exchange: str) -> bool:
        """Whether this fault can strike ``exchange`` (``submit``, ``status`` or ``callback``)."""
        if self.kind in CALLBACK_FAULTS:
            return exchange == "callback"
        return exchange != "callback" and self.on in (exchange, "any")


@dataclass(frozen=True)
class PaymentFields:
    """What rules match on: the payment as the partner sees it."""

    reference: str
    amount: Decimal
    currency: str
    creditor_name: str = ""
    key: str = ""


@dataclass(frozen=True)
class Decision:
    """What the partner does with one payment."""

    outcome: Outcome = "settle"
    at: Literal["submit", "callback"] = "callback"
    reason_code: str | None = None
    rule: str = "default"
    faults: tuple[Fault, ...] = ()
    delays: Mapping[str, Delay] = field(default_factory=dict)

    @property
    def final_status(self) -> str:
        """The gateway status this outcome ends in."""
        return FINAL_STATUS[self.outcome]


@dataclass(frozen=True)
class Rule:
    name: str
    index: int
    outcome: Outcome
    at: Literal["submit", "callback"] = "callback"
    reason_code: str | None = None
    amount_min: Decimal | None = None
    amount_max: Decimal | None = None
    currency: str | None = None
    creditor_name: re.Pattern[str] | None = None
    reference: re.Pattern[str] | None = None
    probability: float | None = None
    delays: Mapping[str, Delay] = field(default_factory=dict)
    faults: tuple[Fault, ...] = ()

    def matches(self, payment: PaymentFields, seed: int) -> bool:
        if self.amount_min is not None and payment.amount < self.amount_min:
            return False
        if self.amount_max is not None and payment.amount > self.amount_max:
            return False
        if self.currency and payment.currency != self.currency:
            return False
        if self.creditor_name and not self.creditor_name.search(payment.creditor_name):
            return False
        if self.reference and not self.reference.search(payment.reference):
            return False
        if self.probability is not None:
            draw = random.Random(f"{seed}:{payment.reference or payment.key}:rule:{self.index}").random()
            if draw >= self.probability:
                return False
        return True

    def decision(self) -> Decision:
        return Decision(self.outcome, self.at, self.reason_code, self.name, self.faults, self.delays)


@dataclass(frozen=True)
class StatementBreak:
    kind: Literal["missing_entry", "wrong_amount", "unknown_entry", "duplicate_entry"]
    probability: float = 1.0
    reference: re.Pattern[str] | None = None
    amount_delta: Decimal = Decimal("0.01")
    count: int = 1


@dataclass(frozen=True)
class Scenario:
    """A parsed, validated scenario."""

    name: str
    description: str = ""
    partner: str | None = None
    seed: int | None = None
    delays: Mapping[str, Delay] = field(default_factory=dict)
    rules: tuple[Rule, ...] = ()
    faults: tuple[Fault, ...] = ()
    opening_balance: Decimal = Decimal("1000000.00")
    breaks: tuple[StatementBreak, ...] = ()
    population: tuple[Mapping[str, Any], ...] = ()
    source: str = "<scenario>"
    document: Mapping[str, Any] = field(default_factory=dict)

    def decide(self, payment: PaymentFields, seed: int) -> Decision | None:
        """The first matching rule's decision, or ``None`` when no rule matches."""
        for rule in self.rules:
            if rule.matches(payment, seed):
                return rule.decision()
        return None

    def predict(self, payment: PaymentFields, seed: int) -> str:
        """The final gateway status ``payment`` must reach under this scenario (pure)."""
        decision = self.decide(payment, seed)
        return (decision or Decision()).final_status


# -- loading ----------------------------------------------------------------------


def scenario_names() -> list[str]:
    """Names of the scenarios shipped with the package."""
    return sorted(p.stem for p in SCENARIO_DIR.glob("*.yaml"))


@cache
def _shipped_documents() -> tuple[tuple[str, Mapping[str, Any]], ...]:
    """Every shipped scenario's name and document, read once (package data: they do not change at run time)."""
    return tuple(
        (name, yaml.safe_load((SCENARIO_DIR / f"{name}.yaml").read_text(encoding="utf-8")) or {})
        for name in scenario_names()
    )


def shipped_for(partner: str) -> list[dict[str, Any]]:
    """The shipped scenarios written for ``partner`` (or for no partner in particular): name, description, document."""
    return [
        {"name": name, "description": document.get("description", ""), "document": copy.deepcopy(dict(document))}
        for name, document in _shipped_documents()
        if document.get("partner") in (None, partner)
    ]


def load_scenario(name_or_path: str | Path) -> Scenario:
    """A shipped scenario by name (``happy``), or a YAML file by path."""
    path = Path(name_or_path)
    if not path.suffix and not path.exists() and "/" not in str(name_or_path):
        path = SCENARIO_DIR / f"{name_or_path}.yaml"
        if not path.is_file():
            raise ScenarioError(f"no scenario named {name_or_path!r}; shipped: {', '.join(scenario_names())}")
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ScenarioError(f"cannot read scenario {path}: {exc.strerror}") from None
    return parse_scenario(text, source=str(path))


def _pointer(path: Sequence[Any]) -> str:
    return "".join(f"/{str(p).replace('~', '~0').replace('/', '~1')}" for p in path)


def _node_at(root: yaml.Node | None, path: Sequence[Any]) -> tuple[yaml.Node | None, yaml.Node | None]:
    """(the node at ``path`` or the deepest one found, the key node that leads to it)."""
    node, key_node = root, None
    for step in path:
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                if isinstance(k, yaml.ScalarNode) and k.value == str(step):
                    node, key_node = v, k
                    break
            else:
                return node, key_node
        elif isinstance(node, yaml.SequenceNode) and isinstance(step, int) and step < len(node.value):
            node, key_node = node.value[step], None
        else:
            return node, key_node
    return node, key_node


def _locate(root: yaml.Node | None, path: Sequence[Any], extra_key: str | None = None) -> int | None:
    """1-based line of the field at ``path`` (or of ``extra_key`` inside it)."""
    node, key_node = _node_at(root, path)
    if extra_key is not None and isinstance(node, yaml.MappingNode):
        for k, _ in node.value:
            if isinstance(k, yaml.ScalarNode) and k.value == extra_key:
                return k.start_mark.line + 1
    target = key_node or node
    return target.start_mark.line + 1 if target is not None else None


def _field_error(error: ValidationError, root: yaml.Node | None) -> tuple[str, str, int | None]:
    """(pointer, message, line) for one schema error, pointing at the offending field itself."""
    path = list(error.absolute_path)
    message = error.message
    if error.validator == "required":
        missing = re.findall(r"'([^']+)' is a required property", error.message)
        line = _locate(root, path)
        return _pointer([*path, *missing[:1]]), message, line
    if error.validator == "additionalProperties" and isinstance(error.instance, Mapping):
        allowed = set(error.schema.get("properties", {}))
        extra = sorted(k for k in error.instance if k not in allowed)
        if extra:
            hint = f"unknown field {extra[0]!r}; allowed: {', '.join(sorted(allowed))}"
            return _pointer([*path, extra[0]]), hint, _locate(root, path, extra[0])
    if error.validator in ("type", "pattern") and "amount" in str(path) and isinstance(error.instance, float):
        message = f"{error.instance!r}: write amounts as strings ('100.00'), not floats"
    return _pointer(path), message, _locate(root, path)


def _fail(source: str, root: yaml.Node | None, path: Sequence[Any], message: str) -> ScenarioError:
    pointer = _pointer(path)
    line = _locate(root, path)
    return ScenarioError(
        f"{source}:{line or '?'}: {pointer or '/'}: {message}",
        errors=[FieldError(pointer or "/", message, line)],
        line=line,
        pointer=pointer,
    )


def _regex(value: Any, source: str, root: yaml.Node | None, path: Sequence[Any]) -> re.Pattern[str] | None:
    if value is None:
        return None
    try:
        return re.compile(str(value))
    except re.error as exc:
        raise _fail(source, root, path, f"invalid regular expression: {exc}") from None


def _delays(data: Mapping[str, Any] | None, defaults: Mapping[str, Delay] | None = None) -> dict[str, Delay]:
    out = dict(defaults or {})
    for name, value in (data or {}).items():
        out[name] = Delay.parse(value)
    return out


def _rules(data: Sequence[Mapping[str, Any]], source: str, root: yaml.Node | None, base: Sequence[Any]) -> list[Rule]:
    rules: list[Rule] = []
    for index, raw in enumerate(data):
        where = [*base, index]
        match = raw.get("match") or {}
        amount = match.get("amount") or {}
        lo = Decimal(str(amount["min"])) if "min" in amount else None
        hi = Decimal(str(amount["max"])) if "max" in amount else None
        if lo is not None and hi is not None and lo > hi:
            raise _fail(source, root, [*where, "match", "amount"], f"min {lo} is above max {hi}")
        rules.append(
            Rule(
                name=raw.get("name") or f"rules[{index}]",
                index=index,
                outcome=raw["outcome"],
                at=raw.get("at", "callback"),
                # settle: an optional notification sent after settling, where the partner has one (ACH: C-codes)
                reason_code=raw.get("reason_code") if raw["outcome"] in ("reject", "return", "settle") else None,
                amount_min=lo,
                amount_max=hi,
                currency=match.get("currency"),
                creditor_name=_regex(match.get("creditor_name"), source, root, [*where, "match", "creditor_name"]),
                reference=_regex(match.get("reference"), source, root, [*where, "match", "reference"]),
                probability=match.get("probability"),
                delays=_delays(raw.get("delays")),
                faults=tuple(Fault.parse(f) for f in raw.get("faults") or ()),
            )
        )
    return rules


def validate_document(document: Any, *, source: str = "<scenario>", root: yaml.Node | None = None) -> None:
    """Raise ``ScenarioError`` (best match first, every error listed) unless ``document`` fits the schema."""
    errors = list(_validator().iter_errors(document))
    if not errors:
        return
    located = [_field_error(e, root) for e in errors]
    best = _field_error(best_match(errors), root)
    pointer, message, line = best
    raise ScenarioError(
        f"{source}:{line or '?'}: {pointer or '/'}: {message}",
        errors=[FieldError(p or "/", m, n) for p, m, n in [best, *[x for x in located if x != best]]],
        line=line,
        pointer=pointer,
    )


def parse_scenario(text: str | Mapping[str, Any], *, source: str = "<scenario>") -> Scenario:
    """Parse and validate a scenario (YAML text or an already-loaded mapping)."""
    root: yaml.Node | None = None
    if isinstance(text, str):
        try:
            root = yaml.compose(text, Loader=yaml.SafeLoader)
            document = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            line = mark.line + 1 if mark is not None else None
            problem = getattr(exc, "problem", None) or str(exc)
            raise ScenarioError(f"{source}:{line or '?'}: not valid YAML: {problem}", line=line) from None
    else:
        document = dict(text)
    if not isinstance(document, Mapping):
        raise ScenarioError(f"{source}:1: a scenario is a mapping with at least a name", line=1, pointer="")
    validate_document(document, source=source, root=root)
    defaults = _delays((document.get("defaults") or {}).get("delays"))
    statement = document.get("statement") or {}
    breaks = tuple(
        StatementBreak(
            kind=b["kind"],
            probability=float(b.get("probability", 1.0)),
            reference=_regex(
                (b.get("match") or {}).get("reference"), source, root, ["statement", "breaks", i, "match", "reference"]
            ),
            amount_delta=Decimal(str(b.get("amount_delta", "0.01"))),
            count=int(b.get("count", 1)),
        )
        for i, b in enumerate(statement.get("breaks") or ())
    )
    return Scenario(
        name=document["name"],
        description=document.get("description", ""),
        partner=document.get("partner"),
        seed=document.get("seed"),
        delays=defaults,
        rules=tuple(_rules(document.get("rules") or (), source, root, ["rules"])),
        faults=tuple(Fault.parse(f) for f in document.get("faults") or ()),
        opening_balance=Decimal(str(statement.get("opening_balance", "1000000.00"))),
        breaks=breaks,
        population=tuple(document.get("population") or ()),
        source=source,
        document=document,
    )


def legacy_rules(rules: Sequence[Mapping[str, Any]] | None, *, source: str = "settings") -> tuple[Rule, ...]:
    """Rules in the older settings form (``amount_min``/``amount_max`` in ``match``), validated alike."""
    converted: list[dict[str, Any]] = []
    for index, raw in enumerate(rules or ()):
        if not isinstance(raw, Mapping):
            raise ScenarioError(f"{source}: rules[{index}] must be a mapping", pointer=f"/rules/{index}")
        rule = dict(raw)
        match = dict(rule.get("match") or {})
        amount = {k[len("amount_") :]: match.pop(k) for k in ("amount_min", "amount_max") if k in match}
        if amount:
            match["amount"] = amount
        if match:
            rule["match"] = match
        converted.append(rule)
    document = {"name": "settings", "rules": converted}
    validate_document(document, source=source)
    return tuple(_rules(converted, source, None, ["rules"]))
