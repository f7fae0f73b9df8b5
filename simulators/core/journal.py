"""The simulator's journal: every request and callback, both directions, with correlation ids.

Each entry carries the instruction id, the partner reference and the message
id it concerns, the faults injected into that exchange, and the body with
every IBAN masked (``gateway.accounts.mask``), so a journal can be shared
with anyone and asserted on by tests (``GET /_sim/journal``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from gateway.domain.accounts import mask

__all__ = ["Journal", "JournalEntry", "mask_ibans"]

_IBAN_ELEMENT = re.compile(rb"(<(?:[\w.-]+:)?IBAN>)\s*([A-Za-z0-9 ]+?)\s*(</)")
_MAX_BODY = 8000


def mask_ibans(body: bytes) -> str:
    """The body as text with every ``<IBAN>`` element masked (only the last four characters kept)."""
    masked = _IBAN_ELEMENT.sub(lambda m: m.group(1) + mask(m.group(2).decode()).encode() + m.group(3), body)
    text = masked.decode("utf-8", errors="replace")
    return text if len(text) <= _MAX_BODY else text[:_MAX_BODY] + "…"


@dataclass
class JournalEntry:
    """One exchange (or one attempt at one) as the partner saw it."""

    seq: int
    at: str
    #: ``in`` (to the partner) or ``out`` (from the partner)
    direction: str
    #: ``submit``, ``status``, ``callback``, ``statement``
    kind: str
    method: str = ""
    path: str = ""
    http_status: int | None = None
    #: what happened: ``created``, ``replayed``, ``refused``, ``answered``, ``delivered``, ``failed``, ``dropped``…
    outcome: str = ""
    instruction_id: str | None = None
    #: a submission: the instruction id of every payment in it (a bulk message carries many;
    #: ``instruction_id`` is the first's), so the journal shows each payment sent once
    instruction_ids: list[str] = field(default_factory=list)
    #: a submission under a new Idempotency-Key: its payments the partner already held (a bulk
    #: message answers them with their status and does not take them again; one payment alone is refused)
    held_instruction_ids: list[str] = field(default_factory=list)
    partner_reference: str | None = None
    end_to_end_id: str | None = None
    message_id: str | None = None
    partner_status: str | None = None
    faults: list[str] = field(default_factory=list)
    detail: str | None = None
    body: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


_FILTERS = ("instruction_id", "partner_reference", "end_to_end_id", "message_id", "kind", "direction", "outcome")


class Journal:
    """Append-only, in memory; ``reset`` empties it."""

    def __init__(self) -> None:
        self.entries: list[JournalEntry] = []
        #: the last body masked: a status report on many payments is journalled once per payment
        self._masked: tuple[bytes, str] | None = None

    def _mask(self, body: bytes) -> str:
        if self._masked is None or self._masked[0] is not body:
            self._masked = (body, mask_ibans(body))
        return self._masked[1]

    def record(self, direction: str, kind: str, *, body: bytes | None = None, **fields: Any) -> JournalEntry:
        entry = JournalEntry(
            seq=len(self.entries) + 1,
            at=datetime.now(UTC).isoformat(),
            direction=direction,
            kind=kind,
            body=self._mask(body) if body else None,
            **{k: v for k, v in fields.items() if k != "faults"},
            faults=list(fields.get("faults") or ()),
        )
        self.entries.append(entry)
        return entry

    def reset(self) -> None:
        self.entries.clear()

    def select(self, filters: Mapping[str, str] | None = None) -> list[JournalEntry]:
        """Entries matching every filter (correlation ids, ``kind``, ``direction``, ``outcome``,
        ``fault`` — entries that had that fault injected — and ``since`` — a sequence number).

        ``instruction_id`` also matches a submission with that payment anywhere in it (``instruction_ids``).
        """
        filters = dict(filters or {})
        since = int(filters.pop("since", 0) or 0)
        fault = filters.pop("fault", None)
        unknown = set(filters) - set(_FILTERS)
        if unknown:
            raise KeyError(sorted(unknown)[0])
        instruction_id = filters.pop("instruction_id", None)
        out = [e for e in self.entries if e.seq > since and (not fault or fault in e.faults)]
        if instruction_id is not None:  # any payment of a bulk message
            out = [e for e in out if e.instruction_id == instruction_id or instruction_id in e.instruction_ids]
        for name, value in filters.items():
            out = [e for e in out if getattr(e, name) == value]
        return out
