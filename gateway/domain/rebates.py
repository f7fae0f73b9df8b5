"""Rebate programs as data (``config/rebates.yaml``) and the arithmetic of tiers, rates and caps.

A program gives distributors (by name, or a tier group of them) a share of their
volume per period (a calendar month or quarter, UTC). Volume is counted per
currency in minor units: ``invoiced`` (receivables raised) or ``collected``
(receipt money applied to their invoices). Tiers start at a volume (major units
of the volume's currency) and carry a percentage rate:

* ``retroactive`` — crossing a tier applies its (higher) rate to the whole
  period's volume;
* ``marginal`` — each rate applies only to the volume inside its band.

A cap (per currency, major units) bounds a period's rebate. There is no unit
measure in the gateway (receivables carry amounts, not quantities), so there is
no fixed-per-unit rate. Amounts round half up to the currency's minor unit.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from gateway.domain.money import CurrencyError, minor_units, validate_currency

__all__ = [
    "BASES",
    "Program",
    "ProgramError",
    "Tier",
    "parse_period",
    "parse_programs",
    "period_of",
    "rebate_amount",
]

BASES = ("invoiced", "collected")
KINDS = ("retroactive", "marginal")
PERIODS = ("month", "quarter")
SETTLEMENTS = ("credit_note", "payout")

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_PERIOD_RE = re.compile(r"^(2\d{3})-(?:Q([1-4])|(0[1-9]|1[0-2]))$")  # years 2000-2999
_PERCENT_RE = re.compile(r"^(0|[1-9][0-9]?|100)(\.[0-9]{1,4})?%$")
_AMOUNT_RE = re.compile(r"^(0|[1-9][0-9]{0,15})(\.[0-9]{1,6})?$")


class ProgramError(ValueError):
    """A rebate program file that cannot be used; the message is one line naming the key."""


@dataclass(frozen=True, slots=True)
class Tier:
    start: Decimal  # major units of the volume's currency
    rate: Decimal  # a fraction: 2.5% is 0.025


@dataclass(frozen=True, slots=True)
class Program:
    id: str
    distributors: tuple[str, ...]
    period: str  # month | quarter
    basis: str  # invoiced | collected
    kind: str  # retroactive | marginal
    settlement: str  # credit_note | payout
    tiers: tuple[Tier, ...]
    caps: Mapping[str, Decimal]  # currency -> major units
    payout: Mapping[str, Any] | None = None  # business_unit, debtor, creditors (settlement: payout)

    def to_minor(self, major: Decimal, currency: str) -> int:
        """Major units of ``currency`` (a tier start, a cap) in minor units."""
        return int((major * (10 ** minor_units(currency))).to_integral_value(ROUND_HALF_UP))

    def rate_at(self, volume_minor: int, currency: str) -> Decimal:
        """The rate of the tier ``volume_minor`` has reached (0 below the first tier)."""
        rate = Decimal(0)
        for tier in self.tiers:
            if volume_minor >= self.to_minor(tier.start, currency):
                rate = tier.rate
        return rate

    def cap_minor(self, currency: str) -> int | None:
        cap = self.caps.get(currency)
        return None if cap is None else self.to_minor(cap, currency)

    def accrual(self, volume_minor: int, total_minor: int, accrued_minor: int, currency: str) -> int:
        """What ``volume_minor`` more (the period now at ``total_minor``) accrues: at the tier reached, to the cap."""
        add = _round(Decimal(volume_minor) * self.rate_at(total_minor, currency))
        cap = self.cap_minor(currency)
        return add if cap is None else max(0, min(add, cap - accrued_minor))

    def amount(self, volume_minor: int, currency: str) -> int:
        """The period's rebate on ``volume_minor`` (capped), in minor units."""
        return rebate_amount(self, volume_minor, currency)


def _round(value: Decimal) -> int:
    return int(value.to_integral_value(ROUND_HALF_UP))


def rebate_amount(program: Program, volume_minor: int, currency: str) -> int:
    if volume_minor <= 0:
        return 0
    if program.kind == "retroactive":
        raw = Decimal(volume_minor) * program.rate_at(volume_minor, currency)
    else:
        raw = Decimal(0)
        starts = [program.to_minor(t.start, currency) for t in program.tiers]
        for i, tier in enumerate(program.tiers):
            low = starts[i]
            high = starts[i + 1] if i + 1 < len(starts) else None
            band = (min(volume_minor, high) if high is not None else volume_minor) - low
            if band > 0:
                raw += Decimal(band) * tier.rate
    amount = _round(raw)
    cap = program.cap_minor(currency)
    return amount if cap is None else min(amount, cap)


# -- periods ---------------------------------------------------------------------------------------


def parse_period(text: str) -> tuple[str, datetime, datetime]:
    """``2026-Q4`` or ``2026-11`` → (kind, start, end) in UTC (end exclusive); ValueError otherwise."""
    m = _PERIOD_RE.match(text or "")
    if m is None:
        raise ValueError(f"period {text!r}: use YYYY-Qn (a quarter) or YYYY-MM (a month), year 2000-2999")
    year = int(m.group(1))
    if m.group(2):
        first = (int(m.group(2)) - 1) * 3 + 1
        months, kind = 3, "quarter"
    else:
        first, months, kind = int(m.group(3)), 1, "month"
    start = datetime(year, first, 1, tzinfo=UTC)
    last = first + months
    end = datetime(year + (last - 1) // 12, (last - 1) % 12 + 1, 1, tzinfo=UTC)
    return kind, start, end


def period_of(kind: str, at: datetime) -> str:
    """The rebate period (``YYYY-MM`` or ``YYYY-Qn``) an instant falls in."""
    at = at.astimezone(UTC)
    if kind == "quarter":
        return f"{at.year:04d}-Q{(at.month - 1) // 3 + 1}"
    return f"{at.year:04d}-{at.month:02d}"


# -- the program file ------------------------------------------------------------------------------


def _fail(where: str, what: str) -> ProgramError:
    return ProgramError(f"{where}: {what}")


def _choice(doc: Mapping[str, Any], key: str, at: str, options: Sequence[str], default: str | None = None) -> str:
    value = doc.get(key, default)
    if value not in options:
        raise _fail(f"{at}.{key}", f"must be one of {', '.join(options)} (got {value!r})")
    return str(value)


def _amount(value: Any, where: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, (str, int)) or not _AMOUNT_RE.match(str(value)):
        raise _fail(where, f'must be an amount in major units as a string, e.g. "10000.00" (got {value!r})')
    return Decimal(str(value))


def _rate(value: Any, where: str) -> Decimal:
    if not isinstance(value, str) or not _PERCENT_RE.match(value):
        raise _fail(where, f'must be a percentage such as "2.5%" (got {value!r})')
    try:
        return Decimal(value[:-1]) / 100
    except InvalidOperation:
        raise _fail(where, f'must be a percentage such as "2.5%" (got {value!r})') from None


def _program(doc: Any, at: str, groups: Mapping[str, tuple[str, ...]]) -> Program:
    if not isinstance(doc, dict):
        raise _fail(at, "must be a mapping")
    known = {"id", "distributors", "group", "period", "basis", "tiers", "tier_mode", "caps", "settlement", "payout"}
    for key in doc:
        if key not in known:
            raise _fail(f"{at}.{key}", f"unknown key (known: {', '.join(sorted(known))})")
    pid = doc.get("id")
    if not isinstance(pid, str) or not _NAME_RE.match(pid):
        raise _fail(f"{at}.id", "must be a name of letters, digits, '.', '_' or '-'")
    if ("distributors" in doc) == ("group" in doc):
        raise _fail(at, "name either distributors (a list) or group (a tier group), not both or neither")
    if "group" in doc:
        if doc["group"] not in groups:
            raise _fail(f"{at}.group", f"no tier group {doc['group']!r} under groups")
        names = groups[doc["group"]]
    else:
        names = _names(doc["distributors"], f"{at}.distributors")
    tiers_doc = doc.get("tiers")
    if not isinstance(tiers_doc, list) or not tiers_doc:
        raise _fail(f"{at}.tiers", "must be a non-empty list of {from, rate}")
    tiers: list[Tier] = []
    for i, t in enumerate(tiers_doc):
        where = f"{at}.tiers[{i}]"
        if not isinstance(t, dict) or set(t) != {"from", "rate"}:
            raise _fail(where, "must be a mapping with exactly from and rate")
        tier = Tier(_amount(t["from"], f"{where}.from"), _rate(t["rate"], f"{where}.rate"))
        if tiers and tier.start <= tiers[-1].start:
            raise _fail(f"{where}.from", "tiers must start at increasing volumes")
        tiers.append(tier)
    caps_doc = doc.get("caps", {}) or {}
    if not isinstance(caps_doc, dict):
        raise _fail(f"{at}.caps", "must be a mapping of currency to amount")
    caps: dict[str, Decimal] = {}
    for cur, value in caps_doc.items():
        try:
            validate_currency(cur)
        except CurrencyError as exc:
            raise _fail(f"{at}.caps.{cur}", str(exc)) from None
        caps[cur] = _amount(value, f"{at}.caps.{cur}")
    settlement = _choice(doc, "settlement", at, SETTLEMENTS, "credit_note")
    payout = _payout(doc.get("payout"), f"{at}.payout", names) if settlement == "payout" else None
    return Program(
        payout=payout,
        id=pid,
        distributors=names,
        period=_choice(doc, "period", at, PERIODS),
        basis=_choice(doc, "basis", at, BASES),
        kind=_choice(doc, "tier_mode", at, KINDS, "retroactive"),
        settlement=settlement,
        tiers=tuple(tiers),
        caps=caps,
    )


def _payout(doc: Any, at: str, names: Sequence[str]) -> dict[str, Any]:
    """The payout instructions' business unit, debtor and one creditor per distributor.

    The parties are instruction-contract parties ({name, account: {iban}}); the
    contract checks them when the settlement builds the instruction.
    """
    if not isinstance(doc, dict):
        raise _fail(at, "settlement: payout needs payout: {business_unit, debtor, creditors}")
    for key in doc:
        if key not in ("business_unit", "debtor", "creditors"):
            raise _fail(f"{at}.{key}", "unknown key (known: business_unit, creditors, debtor)")
    if not isinstance(doc.get("business_unit"), str) or not doc["business_unit"]:
        raise _fail(f"{at}.business_unit", "must name the business unit that pays the rebates")
    if not isinstance(doc.get("debtor"), dict):
        raise _fail(f"{at}.debtor", "must be a party {name, account: {iban}}")
    creditors = doc.get("creditors")
    if not isinstance(creditors, dict):
        raise _fail(f"{at}.creditors", "must map each distributor to a party {name, account: {iban}}")
    for name in names:
        if not isinstance(creditors.get(name), dict):
            raise _fail(f"{at}.creditors.{name}", "missing: the party the distributor's rebate is paid to")
    return dict(doc)


def _names(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        raise _fail(where, "must be a non-empty list of distributor names")
    for i, name in enumerate(value):
        if not isinstance(name, str) or not _NAME_RE.match(name):
            raise _fail(f"{where}[{i}]", f"{name!r} is not a distributor name")
    return tuple(value)


def parse_programs(doc: Mapping[str, Any], source: str = "rebates") -> dict[str, Program]:
    """The programs of a parsed ``rebates.yaml`` by id; ``ProgramError`` (one line, the key) otherwise.

    A distributor takes part in at most one program per basis, so a unit of
    volume accrues once.
    """
    for key in doc:
        if key not in ("version", "groups", "programs"):
            raise _fail(f"{source}: {key}", "unknown key (known: version, groups, programs)")
    if doc.get("version") != 1:
        raise _fail(f"{source}: version", "must be 1")
    groups_doc = doc.get("groups", {}) or {}
    if not isinstance(groups_doc, dict):
        raise _fail(f"{source}: groups", "must be a mapping of group name to distributor list")
    groups = {str(g): _names(v, f"{source}: groups.{g}") for g, v in groups_doc.items()}
    items = doc.get("programs", []) or []
    if not isinstance(items, list):
        raise _fail(f"{source}: programs", "must be a list")
    programs: dict[str, Program] = {}
    taken: dict[tuple[str, str], str] = {}
    for i, item in enumerate(items):
        program = _program(item, f"{source}: programs[{i}]", groups)
        if program.id in programs:
            raise _fail(f"{source}: programs[{i}].id", f"{program.id!r} is used twice")
        for name in program.distributors:
            other = taken.setdefault((name, program.basis), program.id)
            if other != program.id:
                raise _fail(
                    f"{source}: programs[{i}]",
                    f"distributor {name!r} is already in {other!r} on {program.basis} volume",
                )
        programs[program.id] = program
    return programs
