"""Value objects describing what happened to an instruction (shared by store, hooks, API)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime

from gateway.domain.status import Status

__all__ = ["Announce", "StatusChange"]


@dataclass(frozen=True, slots=True)
class StatusChange:
    """An applied status transition, as observers see it after commit."""

    instruction_id: str
    business_unit_id: str
    previous: Status
    current: Status
    source: str
    occurred_at: datetime
    reason_code: str | None = None


#: tells observers about committed transitions (``None`` entries: transitions that were not applied)
Announce = Callable[[Iterable[StatusChange | None]], None]
