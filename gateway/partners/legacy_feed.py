"""The legacy system's status feed: what the old system did with each payment (docs/go-live.md).

A CSV file (UTF-8, header row) the old system writes, one row per payment it knows:

| column | required | meaning |
|---|---|---|
| ``reference`` | yes | the business unit's end-to-end id |
| ``status`` | yes | ``settled``, ``rejected``, ``failed``, ``returned``, ``cancelled``; other words: in flight |
| ``business_unit`` | no | whose payment it is (a feed of one unit may leave it out) |
| ``instruction_id`` | no | the gateway's id, when the payment came through the hand-off (``legacy_file``) |
| ``status_at`` | no | when it reached the status (ISO 8601) |
| ``reason_code`` | no | the old system's reason for a refusal |

Read by the ``legacy_file`` adapter (the final status of a payment handed off) and by
``gateway rollout compare`` (the legacy outcome shadow outcomes are compared with).
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from gateway.domain.status import TERMINAL, Status
from gateway.errors import ConfigError

__all__ = ["FEED_COLUMNS", "LegacyFeed", "LegacyStatus", "read_feed"]

FEED_COLUMNS = ("reference", "status", "business_unit", "instruction_id", "status_at", "reason_code")
_REQUIRED = ("reference", "status")
_FINAL = {s.value: s for s in TERMINAL}


@dataclass(frozen=True, slots=True)
class LegacyStatus:
    """One row of the feed: the legacy system's word, and the gateway status it means (``None``: in flight)."""

    reference: str
    word: str
    status: Status | None
    business_unit: str | None = None
    instruction_id: str | None = None
    status_at: datetime | None = None
    reason_code: str | None = None
    line: int = 0


def _instant(value: str, path: Path, line: int) -> datetime:
    try:
        at = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(f"{path}: line {line}: status_at {value[:40]!r} is not ISO 8601") from None
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def read_feed(path: Path) -> list[LegacyStatus]:
    """Every row of one feed file; ``ConfigError`` naming the file (and line) when it cannot be read."""
    rows: list[LegacyStatus] = []
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            header = reader.fieldnames or []
            missing = [c for c in _REQUIRED if c not in header]
            if missing:
                raise ConfigError(f"{path}: no column {missing[0]!r} (a legacy status feed has {', '.join(_REQUIRED)})")
            for raw in reader:
                line = reader.line_num
                values = {k: (v or "").strip() for k, v in raw.items() if k in FEED_COLUMNS}
                if not values.get("reference"):
                    raise ConfigError(f"{path}: line {line}: reference is empty")
                word = values.get("status", "").lower()
                rows.append(
                    LegacyStatus(
                        reference=values["reference"],
                        word=word,
                        status=_FINAL.get(word),
                        business_unit=values.get("business_unit") or None,
                        instruction_id=values.get("instruction_id") or None,
                        status_at=_instant(values["status_at"], path, line) if values.get("status_at") else None,
                        reason_code=(values.get("reason_code") or None),
                        line=line,
                    )
                )
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ConfigError(f"cannot read legacy status feed {path}: {exc}") from None
    return rows


class LegacyFeed:
    """The feed's rows indexed for lookup: by instruction id, and by (business unit, reference).

    A later row about the same payment wins (feeds are appended to, or newer files read last).
    """

    def __init__(self, rows: Iterable[LegacyStatus] = ()) -> None:
        self.by_id: dict[str, LegacyStatus] = {}
        self.by_reference: dict[tuple[str | None, str], LegacyStatus] = {}
        for row in rows:
            if row.instruction_id:
                self.by_id[row.instruction_id] = row
            self.by_reference[(row.business_unit, row.reference)] = row

    def find(self, business_unit: str, reference: str, instruction_id: str | None = None) -> LegacyStatus | None:
        """The row about this payment: by instruction id, else by reference (rows with or without a unit)."""
        if instruction_id and instruction_id in self.by_id:
            return self.by_id[instruction_id]
        return self.by_reference.get((business_unit, reference)) or self.by_reference.get((None, reference))

    def rows(self, business_unit: str | None = None) -> list[LegacyStatus]:
        """The rows (of one business unit, and those naming none), in feed order of their last appearance."""
        return [
            r for r in self.by_reference.values() if business_unit is None or r.business_unit in (None, business_unit)
        ]

    @classmethod
    def read(cls, paths: Iterable[Path]) -> LegacyFeed:
        return cls(row for path in paths for row in read_feed(path))
