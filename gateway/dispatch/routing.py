"""Routing: which partner carries an instruction, and why.

Ordered rules (``config/routing.yaml``) map business unit, type, currency,
creditor country, account kind, amount range, urgency and requested date to a
preferred partner list. The adapters' declared capabilities filter that list;
partners whose circuit breaker is open are skipped; partners that already
refused the payment with "try elsewhere" are excluded; partners the business
unit's staged rollout keeps out (``off``, ``shadow``, or outside a canary's
share by reference hash) are skipped (``gateway.store.rollout``), and when a
hand-off adapter is configured (``rollout.handoff_adapter``, e.g. ``legacy_file``)
the payment a partner is kept from goes to it instead: the old system pays it.
Partners in ``shadow`` mode that could carry the payment are named on the
decision (``shadow``), for the dispatcher's rehearsal. Every decision carries
its reason (the rule, each partner skipped and why) and is recorded on the
instruction's events. ``gateway route explain FILE.json`` shows a decision
without sending anything.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Any

from gateway.config import check_document, read_yaml_file
from gateway.errors import ConfigError
from gateway.partners.adapter import Adapter, PaymentOrder
from gateway.store.rollout import RolloutMode, canary_takes

__all__ = ["CircuitBreaker", "RouteDecision", "Router", "RoutingRule", "load_routing"]


@dataclass(frozen=True)
class RoutingRule:
    """One rule: conditions (all must hold; absent means any) and the preferred partners."""

    name: str
    partners: tuple[str, ...]
    business_units: frozenset[str] = frozenset()
    types: frozenset[str] = frozenset()
    currencies: frozenset[str] = frozenset()
    countries: frozenset[str] = frozenset()
    account_kinds: frozenset[str] = frozenset()
    urgency: str | None = None
    amount_min: Decimal | None = None
    amount_max: Decimal | None = None
    requested_within_days: int | None = None

    def matches(self, order: PaymentOrder, today: date) -> bool:
        account = order.creditor.account
        checks = (
            not self.business_units or order.business_unit in self.business_units,
            not self.types or order.type in self.types,
            not self.currencies or order.money.currency in self.currencies,
            not self.countries or account.country in self.countries,
            not self.account_kinds or account.kind in self.account_kinds,
            self.urgency is None or order.urgency == self.urgency,
            self.amount_min is None or order.money.amount >= self.amount_min,
            self.amount_max is None or order.money.amount <= self.amount_max,
            self.requested_within_days is None
            or (order.requested_execution_date or today)
            <= date.fromordinal(today.toordinal() + self.requested_within_days),
        )
        return all(checks)


class CircuitBreaker:
    """Per-partner health: opened by consecutive transient failures, half-open after a pause.

    Closed: traffic flows. After ``failure_threshold`` transient failures in a
    row it opens for ``open_seconds``; then it is half-open and lets one probe
    through: a success closes it, a failure opens it again.
    """

    def __init__(
        self, failure_threshold: int = 5, open_seconds: float = 30.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.failure_threshold = failure_threshold
        self.open_seconds = open_seconds
        self.clock = clock
        self._failures: dict[str, int] = {}
        self._opened_at: dict[str, float] = {}
        self._probing: set[str] = set()
        #: wall-clock time of each partner's last open or close here, to agree with other processes (``share``)
        self._changed: dict[str, float] = {}

    def state(self, partner: str) -> str:
        opened = self._opened_at.get(partner)
        if opened is None:
            return "closed"
        if self.clock() - opened < self.open_seconds:
            return "open"
        return "half-open"

    def allows(self, partner: str) -> bool:
        """Whether to send to ``partner`` now (a half-open partner gets one probe at a time)."""
        state = self.state(partner)
        if state == "closed":
            return True
        if state == "half-open" and partner not in self._probing:
            self._probing.add(partner)
            return True
        return False

    def record_success(self, partner: str) -> None:
        self._failures.pop(partner, None)
        if self._opened_at.pop(partner, None) is not None:
            self._changed[partner] = time.time()
        self._probing.discard(partner)

    def record_failure(self, partner: str) -> None:
        self._probing.discard(partner)
        count = self._failures.get(partner, 0) + 1
        self._failures[partner] = count
        if count >= self.failure_threshold or partner in self._opened_at:
            self._opened_at[partner] = self.clock()
            self._changed[partner] = time.time()

    def share(self, shared: Mapping[str, tuple[float | None, float]]) -> dict[str, tuple[float | None, float]]:
        """Agree with other processes: ``shared`` is partner → (opened at, changed at), wall-clock seconds.

        The newest change wins: a circuit another process opened (or closed) later than
        this one's last change is adopted here; what changed here later is returned,
        for the caller to store for the others (``gateway.store.processes.share_circuits``).
        """
        now_wall, now = time.time(), self.clock()
        newer: dict[str, tuple[float | None, float]] = {}
        for partner in set(shared) | set(self._changed):
            mine = self._changed.get(partner)
            theirs = shared.get(partner)
            if theirs is not None and (mine is None or theirs[1] > mine):
                opened_wall, changed = theirs
                self._changed[partner] = changed
                if opened_wall is None:
                    self._opened_at.pop(partner, None)
                    self._failures.pop(partner, None)
                else:
                    self._opened_at[partner] = now - (now_wall - opened_wall)
            elif mine is not None and (theirs is None or mine > theirs[1]):
                opened = self._opened_at.get(partner)
                newer[partner] = (None if opened is None else now_wall - (now - opened), mine)
        return newer

    def snapshot(self) -> dict[str, str]:
        return {p: self.state(p) for p in sorted(set(self._failures) | set(self._opened_at))}


@dataclass(frozen=True)
class RouteDecision:
    """The chosen adapter (or none), the rule that applied, and every partner passed over with why."""

    adapter: str | None
    rule: str | None = None
    candidates: tuple[str, ...] = ()
    skipped: Mapping[str, str] = field(default_factory=dict)
    #: True when eligible partners exist but are all unhealthy right now: retry later, don't reject
    wait: bool = False
    #: True when ``adapter`` is the rollout's hand-off (the old system), taking what a partner was kept from
    handoff: bool = False
    #: partners in shadow mode that could carry the payment: rehearsed, never sent to (docs/go-live.md)
    shadow: tuple[str, ...] = ()

    @property
    def reason(self) -> str:
        """One sentence: where the payment goes, or why it goes nowhere, and every partner passed over."""
        passed = "; ".join(f"{name}: {why}" for name, why in self.skipped.items())
        channel = self.rule.removeprefix("channel ") if self.rule and self.rule.startswith("channel ") else None
        if self.adapter:
            if self.handoff:
                return f"routed to {self.adapter}, the rollout's hand-off to the old system (passed over {passed})"
            if channel:
                how = ", the channel the instruction asked for"
            elif self.rule:
                how = f" by rule {self.rule}"
            else:
                how = ", the first capable adapter (no routing rule matched)"
            return f"routed to {self.adapter}{how}" + (f" (passed over {passed})" if passed else "")
        if self.wait:
            return f"every adapter that could carry this payment is unhealthy right now ({passed}); waiting to retry"
        if channel:
            why = f"the instruction asked for channel {channel}"
        elif self.rule:
            why = f"rule {self.rule} matched"
        else:
            why = "no routing rule matched"
        if not self.candidates:
            return f"no adapter can carry this payment: {why}, and no adapter is enabled"
        return f"no adapter can carry this payment: {why}, and none of the candidates can ({passed})"

    def as_dict(self) -> dict[str, Any]:
        return {
            "adapter": self.adapter,
            "rule": self.rule,
            "candidates": list(self.candidates),
            "skipped": dict(self.skipped),
            "wait": self.wait,
            "handoff": self.handoff,
            "shadow": list(self.shadow),
            "reason": self.reason,
        }


class Router:
    """Applies the rules, capabilities, health and exclusions; see the module docstring."""

    def __init__(
        self, rules: Sequence[RoutingRule] = (), breaker: CircuitBreaker | None = None, handoff: str | None = None
    ) -> None:
        self.rules = tuple(rules)
        self.breaker = breaker or CircuitBreaker()
        #: the adapter taking the payments the staged rollout keeps from a partner (None: the rule's next partner)
        self.handoff = handoff

    def decide(
        self,
        order: PaymentOrder,
        adapters: Mapping[str, Adapter],
        *,
        channel: str | None = None,
        exclude: Collection[str] = (),
        today: date | None = None,
        probe: bool = True,
        rollout: Mapping[str, RolloutMode] | None = None,
    ) -> RouteDecision:
        """Choose a partner. ``probe=False`` (explain) never takes a half-open probe slot.

        ``rollout`` is the business unit's partner → mode; a partner not in it is live.
        """
        today = today or datetime.now().date()
        rule: RoutingRule | None = None
        if channel:
            candidates: tuple[str, ...] = (channel,)
            how = "channel"
        else:
            rule = next((r for r in self.rules if r.matches(order, today)), None)
            # the hand-off is the old system, not a partner to pick by name when no rule matched
            candidates = rule.partners if rule else tuple(sorted(a for a in adapters if a != self.handoff))
            how = rule.name if rule else None
        modes = rollout or {}
        shadow = tuple(
            name
            for name in candidates
            if (mode := modes.get(name)) is not None
            and mode.mode == "shadow"
            and name in adapters
            and name not in exclude
            and adapters[name].capabilities.refusal(order) is None
        )
        label = how if not channel else f"channel {channel}"
        skipped: dict[str, str] = {}
        unhealthy = False
        for name in candidates:
            adapter = adapters.get(name)
            if adapter is None:
                skipped[name] = "not enabled" if not channel else "channel is not an enabled adapter"
                continue
            if name in exclude:
                skipped[name] = "refused this payment before (try elsewhere)"
                continue
            refusal = adapter.capabilities.refusal(order)
            if refusal:  # before the rollout: a partner that could never carry it hands nothing off
                skipped[name] = refusal
                continue
            held_back = _rollout_holds_back(order, modes.get(name))
            if held_back:
                skipped[name] = held_back
                handoff = self._handoff_for(order, adapters, exclude)
                if handoff is not None:
                    return RouteDecision(handoff, label, candidates, skipped, handoff=True, shadow=shadow)
                continue
            healthy = self.breaker.allows(name) if probe else self.breaker.state(name) != "open"
            if not healthy:
                skipped[name] = f"circuit {self.breaker.state(name)}"
                unhealthy = True
                continue
            return RouteDecision(name, label, candidates, skipped, shadow=shadow)
        return RouteDecision(None, label, candidates, skipped, wait=unhealthy, shadow=shadow)

    def _handoff_for(
        self, order: PaymentOrder, adapters: Mapping[str, Adapter], exclude: Collection[str]
    ) -> str | None:
        """The hand-off adapter when it is configured, enabled and able to carry ``order``; else ``None``."""
        name = self.handoff
        adapter = adapters.get(name) if name else None
        if name is None or adapter is None or name in exclude or adapter.capabilities.refusal(order) is not None:
            return None
        return name


def _rollout_holds_back(order: PaymentOrder, mode: RolloutMode | None) -> str | None:
    """Why the business unit's rollout keeps this payment from the partner, or ``None``."""
    if mode is None or mode.mode == "live":
        return None
    if mode.mode == "canary":
        if canary_takes(order.reference, mode.percent or 0):
            return None
        return f"rollout canary {mode.percent}% for {order.business_unit}: this reference is outside the canary"
    return f"rollout {mode.mode} for {order.business_unit}"


def _rule(raw: Mapping[str, Any]) -> RoutingRule:
    match = raw.get("match") or {}

    def money(key: str) -> Decimal | None:
        return Decimal(match[key]) if key in match else None

    return RoutingRule(
        name=raw["name"],
        partners=tuple(raw["partners"]),
        business_units=frozenset(match.get("business_units", ())),
        types=frozenset(match.get("types", ())),
        currencies=frozenset(match.get("currencies", ())),
        countries=frozenset(match.get("countries", ())),
        account_kinds=frozenset(match.get("account_kinds", ())),
        urgency=match.get("urgency"),
        amount_min=money("amount_min"),
        amount_max=money("amount_max"),
        requested_within_days=match.get("requested_within_days"),
    )


def load_routing(path: str | Path | None, installed: Collection[str], handoff: str | None = None) -> Router:
    """Read and check the routing file; no file means "any capable adapter, by name".

    ``handoff`` is ``rollout.handoff_adapter``: it must be an installed adapter.
    """
    if handoff is not None and handoff not in installed:
        raise ConfigError(
            f"rollout.handoff_adapter: unknown adapter {handoff!r} "
            f"(installed: {', '.join(sorted(installed)) or 'none'})"
        )
    if path is None:
        return Router(handoff=handoff)
    file = Path(path)
    doc = read_yaml_file(file, "routing file")
    schema = json.loads(resources.files("gateway.dispatch").joinpath("routing_schema.json").read_text(encoding="utf-8"))
    check_document(doc, schema, str(file))
    rules = [_rule(r) for r in doc.get("rules", [])]
    for i, rule in enumerate(rules):
        for j, partner in enumerate(rule.partners):
            if partner not in installed:
                raise ConfigError(
                    f"{file}: rules.{i}.partners.{j}: unknown adapter {partner!r} "
                    f"(installed: {', '.join(sorted(installed)) or 'none'})"
                )
    names = [r.name for r in rules]
    if len(set(names)) != len(names):
        raise ConfigError(f"{file}: rule names must be unique")
    cb = doc.get("circuit_breaker") or {}
    breaker = CircuitBreaker(int(cb.get("failure_threshold", 5)), float(cb.get("open_seconds", 30)))
    return Router(rules, breaker, handoff)
