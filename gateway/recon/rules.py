"""The matching rules and the breaks settings, as data (``config/reconciliation.yaml``).

The file is checked against ``rules_schema.json`` when it is loaded (at
start-up and by every ``gateway recon`` command); the first problem is one
``ConfigError`` line naming the key (``rules.2.amount: …``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Any

from gateway.config import Settings, check_document, read_yaml_file
from gateway.domain.errors import CurrencyError
from gateway.domain.money import minor_units
from gateway.errors import ConfigError

__all__ = ["DEFAULT_RECON_FILE", "MatchRule", "ReconRules", "load_recon_rules", "parse_recon_rules"]

DEFAULT_RECON_FILE = Path(__file__).resolve().parents[2] / "config" / "reconciliation.yaml"


@dataclass(frozen=True)
class MatchRule:
    """One rule: criteria that must all hold, and what a match by it is."""

    name: str
    reference: bool = False
    remittance: bool = False
    any_amount: bool = False
    tolerance_minor: int = 0
    tolerance_bp: int = 0  # hundredths of a percent
    date_window_days: int | None = None
    counterparty: bool = False
    many_payments: bool = False  # 1:N
    many_lines: bool = False  # N:1
    explains: str | None = None  # fee | fx
    best: str = "confirmed"

    def tolerance(self, amount_minor: int) -> int:
        """The largest difference this rule accepts against payments totalling ``amount_minor``."""
        return max(self.tolerance_minor, abs(amount_minor) * self.tolerance_bp // 10_000)

    def accepts(self, difference: int, amount_minor: int) -> bool:
        return self.any_amount or abs(difference) <= self.tolerance(amount_minor)


@dataclass(frozen=True)
class ReconRules:
    """The rules in order, and the breaks settings."""

    rules: tuple[MatchRule, ...]
    missing_after_days: int = 2
    four_eyes_above: Mapping[str, Decimal] = field(default_factory=lambda: {"default": Decimal("100.00")})
    source: str = ""

    def four_eyes_minor(self, currency: str) -> int:
        """The write-off amount (minor units of ``currency``) above which a second person must approve."""
        limit = self.four_eyes_above.get(currency, self.four_eyes_above["default"])
        return int(limit.scaleb(minor_units(currency)))

    def rule(self, name: str) -> MatchRule | None:
        return next((r for r in self.rules if r.name == name), None)


def _schema() -> dict[str, Any]:
    text = resources.files("gateway.recon").joinpath("rules_schema.json").read_text(encoding="utf-8")
    return json.loads(text)  # type: ignore[no-any-return]


def _rule(raw: Mapping[str, Any], where: str) -> MatchRule:
    amount = raw.get("amount", "exact")
    tolerance_minor = tolerance_bp = 0
    if isinstance(amount, dict):
        tolerance_minor = int(amount.get("minor", 0))
        tolerance_bp = int(Decimal(amount.get("percent", "0")) * 100)
    rule = MatchRule(
        name=raw["name"],
        reference=bool(raw.get("reference", False)),
        remittance=bool(raw.get("remittance", False)),
        any_amount=amount == "any",
        tolerance_minor=tolerance_minor,
        tolerance_bp=tolerance_bp,
        date_window_days=raw.get("date_window_days"),
        counterparty=bool(raw.get("counterparty", False)),
        many_payments=raw.get("payments") == "many",
        many_lines=raw.get("lines") == "many",
        explains=raw.get("explains"),
        best=raw.get("status", "confirmed"),
    )
    if rule.many_payments and rule.many_lines:
        raise ConfigError(
            f"{where}.lines: a rule is one-to-many (payments: many) or many-to-one (lines: many), not both"
        )
    if (rule.many_payments or rule.many_lines) and not rule.reference:
        raise ConfigError(
            f"{where}.reference: a one-to-many or many-to-one rule groups by reference; set reference: true"
        )
    if not (rule.reference or rule.remittance or rule.counterparty):
        raise ConfigError(f"{where}: a rule needs reference, remittance or counterparty (amount alone is a guess)")
    if rule.explains and (rule.any_amount or not (rule.tolerance_minor or rule.tolerance_bp)):
        raise ConfigError(f"{where}.explains: needs an amount tolerance (amount: {{minor: N, percent: P}})")
    return rule


def parse_recon_rules(doc: Mapping[str, Any], source: str) -> ReconRules:
    """Check a reconciliation document; ``ConfigError`` naming the first wrong key."""
    check_document(doc, _schema(), source)
    rules = tuple(_rule(r, f"{source}: rules.{i}") for i, r in enumerate(doc["rules"]))
    names = [r.name for r in rules]
    for i, name in enumerate(names):
        if name in names[:i]:
            raise ConfigError(f"{source}: rules.{i}.name: {name!r} is already a rule's name")
    breaks = doc.get("breaks") or {}
    above = {k: Decimal(v) for k, v in (breaks.get("write_off_four_eyes_above") or {"default": "100.00"}).items()}
    for currency, limit in above.items():
        if currency != "default":
            try:
                digits = minor_units(currency)
            except CurrencyError:
                raise ConfigError(f"{source}: breaks.write_off_four_eyes_above.{currency}: not a currency") from None
            if -limit.as_tuple().exponent > digits:  # type: ignore[operator]
                raise ConfigError(f"{source}: breaks.write_off_four_eyes_above.{currency}: too many decimals")
    return ReconRules(rules, int(breaks.get("missing_after_days", 2)), above, source)


def load_recon_rules(settings: Settings | None = None, path: str | Path | None = None) -> ReconRules:
    """The rules of ``path``, else ``reconciliation.file`` of ``settings``, else the shipped file."""
    file = Path(path) if path else (settings.reconciliation_file if settings else None) or DEFAULT_RECON_FILE
    return parse_recon_rules(read_yaml_file(file, "reconciliation rules"), str(file))
