"""The risk engine: per-business-unit policies built from ``config/risk.yaml`` and the registered rules.

``evaluate`` runs one candidate through its business unit's rules and maps the
findings to an outcome: a rule with a fixed ``action`` gives that action; any
other finding is compared with the policy's thresholds (``flag_at``,
``hold_at``, ``reject_at``); the most severe wins. The engine is pure: the
history it reads is passed in, and ``History.record`` remembers the payment
once the caller knows the final outcome (credit limits may still hold it).
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from gateway.config import check_document, deep_merge, read_yaml_file
from gateway.domain.money import Money
from gateway.errors import ConfigError
from gateway.risk.history import KEEP_BUCKETS, CounterSpec, History
from gateway.risk.model import Candidate, Finding, Fingerprinter, Outcome, Screening, normalise_name
from gateway.risk.rules import DURATION_SCHEMA, Rule, RuleContext, canonical_account, parse_duration

__all__ = ["CreditLimitSpec", "Policy", "RiskEngine", "fingerprint_key", "load_risk", "risk_schema"]

_DEFAULT_HOLD_EXPIRY = 72 * 3600


def risk_schema(rule_classes: Sequence[type[Rule]]) -> dict[str, Any]:
    """The JSON Schema of ``risk.yaml`` for the registered rules (each rule brings its options)."""
    common = {
        "enabled": {"type": "boolean"},
        "score": {"type": "number", "minimum": 0, "maximum": 1},
        "action": {"enum": [o.value for o in Outcome if o is not Outcome.PASS]},
    }
    rules = {
        cls.name: {"type": "object", "additionalProperties": False, "properties": {**common, **cls.options_schema}}
        for cls in rule_classes
    }
    threshold = {"type": ["number", "null"], "minimum": 0, "maximum": 1}
    unit = {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "timezone": {"type": "string"},
            "hold_expiry": DURATION_SCHEMA,
            "policy": {
                "type": "object",
                "additionalProperties": False,
                "properties": {"flag_at": threshold, "hold_at": threshold, "reject_at": threshold},
            },
            "rules": {"type": "object", "additionalProperties": False, "properties": rules},
        },
    }
    amount = {"type": "string", "pattern": r"^\d+(\.\d+)?$"}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "defaults": unit,
            "business_units": {"type": "object", "additionalProperties": unit},
            "counterparties": {
                "type": "object",
                "propertyNames": {"pattern": r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"},
                "additionalProperties": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "names": {"type": "array", "items": {"type": "string", "minLength": 1}},
                        "accounts": {"type": "array", "items": {"type": "object"}},
                    },
                },
            },
            "credit_limits": {
                "type": "array",
                "items": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["counterparty", "currency", "limit"],
                    "properties": {
                        "counterparty": {"type": "string"},
                        "currency": {"type": "string", "pattern": "^[A-Z]{3}$"},
                        "limit": amount,
                        "on_exceed": {"enum": ["hold", "reject"]},
                    },
                },
            },
        },
    }


@dataclass(frozen=True, slots=True)
class Policy:
    """One business unit's rules and thresholds."""

    rules: tuple[Rule, ...]
    flag_at: float | None = 0.5
    hold_at: float | None = 0.8
    reject_at: float | None = None
    hold_expiry_seconds: int = _DEFAULT_HOLD_EXPIRY
    timezone: str = "UTC"

    def outcome_of(self, finding: Finding) -> Outcome:
        if finding.action is not None:
            return finding.action
        for at, outcome in (
            (self.reject_at, Outcome.REJECT),
            (self.hold_at, Outcome.HOLD),
            (self.flag_at, Outcome.FLAG),
        ):
            if at is not None and finding.score >= at:
                return outcome
        return Outcome.PASS


@dataclass(frozen=True, slots=True)
class CreditLimitSpec:
    counterparty: str
    currency: str
    limit: Money
    on_exceed: Outcome


@dataclass
class RiskEngine:
    """Policies per business unit, counterparties and credit limits (see module docstring)."""

    default: Policy
    policies: dict[str, Policy] = field(default_factory=dict)
    fingerprints: Fingerprinter = field(default_factory=lambda: Fingerprinter(b"\0" * 32))
    counterparty_names: dict[str, str] = field(default_factory=dict)  # normalised name → counterparty
    counterparty_accounts: dict[str, str] = field(default_factory=dict)  # account fingerprint → counterparty
    credit_limits: tuple[CreditLimitSpec, ...] = ()
    source: str = "(no risk file)"

    def policy(self, business_unit: str) -> Policy:
        return self.policies.get(business_unit, self.default)

    def all_policies(self) -> Iterable[Policy]:
        yield self.default
        yield from self.policies.values()

    @property
    def has_rules(self) -> bool:
        """Whether any business unit has a rule (without rules, no history is read or kept)."""
        return any(p.rules for p in self.all_policies())

    @property
    def bucket_sizes(self) -> set[int]:
        return {size for _, size in self.counters}

    @property
    def counters(self) -> set[CounterSpec]:
        """The (subject, bucket size) velocity counters some rule reads (the only ones kept)."""
        return {spec for p in self.all_policies() for r in p.rules for spec in r.counters()}

    @property
    def recent_seconds(self) -> int:
        return max((r.recent_seconds() for p in self.all_policies() for r in p.rules), default=0)

    def retention(self) -> tuple[int, int]:
        """Seconds of velocity counters and of recent payments worth keeping; older history is pruned.

        Counters: ``KEEP_BUCKETS`` buckets of the largest size a rule reads. Recent
        payments: twice the longest look-back a rule has, at least two hours.
        """
        return max(self.bucket_sizes, default=60) * KEEP_BUCKETS, max(self.recent_seconds, 3600) * 2

    def new_history(self) -> History:
        return History(recent_seconds=self.recent_seconds or 86_400, counters=self.counters)

    def counterparty_of(self, creditor_key: str, creditor_name: str) -> str | None:
        """The configured counterparty a payment to this creditor belongs to (account first, then name)."""
        return self.counterparty_accounts.get(creditor_key) or self.counterparty_names.get(creditor_name)

    def evaluate(self, c: Candidate, history: History) -> Screening:
        """Run the business unit's rules; the most severe outcome wins. Does not record."""
        policy = self.policy(c.business_unit)
        findings: list[Finding] = []
        outcome = Outcome.PASS
        for rule in policy.rules:
            finding = rule.evaluate(c, history)
            if finding is None:
                continue
            verdict = policy.outcome_of(finding)
            if verdict is Outcome.PASS:
                continue
            findings.append(finding)
            if verdict.severity > outcome.severity:
                outcome = verdict
        return Screening(c, outcome, tuple(findings))

    def screen(self, c: Candidate, history: History) -> Screening:
        """Evaluate and remember (what the stream benchmark and tests use; no credit limits)."""
        screening = self.evaluate(c, history)
        history.record(c, learn=screening.outcome in (Outcome.PASS, Outcome.FLAG))
        return screening


def fingerprint_key(spec: str | None, encryption_keys: Mapping[str, bytes]) -> bytes:
    """The HMAC key for account fingerprints: ``security.fingerprint_key``, else derived."""
    if spec:
        try:
            key = base64.b64decode(spec, validate=True)
        except ValueError:
            raise ConfigError("security.fingerprint_key: not valid base64") from None
        if len(key) < 16:
            raise ConfigError("security.fingerprint_key: must be at least 16 bytes")
        return key
    # Derived from the first (encrypting) key: set fingerprint_key before rotating keys.
    first = next(iter(encryption_keys.values()))
    return hashlib.sha256(b"partner-gateway/risk-fingerprint\0" + first).digest()


def load_risk(path: str | Path | None, rule_classes: Sequence[type[Rule]], fingerprint_key: bytes) -> RiskEngine:
    """Read and check the risk file; no file means no rules (every payment passes)."""
    fingerprints = Fingerprinter(fingerprint_key)
    if path is None:
        return RiskEngine(Policy(()), fingerprints=fingerprints)
    file = Path(path)
    source = str(file)
    doc = read_yaml_file(file, "risk file")
    names = [cls.name for cls in rule_classes]
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise ConfigError(f"two risk rules are named {dup!r}")
    check_document(doc, risk_schema(rule_classes), source)
    by_name = {cls.name: cls for cls in rule_classes}
    defaults = doc.get("defaults") or {}

    def build(unit: Mapping[str, Any], where: str) -> Policy:
        timezone = unit.get("timezone", "UTC")
        try:
            ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ConfigError(f"{source}: {where}.timezone: unknown time zone {timezone!r}") from None
        context = RuleContext(fingerprints, timezone, file.resolve().parent)
        rules: list[Rule] = []
        for name, options in (unit.get("rules") or {}).items():
            if options.get("enabled", True) is False:
                continue
            try:
                rules.append(by_name[name](options, context))
            except ConfigError as exc:
                raise ConfigError(f"{source}: {where}.rules.{name}: {exc.message}") from None
        thresholds = unit.get("policy") or {}
        return Policy(
            tuple(rules),
            flag_at=thresholds.get("flag_at", 0.5),
            hold_at=thresholds.get("hold_at", 0.8),
            reject_at=thresholds.get("reject_at"),
            hold_expiry_seconds=parse_duration(unit.get("hold_expiry", _DEFAULT_HOLD_EXPIRY)),
            timezone=timezone,
        )

    engine = RiskEngine(build(defaults, "defaults"), fingerprints=fingerprints, source=source)
    for bu, unit in (doc.get("business_units") or {}).items():
        engine.policies[bu] = build(deep_merge(defaults, unit), f"business_units.{bu}")
    for cp, spec in (doc.get("counterparties") or {}).items():
        for name in spec.get("names", []):
            engine.counterparty_names[normalise_name(name)] = cp
        for i, account in enumerate(spec.get("accounts", [])):
            where = f"{source}: counterparties.{cp}.accounts.{i}"
            engine.counterparty_accounts[fingerprints.account(canonical_account(account, where))] = cp
    limits = []
    for i, item in enumerate(doc.get("credit_limits") or []):
        where = f"{source}: credit_limits.{i}"
        if item["counterparty"] not in (doc.get("counterparties") or {}):
            raise ConfigError(f"{where}.counterparty: {item['counterparty']!r} is not under counterparties")
        try:
            money = Money(Decimal(item["limit"]), item["currency"])
        except Exception as exc:
            raise ConfigError(f"{where}: {getattr(exc, 'message', exc)}") from None
        limits.append(
            CreditLimitSpec(item["counterparty"], item["currency"], money, Outcome(item.get("on_exceed", "hold")))
        )
    engine.credit_limits = tuple(limits)
    return engine
