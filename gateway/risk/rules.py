"""Risk rules: the base class and the built-in rules (registered through the same hook as plugins).

A rule is a class with a ``name``, a JSON Schema for its options and an
``evaluate`` method that reads the candidate and the history and returns a
``Finding`` or ``None``. It is built once per business unit with that unit's
options (``config/risk.yaml``: defaults deep-merged with the unit's overrides).
Every rule accepts ``enabled``, ``score`` (0 to 1, compared with the policy's
thresholds) and ``action`` (a fixed outcome that bypasses the thresholds).
"""

from __future__ import annotations

import math
import re
import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, time
from decimal import Decimal, InvalidOperation
from difflib import SequenceMatcher
from functools import lru_cache
from pathlib import Path
from typing import Any, ClassVar
from zoneinfo import ZoneInfo

import holidays
import yaml

from gateway.domain.accounts import IbanAccount, UsAccount, WalletAccount
from gateway.domain.money import minor_units
from gateway.errors import ConfigError
from gateway.risk.history import SUBJECTS, CounterSpec, History, bucket_seconds
from gateway.risk.model import Candidate, Finding, Fingerprinter, Outcome, normalise_name

__all__ = [
    "BUILTIN_RULES",
    "AccountChangeRule",
    "AmountOutlierRule",
    "BlocklistRule",
    "BusinessHoursRule",
    "DuplicateRule",
    "NewBeneficiaryRule",
    "RoundAmountRule",
    "Rule",
    "RuleContext",
    "VelocityRule",
    "canonical_account",
    "parse_duration",
]

_DURATION = re.compile(r"^\s*(\d+)\s*([smhd])\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}

#: JSON Schema pieces shared by rule option schemas
DURATION_SCHEMA: dict[str, Any] = {
    "oneOf": [
        {"type": "integer", "minimum": 1},
        {"type": "string", "pattern": r"^\s*\d+\s*[smhd]\s*$"},
    ],
    "description": "seconds, or a number with s/m/h/d",
}
AMOUNT_SCHEMA: dict[str, Any] = {
    "oneOf": [
        {"type": "string", "pattern": r"^\d+(\.\d+)?$"},
        {
            "type": "object",
            "propertyNames": {"pattern": "^([A-Z]{3}|default)$"},
            "additionalProperties": {"type": "string", "pattern": r"^\d+(\.\d+)?$"},
        },
    ],
    "description": "a decimal amount for every currency, or a map currency → amount (key 'default' for the rest)",
}


def parse_duration(value: int | str) -> int:
    """Seconds from ``3600`` or ``"1h"`` (s, m, h, d)."""
    if isinstance(value, int):
        return value
    match = _DURATION.match(value)
    if not match:
        raise ConfigError(f"not a duration: {value!r} (use e.g. 90s, 15m, 1h, 7d)")
    return int(match.group(1)) * _UNIT_SECONDS[match.group(2)]


class Threshold:
    """An amount per currency (``"10000"`` for all, or ``{"EUR": "10000", "default": "12000"}``)."""

    def __init__(self, spec: str | Mapping[str, str] | None) -> None:
        self.any: Decimal | None = None
        self.by_currency: dict[str, Decimal] = {}
        try:
            if isinstance(spec, str):
                self.any = Decimal(spec)
            elif spec:
                self.by_currency = {k: Decimal(v) for k, v in spec.items() if k != "default"}
                self.any = Decimal(spec["default"]) if "default" in spec else None
        except InvalidOperation:
            raise ConfigError(f"not a decimal amount: {spec!r}") from None

    def get(self, currency: str) -> Decimal | None:
        return self.by_currency.get(currency, self.any)


@dataclass(frozen=True, slots=True)
class RuleContext:
    """What a rule may need besides its options."""

    fingerprints: Fingerprinter
    timezone: str = "UTC"
    base_dir: Path = Path(".")


class Rule:
    """Base class of every risk rule (see module docstring)."""

    name: ClassVar[str] = ""
    #: JSON Schema ("properties" only) of the rule's own options
    options_schema: ClassVar[dict[str, Any]] = {}
    default_score: ClassVar[float] = 0.5

    def __init__(self, options: Mapping[str, Any], context: RuleContext) -> None:
        self.options = dict(options)
        self.context = context
        self.score = float(options.get("score", self.default_score))
        action = options.get("action")
        self.action = Outcome(action) if action else None

    def bucket_sizes(self) -> Iterable[int]:
        """Velocity bucket sizes (seconds) this rule reads; the history keeps these."""
        return ()

    def counters(self) -> Iterable[CounterSpec]:
        """The (subject, bucket size) velocity counters this rule reads; the history keeps only these.

        By default every size of ``bucket_sizes`` for both subjects; a rule that
        knows whose payments each of its windows counts says so (``VelocityRule``).
        """
        return {(subject, size) for size in self.bucket_sizes() for subject in SUBJECTS}

    def recent_seconds(self) -> int:
        """How far back this rule looks at individual recent payments (0: not at all)."""
        return 0

    def evaluate(self, c: Candidate, history: History) -> Finding | None:
        raise NotImplementedError

    def hit(self, reason: str, score: float | None = None) -> Finding:
        return Finding(self.name, self.score if score is None else score, reason, self.action)


def _money(minor_or_amount: Decimal, currency: str) -> str:
    return f"{minor_or_amount:,} {currency}"


class VelocityRule(Rule):
    """Too many payments, or too much money, from one debtor or to one creditor in a sliding window."""

    name = "velocity"
    default_score = 0.9
    options_schema = {
        "limits": {
            "type": "array",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["subject", "window"],
                "properties": {
                    "subject": {"enum": ["debtor", "creditor"]},
                    "window": DURATION_SCHEMA,
                    "max_count": {"type": "integer", "minimum": 1},
                    "max_sum": AMOUNT_SCHEMA,
                },
                "anyOf": [{"required": ["max_count"]}, {"required": ["max_sum"]}],
            },
        }
    }

    def __init__(self, options: Mapping[str, Any], context: RuleContext) -> None:
        super().__init__(options, context)
        self.limits = [
            (
                item["subject"],
                parse_duration(item["window"]),
                item.get("max_count"),
                Threshold(item.get("max_sum")) if item.get("max_sum") else None,
            )
            for item in options.get("limits", [])
        ]

    def counters(self) -> Iterable[CounterSpec]:
        return {(subject, bucket_seconds(window)) for subject, window, _, _ in self.limits}

    def evaluate(self, c: Candidate, history: History) -> Finding | None:
        for subject, window, max_count, max_sum in self.limits:
            count, total_minor = history.velocity(c, subject, window)
            if max_count is not None and count + 1 > max_count:
                return self.hit(f"{count + 1} payments by this {subject} within {window}s (limit {max_count})")
            limit = max_sum.get(c.currency) if max_sum else None
            if limit is not None:
                total = Decimal(total_minor + c.amount_minor).scaleb(-minor_units(c.currency))
                if total > limit:
                    return self.hit(
                        f"{_money(total, c.currency)} by this {subject} within {window}s "
                        f"(limit {_money(limit, c.currency)})"
                    )
        return None


class AmountOutlierRule(Rule):
    """An amount far from the usual for this debtor → creditor pair (median and MAD in log space)."""

    name = "amount_outlier"
    default_score = 0.5
    options_schema = {
        "min_history": {"type": "integer", "minimum": 2},
        "threshold": {"type": "number", "exclusiveMinimum": 0},
        "min_spread": {"type": "number", "exclusiveMinimum": 0},
        "direction": {"enum": ["up", "both"]},
        "min_amount": AMOUNT_SCHEMA,
    }

    def __init__(self, options: Mapping[str, Any], context: RuleContext) -> None:
        super().__init__(options, context)
        self.min_history = int(options.get("min_history", 8))
        self.threshold = float(options.get("threshold", 6.0))
        # smallest spread assumed, in log units (0.1 ≈ 10 %): a pair that always pays
        # the same amount must not make every small change look infinitely unusual
        self.min_spread = float(options.get("min_spread", 0.1))
        self.both = options.get("direction", "up") == "both"
        self.min_amount = Threshold(options.get("min_amount"))

    def evaluate(self, c: Candidate, history: History) -> Finding | None:
        stats = history.pair(c)
        if stats is None or len(stats.amounts) < self.min_history or c.amount_minor <= 0:
            return None
        floor = self.min_amount.get(c.currency)
        if floor is not None and c.amount < floor:
            return None
        logs = [math.log(a) for a in stats.amounts if a > 0]
        if len(logs) < self.min_history:
            return None
        center = statistics.median(logs)
        mad = statistics.median(abs(x - center) for x in logs)
        spread = max(1.4826 * mad, self.min_spread)
        z = (math.log(c.amount_minor) - center) / spread
        if z < self.threshold and not (self.both and -z >= self.threshold):
            return None
        strength = min(1.0, (abs(z) - self.threshold) / self.threshold)
        usual = Decimal(round(math.exp(center))).scaleb(-minor_units(c.currency))
        return self.hit(
            f"amount is {abs(z):.1f} robust deviations from this pair's usual {_money(usual, c.currency)}",
            score=self.score + (1.0 - self.score) * strength * 0.8,
        )


class NewBeneficiaryRule(Rule):
    """A first payment to an account the business unit never paid, above a threshold."""

    name = "new_beneficiary"
    default_score = 0.8
    options_schema = {"large_amount": AMOUNT_SCHEMA}

    def __init__(self, options: Mapping[str, Any], context: RuleContext) -> None:
        super().__init__(options, context)
        self.large = Threshold(options.get("large_amount", "10000"))

    def evaluate(self, c: Candidate, history: History) -> Finding | None:
        limit = self.large.get(c.currency)
        if limit is None or c.amount < limit or history.beneficiary(c) is not None:
            return None
        return self.hit(f"first payment to this account, {_money(c.amount, c.currency)} (threshold {limit:,})")


class DuplicateRule(Rule):
    """The same (or nearly the same) payment to the same creditor account within a window.

    A near duplicate must also name the same documents: when both remittances
    carry numbers and neither's numbers include the other's (``Invoice 2026-0451``
    and ``Invoice 2026-0452`` of a payment run), they pay different documents,
    however alike the text and amounts (``near_same_numbers``, on by default).
    """

    name = "duplicate"
    default_score = 0.9
    options_schema = {
        "window": DURATION_SCHEMA,
        "near_tolerance": {"type": "number", "minimum": 0, "maximum": 0.5},
        "near_similarity": {"type": "number", "minimum": 0, "maximum": 1},
        "near_score": {"type": "number", "minimum": 0, "maximum": 1},
        "near_same_numbers": {"type": "boolean"},
    }

    def __init__(self, options: Mapping[str, Any], context: RuleContext) -> None:
        super().__init__(options, context)
        self.window = parse_duration(options.get("window", "24h"))
        self.tolerance = float(options.get("near_tolerance", 0.01))
        self.similarity = float(options.get("near_similarity", 0.8))
        self.near_score = float(options.get("near_score", 0.6))
        self.same_numbers = bool(options.get("near_same_numbers", True))

    def recent_seconds(self) -> int:
        return self.window

    def evaluate(self, c: Candidate, history: History) -> Finding | None:
        near: str | None = None
        for r in history.recent_to(c, self.window):
            if r.currency != c.currency or r.instruction_id == c.instruction_id:
                continue
            if r.amount_minor == c.amount_minor and r.remittance == c.remittance:
                return self.hit(f"same creditor account, amount and remittance as {r.instruction_id}")
            if (
                near is None
                and _close(r.amount_minor, c.amount_minor, self.tolerance)
                and _similar(r.remittance, c.remittance, self.similarity)
                and (not self.same_numbers or _same_documents(r.remittance, c.remittance))
            ):
                near = r.instruction_id
        if near is not None:
            return self.hit(f"nearly the same payment to this account as {near}", score=self.near_score)
        return None


def _close(a: int, b: int, tolerance: float) -> bool:
    return abs(a - b) <= tolerance * max(a, b)


@lru_cache(maxsize=16384)
def _similar(a: str, b: str, threshold: float) -> bool:
    if a == b:
        return True
    if not a or not b:
        return False
    return SequenceMatcher(None, a, b).ratio() >= threshold


_NUMBER = re.compile(r"\d+")


@lru_cache(maxsize=16384)
def _numbers(text: str) -> frozenset[str]:
    """The numbers a remittance names, leading zeros dropped (``INV0000451`` and ``Inv. 451`` agree)."""
    return frozenset(n.lstrip("0") or "0" for n in _NUMBER.findall(text))


def _same_documents(a: str, b: str) -> bool:
    """Whether two remittances may pay the same documents: one names no number, or its numbers include the other's."""
    na, nb = _numbers(a), _numbers(b)
    return not na or not nb or na <= nb or nb <= na


class RoundAmountRule(Rule):
    """A large, round amount (a multiple of ``multiple`` at or above ``min_amount``)."""

    name = "round_amount"
    default_score = 0.5
    options_schema = {"min_amount": AMOUNT_SCHEMA, "multiple": AMOUNT_SCHEMA}

    def __init__(self, options: Mapping[str, Any], context: RuleContext) -> None:
        super().__init__(options, context)
        self.min_amount = Threshold(options.get("min_amount", "10000"))
        self.multiple = Threshold(options.get("multiple", "1000"))

    def evaluate(self, c: Candidate, history: History) -> Finding | None:
        floor = self.min_amount.get(c.currency)
        step = self.multiple.get(c.currency)
        if floor is None or not step or c.amount < floor or c.amount % step != 0:
            return None
        return self.hit(f"round amount {_money(c.amount, c.currency)} (a multiple of {step:,})")


_WEEKDAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


class BusinessHoursRule(Rule):
    """Received outside the business unit's business hours, on a weekend or a public holiday."""

    name = "business_hours"
    default_score = 0.5
    options_schema = {
        "days": {"type": "array", "items": {"enum": _WEEKDAYS}, "uniqueItems": True},
        "start": {"type": "string", "pattern": r"^([01]\d|2[0-3]):[0-5]\d$"},
        "end": {"type": "string", "pattern": r"^([01]\d|2[0-4]):[0-5]\d$"},
        "holidays": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "country": {"type": "string", "pattern": "^[A-Z]{2}$"},
                "subdivision": {"type": "string"},
                "dates": {"type": "array", "items": {"type": "string", "format": "date"}},
            },
        },
    }

    def __init__(self, options: Mapping[str, Any], context: RuleContext) -> None:
        super().__init__(options, context)
        self.zone = ZoneInfo(context.timezone)
        self.days = {_WEEKDAYS.index(d) for d in options.get("days", _WEEKDAYS[:5])}
        self.start = time.fromisoformat(options.get("start", "07:00"))
        end = options.get("end", "20:00")
        self.end = time(23, 59, 59, 999999) if end == "24:00" else time.fromisoformat(end)
        spec = options.get("holidays") or {}
        self.country = spec.get("country")
        self.subdivision = spec.get("subdivision")
        try:
            self.extra_dates = {date.fromisoformat(d) for d in spec.get("dates", [])}
        except ValueError as exc:
            raise ConfigError(f"holidays.dates: {exc} (use YYYY-MM-DD)") from None
        if self.country:
            _holiday_calendar(self.country, self.subdivision, 2026)  # unknown country/subdivision: fail at start

    def evaluate(self, c: Candidate, history: History) -> Finding | None:
        local = c.at.astimezone(self.zone)
        day = local.date()
        if day in self.extra_dates:
            return self.hit(f"received on {day}, a configured holiday")
        if self.country:
            name = _holiday_calendar(self.country, self.subdivision, day.year).get(day)
            if name:
                return self.hit(f"received on {day}, a public holiday ({name})")
        if local.weekday() not in self.days:
            return self.hit(f"received on a {_WEEKDAYS[local.weekday()]} ({self.context.timezone})")
        if not (self.start <= local.time() < self.end):
            return self.hit(f"received at {local:%H:%M} {self.context.timezone}, outside business hours")
        return None


@lru_cache(maxsize=128)
def _holiday_calendar(country: str, subdivision: str | None, year: int) -> Mapping[date, str]:

    if country not in holidays.list_supported_countries():
        raise ConfigError(f"no public holiday calendar for country {country!r}")
    try:
        return dict(holidays.country_holidays(country, subdiv=subdivision, years=year).items())
    except (NotImplementedError, ValueError) as exc:  # an unknown subdivision
        raise ConfigError(f"holidays: no subdivision {subdivision!r} in {country}'s calendar ({exc})") from None


class AccountChangeRule(Rule):
    """A known creditor (by name) is paid to an account never paid under that name before.

    Every account a name was paid to is remembered, so a supplier that uses two
    banks is not held each time it switches between them. The name must have
    been paid ``min_history`` times to one account; a name already paid to
    ``max_accounts`` different accounts is shared by several payees (customers
    called "Maria Garcia") and says nothing about any one of them.
    """

    name = "account_change"
    default_score = 0.9
    options_schema = {
        "min_history": {"type": "integer", "minimum": 1},
        "max_accounts": {"type": "integer", "minimum": 1},
    }

    def __init__(self, options: Mapping[str, Any], context: RuleContext) -> None:
        super().__init__(options, context)
        self.min_history = int(options.get("min_history", 2))
        self.max_accounts = int(options.get("max_accounts", 3))

    def evaluate(self, c: Candidate, history: History) -> Finding | None:
        known = history.accounts_for_name(c)
        if known is None or c.creditor_key in known.accounts or len(known.accounts) >= self.max_accounts:
            return None
        if max(known.accounts.values()) < self.min_history:
            return None
        accounts = len(known.accounts)
        other = "another account" if accounts == 1 else f"{accounts} other accounts"
        return self.hit(f"creditor paid {known.count} times to {other}; this account is new for the name")


class BlocklistRule(Rule):
    """The creditor's name or account is on the blocked list (a YAML file of names and accounts)."""

    name = "blocklist"
    default_score = 1.0
    options_schema = {"file": {"type": "string", "minLength": 1}}

    def __init__(self, options: Mapping[str, Any], context: RuleContext) -> None:
        super().__init__(options, context)
        self.names: set[str] = set()
        self.name_tokens: list[frozenset[str]] = []
        self.accounts: set[str] = set()
        if options.get("file"):
            self._load(context.base_dir / options["file"])

    def _load(self, path: Path) -> None:
        try:
            doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except OSError as exc:
            raise ConfigError(f"blocked list {path}: {exc.strerror}") from None
        except yaml.YAMLError:
            raise ConfigError(f"blocked list {path} is not valid YAML") from None
        if not isinstance(doc, dict) or set(doc) - {"names", "accounts"}:
            raise ConfigError(f"blocked list {path}: expected a mapping with 'names' and/or 'accounts'")
        for key in ("names", "accounts"):
            if not isinstance(doc.get(key) or [], list):
                raise ConfigError(f"blocked list {path}: {key} must be a list")
        for i, name in enumerate(doc.get("names") or []):
            norm = normalise_name(str(name))
            if not norm:
                raise ConfigError(f"blocked list {path}: names[{i}] is empty after normalisation")
            self.names.add(norm)
            tokens = frozenset(norm.split())
            if len(tokens) >= 2:
                self.name_tokens.append(tokens)
        for i, account in enumerate(doc.get("accounts") or []):
            self.accounts.add(self.context.fingerprints.account(canonical_account(account, f"{path}: accounts[{i}]")))

    def evaluate(self, c: Candidate, history: History) -> Finding | None:
        if c.creditor_key in self.accounts:
            return self.hit("creditor account is on the blocked list")
        if c.creditor_name in self.names:
            return self.hit("creditor name is on the blocked list")
        if self.name_tokens:
            tokens = set(c.creditor_name.split())
            if any(blocked <= tokens for blocked in self.name_tokens):
                return self.hit("creditor name contains a blocked name")
        return None


def canonical_account(spec: Any, where: str) -> dict[str, str]:
    """The account's canonical form, exactly as instructions store it (so fingerprints match)."""
    if not isinstance(spec, dict):
        raise ConfigError(f"{where}: an account is a mapping (iban | number+routing | wallet)")
    try:
        if "iban" in spec:
            return IbanAccount.parse(str(spec["iban"]), "/iban").as_dict()
        if "number" in spec:
            return UsAccount.parse(str(spec["number"]), str(spec.get("routing", "")), "").as_dict()
        if "wallet" in spec:
            return WalletAccount.parse(str(spec["wallet"]), "/wallet").as_dict()
    except Exception as exc:
        raise ConfigError(f"{where}: {getattr(exc, 'message', exc)}") from None
    raise ConfigError(f"{where}: an account needs iban, number+routing or wallet")


BUILTIN_RULES: tuple[type[Rule], ...] = (
    VelocityRule,
    AmountOutlierRule,
    NewBeneficiaryRule,
    DuplicateRule,
    RoundAmountRule,
    BusinessHoursRule,
    AccountChangeRule,
    BlocklistRule,
)
