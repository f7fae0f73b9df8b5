"""The chart of accounts and the posting rules, as data (``config/ledger.yaml`` + plugins).

The chart names account patterns (``bu:{business_unit}:payables``) and their
types; an account is created the first time a rule posts to it.

Payment rules say, for each status, what the books hold for a payment in that
status (its *position*), counted from nothing. A transition posts the
difference between the position of the status it reaches and the one it left:
a transition that jumps over states (``routed → settled`` after a crash) posts
exactly what the skipped steps would have, a stale or duplicate one posts
nothing, and the books of a payment depend only on where it is, never on the
path its news took. Event rules (``fee``, and kinds plugins add through
``gateway_ledger_rules``) post their legs as they are.

A leg is ``{debit: ACCOUNT}`` or ``{credit: ACCOUNT}`` with an ``amount``
expression (default ``amount``): a sum of ``[N *] variable`` terms. A rule is
refused at start-up unless its debits and credits are the same expression, so
it cannot post an unbalanced entry whatever the amounts.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.config import Settings, read_yaml_file
from gateway.domain.status import TRANSITIONS, Status
from gateway.ledger.errors import LedgerError, LedgerRulesError
from gateway.ledger.model import ACCOUNT_TYPES, Entry, Posting, net_postings

__all__ = ["DEFAULT_RULES_FILE", "AccountPattern", "Leg", "Rules", "load_ledger", "load_rules", "parse_rules"]

DEFAULT_RULES_FILE = Path(__file__).resolve().parents[2] / "config" / "ledger.yaml"

#: the fields an account template may use, and where they come from
FIELDS = frozenset({"business_unit", "adapter", "currency", "distributor"})
#: fields only events know (a payment's lifecycle has no distributor)
_EVENT_ONLY = frozenset({"distributor"})
#: statuses in which a payment has no partner yet: their rules cannot name ``{adapter}``
_NO_ADAPTER = frozenset({Status.RECEIVED, Status.ACCEPTED, Status.HELD})
_PLACEHOLDER = re.compile(r"\{([a-z_]+)\}")
_TERM = re.compile(r"\s*([+-])?\s*(?:(\d+)\s*\*\s*)?([a-z_]+)\s*")


def _slot(value: str) -> str:
    """A field value as it appears in an account name (``:`` separates the name's parts)."""
    return value.replace("%", "%25").replace(":", "%3A")


@dataclass(frozen=True)
class AccountPattern:
    """A family of accounts: ``bu:{business_unit}:payables`` of type liability."""

    template: str
    type: str
    fields: tuple[str, ...]
    regex: re.Pattern[str]

    @classmethod
    def parse(cls, template: str, type_: Any, where: str) -> AccountPattern:
        if type_ not in ACCOUNT_TYPES:
            raise LedgerRulesError(f"{where}: type must be one of {', '.join(ACCOUNT_TYPES)}, not {type_!r}")
        fields = tuple(_PLACEHOLDER.findall(template))
        unknown = sorted(set(fields) - FIELDS)
        if unknown:
            raise LedgerRulesError(f"{where}: unknown field {{{unknown[0]}}}; use {', '.join(sorted(FIELDS))}")
        if not re.fullmatch(r"[a-z0-9_:{}.-]+", template):
            raise LedgerRulesError(f"{where}: an account pattern is lower-case letters, digits, _ . - : and {{fields}}")
        parts = re.split(r"(\{[a-z_]+\})", template)
        body = "".join(f"(?P<{p[1:-1]}>[^:]+)" if _PLACEHOLDER.fullmatch(p) else re.escape(p) for p in parts)
        return cls(template, str(type_), fields, re.compile(body))

    def render(self, values: Mapping[str, str]) -> str:
        return _PLACEHOLDER.sub(lambda m: _slot(values[m.group(1)]), self.template)


@dataclass(frozen=True)
class Leg:
    """One side of a rule: ``sign`` +1 debit / -1 credit, an account pattern, an amount expression."""

    sign: int
    account: AccountPattern
    terms: tuple[tuple[str, int], ...]  # (variable, coefficient)

    def amount(self, variables: Mapping[str, int]) -> int:
        return self.sign * sum(k * variables[name] for name, k in self.terms)


def _expression(text: Any, variables: frozenset[str], where: str) -> tuple[tuple[str, int], ...]:
    if not isinstance(text, str) or not text.strip():
        raise LedgerRulesError(f"{where}: amount must be an expression such as 'amount' or '2 * fee'")
    terms: dict[str, int] = {}
    pos = 0
    while pos < len(text):
        m = _TERM.match(text, pos)
        if not m or m.end() == pos or (pos and not m.group(1)):
            raise LedgerRulesError(
                f"{where}: cannot read amount {text!r} (terms like 'amount', '2 * fee', joined by + or -)"
            )
        sign = -1 if m.group(1) == "-" else 1
        name = m.group(3)
        if name not in variables:
            raise LedgerRulesError(f"{where}: unknown amount {name!r}; this rule has {', '.join(sorted(variables))}")
        terms[name] = terms.get(name, 0) + sign * int(m.group(2) or 1)
        pos = m.end()
    return tuple(sorted((n, k) for n, k in terms.items() if k))


@dataclass(frozen=True)
class Rules:
    """The chart and the rules, checked; builds entries for transitions and events."""

    chart: Mapping[str, AccountPattern]
    lifecycle: Mapping[Status, tuple[Leg, ...]]
    events: Mapping[str, tuple[Leg, ...]]
    event_variables: Mapping[str, frozenset[str]]
    source: str = ""
    _types: dict[str, tuple[str, str | None]] = field(default_factory=dict, compare=False, repr=False)
    _shapes: dict[tuple[Any, ...], tuple[tuple[tuple[str, int], ...], str]] = field(
        default_factory=dict, compare=False, repr=False
    )

    # -- accounts ------------------------------------------------------------------------------

    def account_info(self, name: str) -> tuple[str, str | None]:
        """(type, business unit or None) of an account name; ``LedgerRulesError`` if no pattern matches."""
        found = self._types.get(name)
        if found is None:
            for pattern in self.chart.values():
                m = pattern.regex.fullmatch(name)
                if m:
                    bu = m.groupdict().get("business_unit")
                    found = (pattern.type, bu.replace("%3A", ":").replace("%25", "%") if bu else None)
                    break
            else:
                raise LedgerRulesError(f"account {name!r} matches no pattern of the chart")
            self._types[name] = found
        return found

    def pattern_of(self, name: str) -> AccountPattern:
        """The chart pattern an account name belongs to (``LedgerRulesError`` if none)."""
        for pattern in self.chart.values():
            if pattern.regex.fullmatch(name):
                return pattern
        raise LedgerRulesError(f"account {name!r} matches no pattern of the chart")

    # -- payments ------------------------------------------------------------------------------

    def position(
        self, status: Status, *, business_unit: str, adapter: str | None, currency: str, amount: int
    ) -> list[Posting]:
        """What the books hold for a payment in ``status``, counted from nothing."""
        legs = self.lifecycle.get(status, ())
        if not legs:
            return []
        values = {"business_unit": business_unit, "adapter": adapter or "unknown", "currency": currency}
        variables = {"amount": amount}
        return [Posting(leg.account.render(values), currency, leg.amount(variables)) for leg in legs]

    def transition(
        self,
        previous: Status,
        status: Status,
        *,
        instruction_id: str,
        business_unit: str,
        currency: str,
        amount: int,
        previous_adapter: str | None,
        adapter: str | None,
    ) -> Entry | None:
        """The entry for an applied ``previous → status`` (None when the books do not change)."""
        key = (previous, status, business_unit, currency, previous_adapter, adapter)
        shape = self._shapes.get(key)
        if shape is None:  # the postings of one minor unit; payment positions are linear in the amount
            ctx = {"business_unit": business_unit, "currency": currency, "amount": 1}
            before = self.position(previous, adapter=previous_adapter, **ctx)
            after = self.position(status, adapter=adapter, **ctx)
            lines = net_postings([*after, *(Posting(p.account, p.currency, -p.amount) for p in before)])
            shape = (tuple((p.account, p.amount) for p in lines), f"{previous.value} → {status.value}")
            if len(self._shapes) < 10_000:
                self._shapes[key] = shape
        accounts, memo = shape
        if not accounts:
            return None
        postings = tuple(Posting(account, currency, k * amount) for account, k in accounts)
        return Entry("payment", postings, memo, instruction_id, business_unit)

    # -- events --------------------------------------------------------------------------------

    def event(
        self,
        kind: str,
        *,
        currency: str,
        amounts: Mapping[str, int],
        business_unit: str | None = None,
        adapter: str | None = None,
        instruction_id: str | None = None,
        memo: str = "",
        distributor: str | None = None,
    ) -> Entry:
        """The entry an event of ``kind`` posts (``LedgerError`` for a kind no rule knows)."""
        legs = self.events.get(kind)
        if legs is None:
            raise LedgerError(f"no ledger rule for event kind {kind!r} (known: {', '.join(sorted(self.events))})")
        missing = sorted(self.event_variables[kind] - set(amounts))
        if missing:
            raise LedgerError(f"event {kind!r} needs amount {missing[0]!r}")
        values = {
            "business_unit": business_unit or "unknown",
            "adapter": adapter or "unknown",
            "currency": currency,
            "distributor": distributor or "unknown",
        }
        lines = net_postings(Posting(leg.account.render(values), currency, leg.amount(amounts)) for leg in legs)
        return Entry(kind, lines, memo or kind, instruction_id, business_unit)

    # -- description ---------------------------------------------------------------------------

    def transition_table(self) -> list[tuple[Status, Status, list[Posting]]]:
        """Every legal transition that posts, with its postings for an example payment of 100."""
        rows = []
        for previous, nexts in TRANSITIONS.items():
            for status in sorted(nexts, key=list(Status).index):
                entry = self.transition(
                    previous,
                    status,
                    instruction_id="example",
                    business_unit="{business_unit}",
                    currency="EUR",
                    amount=100,
                    previous_adapter="{adapter}",
                    adapter="{adapter}",
                )
                if entry:
                    rows.append((previous, status, list(entry.postings)))
        return rows


def _legs(
    raw: Any,
    chart: Mapping[str, AccountPattern],
    variables: frozenset[str],
    where: str,
    no_adapter: bool = False,
    lifecycle: bool = False,
) -> tuple[Leg, ...]:
    if not isinstance(raw, list):
        raise LedgerRulesError(f"{where}: must be a list of legs ({{debit: ACCOUNT}} or {{credit: ACCOUNT}})")
    legs = []
    for i, item in enumerate(raw):
        at = f"{where}[{i}]"
        if not isinstance(item, dict) or len({"debit", "credit"} & set(item)) != 1:
            raise LedgerRulesError(f"{at}: a leg has exactly one of debit or credit")
        extra = sorted(set(item) - {"debit", "credit", "amount"})
        if extra:
            raise LedgerRulesError(f"{at}: unknown key {extra[0]!r}")
        side = "debit" if "debit" in item else "credit"
        template = item[side]
        if template not in chart:
            raise LedgerRulesError(f"{at}: account {template!r} is not in the chart (accounts:)")
        if no_adapter and "adapter" in chart[template].fields:
            raise LedgerRulesError(f"{at}: {template!r} names the adapter, which a payment in this status has not got")
        if lifecycle and _EVENT_ONLY & set(chart[template].fields):
            raise LedgerRulesError(f"{at}: {template!r} names a distributor, which a payment has not got")
        terms = _expression(item.get("amount", "amount"), variables, at)
        legs.append(Leg(1 if side == "debit" else -1, chart[template], terms))
    debits: dict[str, int] = {}
    for leg in legs:
        for name, k in leg.terms:
            debits[name] = debits.get(name, 0) + leg.sign * k
    off = {n: k for n, k in debits.items() if k}
    if off:
        shown = " + ".join(f"{k} * {n}" for n, k in sorted(off.items()))
        raise LedgerRulesError(f"{where}: debits and credits differ by {shown}, so it could post an unbalanced entry")
    return tuple(legs)


def parse_rules(doc: Mapping[str, Any], source: str, plugin_rules: Iterable[Mapping[str, Any]] = ()) -> Rules:
    """Check a rules document (and plugins' additions); ``LedgerRulesError`` naming the first problem."""
    extra = sorted(set(doc) - {"version", "accounts", "lifecycle", "events"})
    if extra:
        raise LedgerRulesError(f"{source}: unknown key {extra[0]!r}")
    if doc.get("version") != 1:
        raise LedgerRulesError(f"{source}: version must be 1")
    chart: dict[str, AccountPattern] = {}
    docs = [(source, doc), *((f"plugin rules #{i + 1}", dict(p)) for i, p in enumerate(plugin_rules))]
    for where, d in docs:
        accounts = d.get("accounts", {})
        if not isinstance(accounts, dict):
            raise LedgerRulesError(f"{where}: accounts must map a pattern to its type")
        for template, type_ in accounts.items():
            if template in chart and chart[template].type != type_:
                raise LedgerRulesError(f"{where}: accounts.{template} is already a {chart[template].type} account")
            chart[template] = AccountPattern.parse(str(template), type_, f"{where}: accounts.{template}")
    lifecycle_raw = doc.get("lifecycle")
    if not isinstance(lifecycle_raw, dict):
        raise LedgerRulesError(f"{source}: lifecycle must map each status to its legs")
    unknown = sorted(set(lifecycle_raw) - {s.value for s in Status})
    if unknown:
        raise LedgerRulesError(f"{source}: lifecycle.{unknown[0]} is not a status")
    missing = [s.value for s in Status if s.value not in lifecycle_raw]
    if missing:
        raise LedgerRulesError(f"{source}: lifecycle.{missing[0]} is missing (use [] for a status that holds nothing)")
    amount = frozenset({"amount"})
    lifecycle = {
        s: _legs(lifecycle_raw[s.value] or [], chart, amount, f"{source}: lifecycle.{s.value}", s in _NO_ADAPTER, True)
        for s in Status
    }
    events: dict[str, tuple[Leg, ...]] = {}
    variables: dict[str, frozenset[str]] = {}
    for where, d in docs:
        raw_events = d.get("events", {})
        if not isinstance(raw_events, dict):
            raise LedgerRulesError(f"{where}: events must map an event kind to its rule")
        for kind, rule in raw_events.items():
            at = f"{where}: events.{kind}"
            if kind in events:
                raise LedgerRulesError(f"{at}: event kind {kind!r} already has a rule")
            if not isinstance(rule, dict) or "legs" not in rule:
                raise LedgerRulesError(f"{at}: a rule is {{amounts: [names], legs: [...]}}")
            names = rule.get("amounts", ["amount"])
            if not (isinstance(names, list) and names and all(isinstance(n, str) and n.isidentifier() for n in names)):
                raise LedgerRulesError(f"{at}.amounts: a list of amount names")
            variables[str(kind)] = frozenset(names)
            events[str(kind)] = _legs(rule["legs"], chart, variables[str(kind)], f"{at}.legs")
    return Rules(chart, lifecycle, events, variables, source)


def load_rules(path: str | Path | None = None, plugin_rules: Sequence[Mapping[str, Any]] = ()) -> Rules:
    """The rules of ``path`` (default: the shipped ``config/ledger.yaml``) plus plugins' rules."""
    file = Path(path) if path else DEFAULT_RULES_FILE
    return parse_rules(read_yaml_file(file, "ledger rules"), str(file), plugin_rules)


def load_ledger(settings: Settings, plugin_rules: Sequence[Mapping[str, Any]] = ()) -> Rules | None:
    """The rules a gateway posts by (``ledger.file`` + plugins), or None when ``ledger.enabled`` is false."""
    if not settings.section("ledger").get("enabled", True):
        return None
    return load_rules(settings.ledger_file, plugin_rules)
