"""The business unit's webhook receiver: verify, journal, de-duplicate, and misbehave as a scenario says.

Faults come from the same scenario files as the partner simulators' (``gateway_simulators.core.scenario``),
transport faults only, struck per event (the ``Gateway-Event-Id``) with a seeded draw, each at most
``times`` per event (default once) so the gateway's retries get through:

- ``latency`` — a slow answer (``delay``);
- ``hang`` — no answer for ``seconds``, then the connection is closed (the gateway times out first);
- ``reset`` — the connection is closed at once, no answer;
- ``http_error`` — an error status (``status``, 429 with ``Retry-After``).

A fault with ``after: true`` strikes after the business unit took the event (journalled, ``taken``):
the answer is lost or an error, so the gateway sends it again and the receiver sees a duplicate —
the at-least-once case receivers must de-duplicate. Without it the fault strikes before: the
event is not taken and the gateway must send it again.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

from gateway.errors import ConfigError, FieldError, SignatureError
from gateway.partners.signing import verify_signature
from gateway_simulators.core.scenario import (
    TRANSPORT_FAULTS,
    Fault,
    Scenario,
    ScenarioError,
    load_scenario,
    parse_scenario,
)

__all__ = [
    "SCENARIO_DIR",
    "BusinessUnit",
    "Receipt",
    "ReceiverSettings",
    "load_receiver_scenario",
    "parse_receiver_scenario",
    "receiver_scenario_names",
]

#: the business unit's shipped scenarios (apart from the partners': ``gateway qa run`` runs those)
SCENARIO_DIR = Path(str(resources.files("gateway_simulators.business_unit") / "scenarios"))

SIGNATURE_HEADER = "Gateway-Signature"
EVENT_ID_HEADER = "Gateway-Event-Id"
DELIVERY_ID_HEADER = "Gateway-Delivery-Id"

_KNOWN = frozenset({"secrets", "signature_tolerance_seconds", "scenario", "seed"})


def receiver_scenario_names() -> list[str]:
    return sorted(p.stem for p in SCENARIO_DIR.glob("*.yaml"))


def _check_receiver_scenario(scenario: Scenario) -> Scenario:
    """A receiver plays transport faults only; rules and the rest are a partner's."""
    for index, fault in enumerate(scenario.faults):
        if fault.kind not in TRANSPORT_FAULTS:
            message = f"a business unit plays transport faults only ({', '.join(sorted(TRANSPORT_FAULTS))})"
            raise ScenarioError(
                f"{scenario.source}: /faults/{index}/kind: {fault.kind!r}: {message}",
                errors=[FieldError(f"/faults/{index}/kind", message)],
                pointer=f"/faults/{index}/kind",
            )
    if scenario.rules:
        message = "a business unit takes every event: rules are for partner scenarios"
        raise ScenarioError(
            f"{scenario.source}: /rules: {message}", errors=[FieldError("/rules", message)], pointer="/rules"
        )
    return scenario


def parse_receiver_scenario(text: str | Mapping[str, Any], *, source: str = "<scenario>") -> Scenario:
    """A receiver scenario (YAML text or a mapping): the partner scenario format, transport faults only."""
    return _check_receiver_scenario(parse_scenario(text, source=source))


def load_receiver_scenario(name_or_path: str | Path) -> Scenario:
    """A shipped receiver scenario by name (``bu-flaky-receiver``), or a YAML file by path."""
    path = Path(name_or_path)
    if not path.suffix and not path.exists() and "/" not in str(name_or_path):
        path = SCENARIO_DIR / f"{name_or_path}.yaml"
        if not path.is_file():
            shipped = ", ".join(receiver_scenario_names())
            raise ScenarioError(f"no business-unit scenario named {str(name_or_path)!r}; shipped: {shipped}")
    return _check_receiver_scenario(load_scenario(path))


@dataclass(frozen=True)
class ReceiverSettings:
    """``simulators.business_unit`` settings; ``ConfigError`` says what to fix."""

    #: the endpoint's signing secrets (``whsec_…``); more can be added at run time (``PUT /_sim/secrets``)
    secrets: tuple[bytes, ...] = ()
    signature_tolerance_seconds: float = 300.0
    scenario: Scenario | None = None
    seed: int | None = None

    @classmethod
    def from_mapping(cls, settings: Mapping[str, Any]) -> ReceiverSettings:
        unknown = set(settings) - _KNOWN
        if unknown:
            raise ConfigError(f"business_unit simulator: unknown settings {sorted(unknown)}; known: {sorted(_KNOWN)}")
        secrets = settings.get("secrets") or ()
        if isinstance(secrets, str):
            secrets = (secrets,)
        if not isinstance(secrets, Sequence) or not all(isinstance(s, str) and s for s in secrets):
            raise ConfigError("business_unit simulator: secrets must be a list of webhook secrets (whsec_…)")
        tolerance = settings.get("signature_tolerance_seconds", 300)
        if isinstance(tolerance, bool) or not isinstance(tolerance, int | float) or tolerance < 0:
            raise ConfigError("business_unit simulator: signature_tolerance_seconds must be a number >= 0")
        scenario = settings.get("scenario")
        if isinstance(scenario, Mapping):
            scenario = parse_receiver_scenario(scenario, source="simulators.business_unit.scenario")
        elif scenario is not None and not isinstance(scenario, Scenario):
            scenario = load_receiver_scenario(str(scenario))
        elif isinstance(scenario, Scenario):
            scenario = _check_receiver_scenario(scenario)
        seed = settings.get("seed")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise ConfigError("business_unit simulator: seed must be a whole number")
        return cls(tuple(s.encode() for s in secrets), float(tolerance), scenario, seed)


@dataclass
class Receipt:
    """One webhook request as the business unit saw it (``GET /_sim/journal``)."""

    seq: int
    at: str
    path: str
    event_id: str | None = None
    delivery_id: str | None = None
    instruction_id: str | None = None
    #: the event's place in its instruction's history (``sequence`` of the body)
    sequence: int | None = None
    status: str | None = None
    #: the signature checked out with one of the secrets
    verified: bool = False
    #: the business unit took the event (it was verified and no fault struck first)
    taken: bool = False
    #: it had taken this event id before (a retry or a redelivery)
    duplicate: bool = False
    #: ``accepted``, ``duplicate``, ``refused`` (signature), ``bad_request``, ``failed`` (error sent), ``dropped``
    outcome: str = ""
    http_status: int | None = None
    faults: list[str] = field(default_factory=list)
    detail: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


_FILTERS = ("event_id", "delivery_id", "instruction_id", "status", "outcome")


class BusinessUnit:
    """The receiver's state: secrets, scenario, journal, and the events taken (first receipt of each)."""

    def __init__(self, settings: ReceiverSettings) -> None:
        self.settings = settings
        self.secrets: tuple[bytes, ...] = settings.secrets
        self.scenario = settings.scenario
        self.journal: list[Receipt] = []
        #: event id → the receipt that took it first
        self.events: dict[str, Receipt] = {}
        self._hits: Counter[tuple[str, int]] = Counter()
        self._streams: dict[tuple[str, str], random.Random] = {}

    @property
    def seed(self) -> int:
        if self.settings.seed is not None:
            return self.settings.seed
        return self.scenario.seed if self.scenario is not None and self.scenario.seed is not None else 0

    def reset(self) -> None:
        """Forget the journal, the events taken and the fault counters (secrets and scenario stay)."""
        self.journal.clear()
        self.events.clear()
        self._hits.clear()
        self._streams.clear()

    def use_scenario(self, scenario: Scenario | None) -> None:
        self.scenario = scenario
        self._hits.clear()
        self._streams.clear()

    def record(self, path: str) -> Receipt:
        receipt = Receipt(seq=len(self.journal) + 1, at=datetime.now(UTC).isoformat(), path=path)
        self.journal.append(receipt)
        return receipt

    def strike(self, subject: str, *, after: bool) -> tuple[tuple[int, Fault], ...]:
        """The transport faults drawn for this request (seeded per event), in the scenario's order.

        A fault counts against its ``times`` only once it is played (``played``): one that never
        got its chance (an earlier fault already ended the request) may strike a later attempt.
        """
        if self.scenario is None:
            return ()
        rng = self._streams.setdefault(
            (subject, str(after)), random.Random(f"{self.seed}:{subject}:{'after' if after else 'before'}")
        )
        hits: list[tuple[int, Fault]] = []
        for index, fault in enumerate(self.scenario.faults):
            if fault.after != after:
                continue
            draw = rng.random()
            if fault.times is not None and self._hits[(subject, index)] >= fault.times:
                continue
            if draw < fault.probability:
                hits.append((index, fault))
        return tuple(hits)

    def played(self, subject: str, index: int) -> None:
        self._hits[(subject, index)] += 1

    def stream(self, subject: str) -> random.Random:
        return self._streams.setdefault((subject, "delay"), random.Random(f"{self.seed}:{subject}:delay"))

    def verify(self, headers: Mapping[str, str], body: bytes) -> str | None:
        """``None`` when one of the secrets signed ``body``; else why not."""
        if not self.secrets:
            return "no secret configured (settings secrets, or PUT /_sim/secrets)"
        reason = "signature does not match"
        for secret in self.secrets:
            try:
                verify_signature(
                    secret,
                    body,
                    headers.get(SIGNATURE_HEADER),
                    tolerance=self.settings.signature_tolerance_seconds,
                )
            except SignatureError as exc:
                reason = exc.message
                continue
            return None
        return reason

    def take(self, receipt: Receipt, body: bytes) -> str | None:
        """Read the event; ``None`` if it is one, else why it is not."""
        try:
            event = json.loads(body)
        except ValueError:
            return "the body is not JSON"
        if not isinstance(event, dict):
            return "the body is not a JSON object"
        sequence = event.get("sequence")
        receipt.instruction_id = event.get("instruction_id") if isinstance(event.get("instruction_id"), str) else None
        receipt.sequence = sequence if isinstance(sequence, int) and not isinstance(sequence, bool) else None
        receipt.status = event.get("status") if isinstance(event.get("status"), str) else None
        if receipt.event_id is None:
            return f"the {EVENT_ID_HEADER} header is missing"
        receipt.taken = True
        receipt.duplicate = receipt.event_id in self.events
        self.events.setdefault(receipt.event_id, receipt)
        return None

    def select(self, filters: Mapping[str, str]) -> list[Receipt]:
        """Receipts matching every filter (``event_id``, ``instruction_id``, ``status``, ``outcome``…,
        ``fault`` — that fault struck — ``since`` — after that journal number)."""
        wanted = dict(filters)
        since = int(wanted.pop("since", 0) or 0)
        fault = wanted.pop("fault", None)
        unknown = set(wanted) - set(_FILTERS)
        if unknown:
            raise KeyError(sorted(unknown)[0])
        out = [r for r in self.journal if r.seq > since and (not fault or fault in r.faults)]
        for name, value in wanted.items():
            out = [r for r in out if str(getattr(r, name)) == value]
        return out

    def by_instruction(self) -> dict[str, list[dict[str, Any]]]:
        """Each instruction's events as taken, once each, ordered by ``sequence``: the order a receiver recovers."""
        grouped: dict[str, list[Receipt]] = {}
        for receipt in self.events.values():
            grouped.setdefault(receipt.instruction_id or "", []).append(receipt)
        return {
            key: [
                {"event_id": r.event_id, "sequence": r.sequence, "status": r.status, "first_seen": r.seq}
                for r in sorted(receipts, key=lambda r: r.sequence or 0)
            ]
            for key, receipts in sorted(grouped.items())
        }

    def late_events(self) -> int:
        """Events first taken after a later event of the same instruction (a receiver orders by ``sequence``)."""
        highest: dict[str, int] = {}
        late = 0
        for receipt in sorted(self.events.values(), key=lambda r: r.seq):
            key, sequence = receipt.instruction_id or "", receipt.sequence or 0
            if sequence < highest.get(key, 0):
                late += 1
            highest[key] = max(highest.get(key, 0), sequence)
        return late

    async def pause(self, fault: Fault, subject: str) -> None:
        if fault.kind == "latency":
            await asyncio.sleep(fault.delay.sample(self.stream(subject)))
        elif fault.kind == "hang":
            await asyncio.sleep(fault.seconds)
