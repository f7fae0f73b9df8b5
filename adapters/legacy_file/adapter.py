"""The legacy hand-off: payments the staged rollout keeps from the new partners go to the old system's folder.

Not a partner of its own: the system the gateway replaces. ``submit`` queues the payment
in the hand-off folder (``folder``); a cut-off every ``cutoff_seconds`` writes the queued
payments to one JSON Lines file the old system picks up (``handoff-<UTC time>-<n>.jsonl``,
written whole or not at all). The gateway status of a handed-off payment is ``submitted``
(partner status ``handed_off``): the old system has it, nobody knows yet whether it paid.
It becomes final when the legacy status feed (CSV files in ``status_dir``,
``gateway.partners.legacy_feed``) reports it; the status poll reads the feed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, Self

from gateway.adapter import (
    Adapter,
    AdapterContext,
    Capabilities,
    PaymentOrder,
    RenderedMessage,
    StatusUpdate,
    SubmitResult,
)
from gateway.config import schema_defaults
from gateway.domain.status import Status
from gateway.errors import ConfigError, ContractError, TransientPartnerError
from gateway.partners.legacy_feed import LegacyFeed, read_feed
from gateway_adapters.legacy_file.folder import HandoffFolder

__all__ = ["HANDED_OFF", "LINE_FORMAT", "LegacyFileAdapter", "handoff_line"]

log = logging.getLogger(__name__)

#: the partner status of a payment the old system has (gateway status ``submitted``)
HANDED_OFF = "handed_off"
LINE_FORMAT = "legacy-handoff-line"


def handoff_line(order: PaymentOrder, handed_at: str) -> dict[str, Any]:
    """One line of a hand-off file: everything the old system needs to pay (full accounts: it pays them)."""
    return {
        "instruction_id": order.id,
        "business_unit": order.business_unit,
        "reference": order.reference,
        "type": order.type,
        "amount": format(order.money.amount, "f"),
        "currency": order.money.currency,
        "debtor": order.debtor.as_dict(),
        "creditor": order.creditor.as_dict(),
        "remittance_information": order.remittance_information,
        "creditor_reference": order.creditor_reference,
        "requested_execution_date": (
            order.requested_execution_date.isoformat() if order.requested_execution_date else None
        ),
        "urgency": order.urgency,
        "handed_at": handed_at,
    }


class LegacyFileAdapter(Adapter):
    """Hands payments to the old system as JSON Lines files; their final status comes from its status feed."""

    name: ClassVar[str] = "legacy_file"
    capabilities = Capabilities(
        account_kinds=frozenset({"iban", "us", "wallet"}),
        types=frozenset({"credit_transfer", "payout", "refund"}),
        instant=True,  # the old system decides what it can do; the gateway does not second-guess it
    )
    settings_schema: ClassVar[Mapping[str, Any]] = {
        "type": "object",
        "additionalProperties": False,
        "required": ["dir"],
        "properties": {
            "dir": {"type": "string", "minLength": 1, "description": "the folder the old system picks files up from"},
            "status_dir": {
                "type": "string",
                "minLength": 1,
                "description": "the folder of the legacy status feed (CSV); default: <dir>/status",
            },
            "cutoff_seconds": {"type": "number", "exclusiveMinimum": 0, "default": 60},
        },
    }

    def __init__(self, settings: Mapping[str, Any], context: AdapterContext) -> None:
        self.settings = {**schema_defaults(self.settings_schema), **settings}
        self.context = context
        self.folder = HandoffFolder(Path(self.settings["dir"]))
        self.status_dir = Path(self.settings.get("status_dir") or Path(self.settings["dir"]) / "status")
        self.cutoff_seconds = float(self.settings["cutoff_seconds"])
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._feed: LegacyFeed = LegacyFeed()
        self._feed_signature: tuple[tuple[str, int, int], ...] = ()

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any], context: AdapterContext) -> Self:
        return cls(settings, context)

    def __repr__(self) -> str:
        return f"LegacyFileAdapter(dir={str(self.folder.root)!r})"

    # -- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        self._task = asyncio.create_task(self._cutoffs(), name="legacy-file-cutoffs")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._task = None

    async def _cutoffs(self) -> None:
        while True:
            await asyncio.sleep(self.cutoff_seconds)
            try:
                await self.run_cutoff()
            except OSError:
                log.exception("legacy hand-off cut-off failed; retried at the next one")

    # -- payments -------------------------------------------------------------------------------

    def render(self, order: PaymentOrder) -> RenderedMessage:
        line = handoff_line(order, self.context.clock().isoformat())
        return RenderedMessage(LINE_FORMAT, "application/x-ndjson", json.dumps(line, sort_keys=True).encode() + b"\n")

    async def submit(self, order: PaymentOrder) -> SubmitResult:
        """Queue the payment for the next cut-off, once: a second submit of the same instruction finds it queued."""
        async with self._lock, self.folder.exclusive():
            if self.folder.entry(order.id) is None:
                now = self.context.clock().isoformat()
                self.folder.put_entry(order.id, {"line": handoff_line(order, now), "handed_at": now, "file": None})
        return SubmitResult(Status.SUBMITTED, partner_reference=order.id, partner_status=HANDED_OFF)

    async def run_cutoff(self) -> str | None:
        """Write every queued payment to one new hand-off file; its name, or ``None`` when none was queued."""
        async with self._lock, self.folder.exclusive():
            return self.folder.cut(self.context.clock())

    def _current_feed(self) -> LegacyFeed:
        files = sorted(self.status_dir.glob("*.csv")) if self.status_dir.is_dir() else []
        signature = tuple((p.name, (st := p.stat()).st_mtime_ns, st.st_size) for p in files)
        if signature != self._feed_signature:
            self._feed = LegacyFeed(row for p in files for row in read_feed(p))
            self._feed_signature = signature
        return self._feed

    async def poll(self, order: PaymentOrder) -> StatusUpdate | None:
        """The payment's final status from the legacy status feed; ``None`` while the feed has none."""
        try:
            row = self._current_feed().find(order.business_unit, order.reference, order.id)
        except (ConfigError, OSError) as exc:
            raise TransientPartnerError(f"cannot read the legacy status feed: {exc}") from None
        if row is None or row.status is None:
            return None
        return StatusUpdate(
            row.status,
            instruction_id=order.id,
            partner_reference=order.id,
            partner_status=f"legacy:{row.word}"[:32],
            reason_code=row.reason_code,
            reason=f"legacy status feed: {row.word}",
            occurred_at=row.status_at,
        )

    def parse_callback(self, headers: Mapping[str, str], body: bytes) -> list[StatusUpdate]:
        raise ContractError("legacy_file takes no callbacks: final statuses come from the legacy status feed")
