"""Settings every simulator built on the core takes (``simulators.<name>`` in the gateway config)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gateway.errors import ConfigError
from gateway_simulators.core.scenario import Rule, Scenario, legacy_rules, load_scenario, parse_scenario

__all__ = ["CoreSettings"]

_KNOWN = frozenset(
    {
        "request_secret",
        "callback_secret",
        "callback_delay",
        "settle_delay",
        "return_delay",
        "send_callbacks",
        "rules",
        "builtin_rules",
        "signature_tolerance_seconds",
        "callback_attempts",
        "callback_backoff",
        "callback_timeout",
        "callback_batch_window",
        "callback_batch_max",
        "callback_batch_concurrency",
        "unavailable_for",
        "retry_after",
        "scenario",
        "seed",
    }
)


@dataclass(frozen=True)
class CoreSettings:
    """Validated settings; ``scenario`` is a shipped name, a file, or a mapping."""

    request_secret: bytes
    callback_secret: bytes
    callback_delay: float = 0.05
    settle_delay: float = 0.1
    return_delay: float = 0.2
    send_callbacks: bool = True
    rules: tuple[Rule, ...] = ()
    builtin_rules: bool = True
    signature_tolerance_seconds: float = 300.0
    callback_attempts: int = 4
    callback_backoff: float = 0.05
    callback_timeout: float = 5.0
    #: callbacks due within this many seconds of each other travel in one status report ...
    callback_batch_window: float = 0.01
    #: ... of at most this many payments (1: one callback per payment)
    callback_batch_max: int = 1
    #: status reports in flight at once per callback URL (a bank's sender is not one report at a time)
    callback_batch_concurrency: int = 4
    unavailable_for: int = 0
    retry_after: int = 1
    scenario: Scenario | None = None
    seed: int | None = None

    @classmethod
    def from_mapping(cls, settings: Mapping[str, Any], *, name: str) -> CoreSettings:
        """Validate a settings mapping; ``ConfigError`` says what to fix."""
        unknown = set(settings) - _KNOWN
        if unknown:
            raise ConfigError(f"{name} simulator: unknown settings {sorted(unknown)}")
        secrets: dict[str, bytes] = {}
        for key in ("request_secret", "callback_secret"):
            value = settings.get(key)
            if not isinstance(value, str) or not value:
                raise ConfigError(f"{name} simulator: {key} is required")
            secrets[key] = value.encode()

        def number(key: str, default: float) -> float:
            value = settings.get(key, default)
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise ConfigError(f"{name} simulator: {key} must be a number >= 0")
            return float(value)

        scenario = settings.get("scenario")
        if isinstance(scenario, Mapping):
            scenario = parse_scenario(scenario, source=f"simulators.{name}.scenario")
        elif scenario is not None and not isinstance(scenario, Scenario):
            scenario = load_scenario(str(scenario))
        seed = settings.get("seed")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise ConfigError(f"{name} simulator: seed must be a whole number")
        return cls(
            request_secret=secrets["request_secret"],
            callback_secret=secrets["callback_secret"],
            callback_delay=number("callback_delay", 0.05),
            settle_delay=number("settle_delay", 0.1),
            return_delay=number("return_delay", 0.2),
            send_callbacks=bool(settings.get("send_callbacks", True)),
            rules=legacy_rules(settings.get("rules"), source=f"simulators.{name}"),
            builtin_rules=bool(settings.get("builtin_rules", True)),
            signature_tolerance_seconds=number("signature_tolerance_seconds", 300),
            callback_attempts=max(1, int(number("callback_attempts", 4))),
            callback_backoff=number("callback_backoff", 0.05),
            callback_timeout=number("callback_timeout", 5),
            callback_batch_window=number("callback_batch_window", 0.01),
            callback_batch_max=max(1, int(number("callback_batch_max", 1))),
            callback_batch_concurrency=max(1, int(number("callback_batch_concurrency", 4))),
            unavailable_for=int(number("unavailable_for", 0)),
            retry_after=int(number("retry_after", 1)),
            scenario=scenario,
            seed=seed,
        )
