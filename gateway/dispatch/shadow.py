"""Shadow mode: what a partner would have done with a payment the old system pays (docs/go-live.md).

For a payment routed while a partner is in ``shadow`` mode for its business unit, the
partner's adapter renders it in the partner's format and checks it against the partner's
contract (``Adapter.render``: nothing is sent). When ``rollout.shadow_sandboxes`` names a
sandbox for the partner, the payment is also submitted there, by a second instance of the
adapter built with the sandbox's settings, never the live one. The outcome is stored
(``shadow_outcomes``); ``gateway rollout compare`` sets it against the legacy system's status.
A rehearsal never changes the payment: its errors are recorded, not raised.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from gateway.domain.clock import Clock
from gateway.domain.order import PaymentOrder
from gateway.domain.status import Status
from gateway.errors import AdapterError, ContractError, PermanentPartnerError
from gateway.partners.adapter import Adapter
from gateway.partners.legacy_feed import LegacyFeed
from gateway.store.shadow import ShadowOutcome

__all__ = ["AGREEING", "VERDICTS", "Compared", "Comparison", "ShadowRunner", "agrees", "compare"]

log = logging.getLogger(__name__)

#: legacy final status → the shadow expectations that agree with it (``submitted``: the partner took it)
AGREEING: Mapping[Status, frozenset[str]] = {
    Status.SETTLED: frozenset({"submitted", "settled"}),
    Status.RETURNED: frozenset({"submitted", "settled"}),  # paid, then sent back by the creditor's bank
    Status.REJECTED: frozenset({"rejected", "failed"}),
    Status.FAILED: frozenset({"rejected", "failed"}),
    Status.CANCELLED: frozenset({"submitted", "settled", "rejected", "failed"}),  # cancelled before anyone paid
}


def agrees(legacy: Status, expected: str | None) -> bool:
    """Whether the new path's expected status is consistent with what the old system did."""
    return expected is not None and expected in AGREEING.get(legacy, frozenset())


class ShadowRunner:
    """Rehearses payments with partners in shadow mode; see the module docstring."""

    def __init__(self, adapters: Mapping[str, Adapter], sandboxes: Mapping[str, Adapter], clock: Clock) -> None:
        self.adapters = adapters
        self.sandboxes = sandboxes
        self.clock = clock

    async def rehearse_all(self, work: Sequence[tuple[PaymentOrder, str]]) -> list[ShadowOutcome]:
        """One outcome per (order, partner), in order."""
        return list(await asyncio.gather(*(self.rehearse(order, partner) for order, partner in work)))

    async def rehearse(self, order: PaymentOrder, partner: str) -> ShadowOutcome:
        """Render and validate with ``partner``'s adapter; submit to its sandbox when one is configured."""

        def outcome(kind: str, expected: Status | None = None, **more: str | None) -> ShadowOutcome:
            return ShadowOutcome(
                instruction_id=order.id,
                partner=partner,
                business_unit=order.business_unit,
                reference=order.reference,
                outcome=kind,
                recorded_at=self.clock(),
                expected_status=expected.value if expected else None,
                **more,
            )

        adapter = self.adapters.get(partner)
        if adapter is None:
            return outcome("not_rendered", detail=f"adapter {partner} is not enabled")
        try:
            rendered = adapter.render(order)
        except (PermanentPartnerError, ContractError) as exc:
            # what submit would do: refuse before sending, and the payment fails
            code = exc.reason_code if isinstance(exc, AdapterError) else "FF01"
            return outcome("invalid", Status.FAILED, reason_code=code, detail=order.redact(exc.message))
        except Exception as exc:  # an adapter bug must not touch the real payment
            log.exception("adapter %s raised on render (shadow)", partner)
            return outcome("not_rendered", detail=f"render error: {type(exc).__name__}")
        if rendered is None:
            return outcome("not_rendered", detail=f"{partner} cannot render a payment without sending it")
        found = {"message": rendered.message, "message_sha256": hashlib.sha256(rendered.body).hexdigest()}
        sandbox = self.sandboxes.get(partner)
        if sandbox is None:
            return outcome("rendered", Status.SUBMITTED, **found)
        try:
            result = await sandbox.submit(order)
        except AdapterError as exc:
            return outcome("sandbox_error", reason_code=exc.reason_code, detail=order.redact(exc.message), **found)
        except Exception as exc:
            log.exception("sandbox of %s raised on submit (shadow)", partner)
            return outcome("sandbox_error", detail=f"sandbox error: {type(exc).__name__}", **found)
        return outcome(
            f"sandbox_{result.status.value}",
            result.status,
            reason_code=result.reason_code,
            detail=order.redact(result.reason) if result.reason else None,
            **found,
        )


#: ``agree``/``disagree``: both sides final; ``legacy_pending``: the old system has no final status yet;
#: ``no_legacy_status``: the feed does not name the payment; ``inconclusive``: the shadow run could not say
VERDICTS = ("agree", "disagree", "legacy_pending", "no_legacy_status", "inconclusive")


@dataclass(frozen=True, slots=True)
class Compared:
    """One shadowed payment: what the partner would have done, what the old system did, and the verdict."""

    business_unit: str
    reference: str
    instruction_id: str
    partner: str
    shadow_outcome: str
    expected_status: str | None
    legacy_status: str | None
    verdict: str
    detail: str | None = None

    def as_dict(self) -> dict[str, str | None]:
        return {
            "business_unit": self.business_unit,
            "reference": self.reference,
            "instruction_id": self.instruction_id,
            "partner": self.partner,
            "shadow_outcome": self.shadow_outcome,
            "expected_status": self.expected_status,
            "legacy_status": self.legacy_status,
            "verdict": self.verdict,
            "detail": self.detail,
        }


@dataclass
class Comparison:
    """Every shadowed payment of a business unit (and partner) set against the legacy feed."""

    business_unit: str
    partner: str | None
    payments: list[Compared] = field(default_factory=list)

    @property
    def counts(self) -> dict[str, int]:
        found = dict.fromkeys(VERDICTS, 0)
        for p in self.payments:
            found[p.verdict] += 1
        return found

    @property
    def disagreements(self) -> list[Compared]:
        return [p for p in self.payments if p.verdict == "disagree"]


def compare(business_unit: str, partner: str | None, outcomes: Sequence[ShadowOutcome], feed: LegacyFeed) -> Comparison:
    """Set each shadow outcome against the legacy feed's status of the same payment (by id, else reference)."""
    result = Comparison(business_unit, partner)
    for o in outcomes:
        row = feed.find(o.business_unit, o.reference, o.instruction_id)
        if row is None:
            verdict, legacy = "no_legacy_status", None
        elif row.status is None:
            verdict, legacy = "legacy_pending", row.word
        elif o.expected_status is None:
            verdict, legacy = "inconclusive", row.word
        else:
            verdict, legacy = ("agree" if agrees(row.status, o.expected_status) else "disagree"), row.word
        detail = o.detail
        if row is not None and row.reason_code:
            detail = f"{detail}; legacy reason {row.reason_code}" if detail else f"legacy reason {row.reason_code}"
        result.payments.append(
            Compared(
                o.business_unit,
                o.reference,
                o.instruction_id,
                o.partner,
                o.outcome,
                o.expected_status,
                legacy,
                verdict,
                detail,
            )
        )
    return result
