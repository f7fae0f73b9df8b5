"""Outcome rules: which payments the simulated bank settles and which it rejects.

A rule is a mapping::

    {"match": {"creditor_name": "(?i)acme", "reference": "^INV-", "amount_min": "100.00",
               "amount_max": "5000", "currency": "EUR"},
     "outcome": "reject", "reason_code": "AM04", "at": "callback"}

Every ``match`` key is optional (an empty match matches everything); regexes
use ``re.search``. The first matching rule wins. After the configured rules
come the built-in demo rules (unless ``builtin_rules`` is false):

- a creditor name containing ``REJECT-<CODE>`` (e.g. ``"Nordic Parts REJECT-AC01"``)
  is rejected with that ISO reason code in the final callback;
- a creditor name containing ``REJECTNOW-<CODE>`` is rejected synchronously, in
  the answer to the submission.

Anything else settles.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

from gateway.errors import ConfigError
from gateway_adapters.iso20022_bank.pain001 import Pain001Transaction

__all__ = ["BUILTIN_RULES", "Outcome", "Rule", "decide", "parse_rules"]

_REASON_RE = re.compile(r"^[A-Z0-9]{4}$")
_MATCH_KEYS = frozenset({"creditor_name", "reference", "amount_min", "amount_max", "currency"})
_RULE_KEYS = frozenset({"match", "outcome", "reason_code", "at"})


@dataclass(frozen=True)
class Outcome:
    """What the bank will do with one payment."""

    result: Literal["settle", "reject"]
    at: Literal["callback", "submit"] = "callback"
    reason_code: str | None = None
    rule: str = "default"


SETTLE = Outcome("settle")


@dataclass(frozen=True)
class Rule:
    """One configured rule (see the module docstring)."""

    name: str
    result: Literal["settle", "reject"]
    at: Literal["callback", "submit"] = "callback"
    reason_code: str | None = None
    creditor_name: re.Pattern[str] | None = None
    reference: re.Pattern[str] | None = None
    amount_min: Decimal | None = None
    amount_max: Decimal | None = None
    currency: str | None = None

    def outcome(self, tx: Pain001Transaction) -> Outcome | None:
        """The outcome if this rule matches ``tx``, else ``None``."""
        if self.creditor_name and not self.creditor_name.search(tx.creditor_name or ""):
            return None
        if self.reference and not self.reference.search(tx.end_to_end_id):
            return None
        if self.amount_min is not None and tx.amount < self.amount_min:
            return None
        if self.amount_max is not None and tx.amount > self.amount_max:
            return None
        if self.currency and tx.currency != self.currency:
            return None
        return Outcome(self.result, self.at, self.reason_code, self.name)


class _BuiltinRule:
    """``REJECT-<CODE>`` / ``REJECTNOW-<CODE>`` in the creditor name."""

    _pattern = re.compile(r"REJECT(NOW)?-([A-Z0-9]{4})")

    def outcome(self, tx: Pain001Transaction) -> Outcome | None:
        found = self._pattern.search(tx.creditor_name or "")
        if not found:
            return None
        at: Literal["callback", "submit"] = "submit" if found.group(1) else "callback"
        return Outcome("reject", at, found.group(2), f"builtin {found.group(0)}")


BUILTIN_RULES: tuple[_BuiltinRule, ...] = (_BuiltinRule(),)


def _decimal(value: Any, where: str) -> Decimal | None:
    if value is None:
        return None
    if isinstance(value, float):
        raise ConfigError(f"{where}: write amounts as strings ('100.00'), not floats")
    try:
        return Decimal(str(value))
    except InvalidOperation:
        raise ConfigError(f"{where}: {value!r} is not a decimal amount") from None


def _regex(value: Any, where: str) -> re.Pattern[str] | None:
    if value is None:
        return None
    try:
        return re.compile(str(value))
    except re.error as exc:
        raise ConfigError(f"{where}: invalid regex: {exc}") from None


def _rule(data: Mapping[str, Any], index: int) -> Rule:
    where = f"rules[{index}]"
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: must be a mapping")
    unknown = set(data) - _RULE_KEYS
    if unknown:
        raise ConfigError(f"{where}: unknown keys {sorted(unknown)}")
    match = data.get("match") or {}
    if not isinstance(match, Mapping) or set(match) - _MATCH_KEYS:
        raise ConfigError(f"{where}.match: keys must be among {sorted(_MATCH_KEYS)}")
    result = data.get("outcome")
    if result not in ("settle", "reject"):
        raise ConfigError(f"{where}.outcome: must be 'settle' or 'reject', not {result!r}")
    at = data.get("at", "callback")
    if at not in ("callback", "submit"):
        raise ConfigError(f"{where}.at: must be 'callback' or 'submit', not {at!r}")
    reason_code = data.get("reason_code")
    if result == "reject" and not (isinstance(reason_code, str) and _REASON_RE.match(reason_code)):
        raise ConfigError(f"{where}.reason_code: a reject needs a 4-character ISO code like 'AC01'")
    return Rule(
        name=where,
        result=result,
        at=at,
        reason_code=reason_code if result == "reject" else None,
        creditor_name=_regex(match.get("creditor_name"), f"{where}.match.creditor_name"),
        reference=_regex(match.get("reference"), f"{where}.match.reference"),
        amount_min=_decimal(match.get("amount_min"), f"{where}.match.amount_min"),
        amount_max=_decimal(match.get("amount_max"), f"{where}.match.amount_max"),
        currency=match.get("currency"),
    )


def parse_rules(rules: Iterable[Mapping[str, Any]] | None) -> tuple[Rule, ...]:
    """Validate configured rules; ``ConfigError`` names the first bad one."""
    return tuple(_rule(data, index) for index, data in enumerate(rules or ()))


def decide(rules: Sequence[Rule], tx: Pain001Transaction, *, builtin: bool = True) -> Outcome:
    """The first matching rule's outcome (configured, then built-in); settle if none."""
    candidates: tuple[Rule | _BuiltinRule, ...] = (*rules, *(BUILTIN_RULES if builtin else ()))
    for rule in candidates:
        outcome = rule.outcome(tx)
        if outcome is not None:
            return outcome
    return SETTLE
