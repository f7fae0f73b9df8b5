"""Fairness and overload at intake: per business unit token buckets, and shedding before latency grows.

A business unit may submit ``intake.rate_per_second`` instructions per second on
average and ``intake.burst`` at once (``intake.rate_limits`` overrides both per
unit); above that it gets 429 with Retry-After, so one unit cannot starve the
others. Each process keeps its own buckets (several processes: each allows the
rate). When the intake writer falls behind (``intake.max_queue`` requests waiting,
or a batch in progress for ``intake.max_wait_seconds``), every new request gets 503
with Retry-After at once, rather than a wait that grows without bound.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from gateway.config import IntakeSettings
from gateway.errors import RateLimitedError

__all__ = ["RateLimiter", "TokenBucket"]


@dataclass
class TokenBucket:
    """``rate`` tokens a second, at most ``burst`` saved up; one token per request."""

    rate: float
    burst: int
    tokens: float = field(default=-1.0)
    at: float = field(default=0.0)

    def take(self, now: float) -> float:
        """Take a token: 0.0 if there was one, else the seconds until there will be."""
        if self.tokens < 0:
            self.tokens, self.at = float(self.burst), now
        self.tokens = min(float(self.burst), self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate


class RateLimiter:
    """One token bucket per business unit, from ``intake.*``."""

    def __init__(self, settings: IntakeSettings, clock: Callable[[], float] = time.monotonic) -> None:
        self.default_rate = settings.rate_per_second
        self.default_burst = settings.burst
        self.overrides: Mapping[str, Mapping[str, Any]] = settings.rate_limits
        self.clock = clock
        self._buckets: dict[str, TokenBucket] = {}

    def _bucket(self, business_unit: str) -> TokenBucket | None:
        found = self._buckets.get(business_unit)
        if found is not None:
            return found
        own = self.overrides.get(business_unit)
        rate = own["rate_per_second"] if own else self.default_rate
        if rate is None:
            return None
        burst = int(own.get("burst", self.default_burst)) if own else self.default_burst
        bucket = self._buckets[business_unit] = TokenBucket(float(rate), burst)
        return bucket

    def check(self, business_unit: str) -> None:
        """Raise ``RateLimitedError`` (429, Retry-After) if the unit is over its rate."""
        bucket = self._bucket(business_unit)
        if bucket is None:
            return
        wait = bucket.take(self.clock())
        if wait > 0:
            raise RateLimitedError(
                f"business unit {business_unit!r} is over its rate limit of {bucket.rate:g}/s; retry in {wait:.2f} s",
                retry_after=wait,
            )
