"""The simulated bank's memory: payments, idempotency records, callbacks; and its clock.

A payment moves ``received → accepted → settled | rejected``; its ISO status
goes ``ACTC`` (answer to the submission) → ``ACSP`` (first callback, after
``callback_delay``) → ``ACSC`` or ``RJCT`` (second callback, ``settle_delay``
later). The status endpoint reports the same ISO status the last step set, so
polling and callbacks always agree.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aiohttp

from gateway.accounts import mask
from gateway.crypto import sign_payload
from gateway.errors import ConfigError
from gateway_adapters.iso20022_bank.pain001 import Pain001Transaction
from gateway_adapters.iso20022_bank.pain002 import (
    PaymentInformationStatus,
    StatusReport,
    TransactionStatus,
    build_pain002,
)
from gateway_simulators.iso20022_bank.rules import Outcome, Rule, parse_rules

__all__ = ["Bank", "CallbackRecord", "Payment", "SimulatorSettings", "Submission"]

log = logging.getLogger(__name__)

_STATE_BY_ISO = {"RCVD": "received", "ACTC": "accepted", "ACSP": "accepted", "ACSC": "settled"}


def _now() -> datetime:
    return datetime.now(UTC)


def new_id(prefix: str) -> str:
    """A fresh identifier that fits ISO 20022 Max35Text."""
    return f"{prefix}{uuid.uuid4().hex[:20].upper()}"


@dataclass(frozen=True)
class SimulatorSettings:
    """The simulator's settings (see ``create_app``)."""

    request_secret: bytes
    callback_secret: bytes
    callback_delay: float = 0.05
    settle_delay: float = 0.1
    send_callbacks: bool = True
    rules: tuple[Rule, ...] = ()
    builtin_rules: bool = True
    signature_tolerance_seconds: float = 300.0
    callback_attempts: int = 4
    callback_backoff: float = 0.05
    unavailable_for: int = 0
    retry_after: int = 1

    @classmethod
    def from_mapping(cls, settings: Mapping[str, Any]) -> SimulatorSettings:
        """Validate a settings mapping; ``ConfigError`` says what to fix."""
        known = {
            "request_secret", "callback_secret", "callback_delay", "settle_delay",
            "send_callbacks", "rules", "builtin_rules", "signature_tolerance_seconds",
            "callback_attempts", "callback_backoff", "unavailable_for", "retry_after",
        }  # fmt: skip
        unknown = set(settings) - known
        if unknown:
            raise ConfigError(f"iso20022_bank simulator: unknown settings {sorted(unknown)}")
        secrets: dict[str, bytes] = {}
        for name in ("request_secret", "callback_secret"):
            value = settings.get(name)
            if not isinstance(value, str) or not value:
                raise ConfigError(f"iso20022_bank simulator: {name} is required")
            secrets[name] = value.encode()

        def number(name: str, default: float) -> float:
            value = settings.get(name, default)
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise ConfigError(f"iso20022_bank simulator: {name} must be a number >= 0")
            return float(value)

        return cls(
            request_secret=secrets["request_secret"],
            callback_secret=secrets["callback_secret"],
            callback_delay=number("callback_delay", 0.05),
            settle_delay=number("settle_delay", 0.1),
            send_callbacks=bool(settings.get("send_callbacks", True)),
            rules=parse_rules(settings.get("rules")),
            builtin_rules=bool(settings.get("builtin_rules", True)),
            signature_tolerance_seconds=number("signature_tolerance_seconds", 300),
            callback_attempts=max(1, int(number("callback_attempts", 4))),
            callback_backoff=number("callback_backoff", 0.05),
            unavailable_for=int(number("unavailable_for", 0)),
            retry_after=int(number("retry_after", 1)),
        )


@dataclass
class CallbackRecord:
    """One callback the bank tried to deliver."""

    status: str
    attempts: int = 0
    delivered: bool = False
    http_status: int | None = None


@dataclass
class Payment:
    """One credit transfer as the bank holds it."""

    tx: Pain001Transaction
    bank_reference: str
    outcome: Outcome
    idempotency_key: str
    iso_status: str = "RCVD"
    reason_code: str | None = None
    callback_url: str | None = None
    history: list[str] = field(default_factory=list)
    callbacks: list[CallbackRecord] = field(default_factory=list)

    @property
    def state(self) -> str:
        return "rejected" if self.iso_status == "RJCT" else _STATE_BY_ISO[self.iso_status]

    def move(self, iso_status: str, reason_code: str | None = None) -> None:
        self.iso_status = iso_status
        self.reason_code = reason_code
        self.history.append(iso_status)


@dataclass
class Submission:
    """What the bank answered to one Idempotency-Key (replayed on a resend)."""

    fingerprint: tuple[Any, ...]
    http_status: int
    body: bytes
    payment_keys: tuple[str, ...]
    count: int = 1


class Bank:
    """In-memory bank: state plus the background tasks that advance it."""

    def __init__(self, settings: SimulatorSettings) -> None:
        self.settings = settings
        self.payments: dict[str, Payment] = {}
        self.submissions: dict[str, Submission] = {}
        self.outages_served = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._http: aiohttp.ClientSession | None = None

    # -- lifecycle ------------------------------------------------------------------

    async def open(self) -> None:
        self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5))

    async def close(self) -> None:
        await self.cancel_tasks()
        if self._http is not None:
            await self._http.close()
            self._http = None

    async def cancel_tasks(self) -> None:
        tasks, self._tasks = self._tasks, set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def reset(self) -> None:
        await self.cancel_tasks()
        self.payments.clear()
        self.submissions.clear()
        self.outages_served = 0

    @property
    def pending_tasks(self) -> int:
        """Background status changes / callbacks not finished yet."""
        return sum(1 for task in self._tasks if not task.done())

    async def idle(self) -> None:
        """Wait until every scheduled status change and callback is done (for tests)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    # -- status reports -------------------------------------------------------------

    def report(self, payments: list[Payment], *, original_message_id: str) -> bytes:
        """A pain.002 with the current status of ``payments`` (one block per PmtInfId)."""
        blocks: dict[str, list[TransactionStatus]] = {}
        for p in payments:
            blocks.setdefault(p.tx.payment_information_id, []).append(
                TransactionStatus(
                    status=p.iso_status,
                    instruction_id=p.tx.instruction_id,
                    end_to_end_id=p.tx.end_to_end_id,
                    reason_code=p.reason_code,
                    reason=f"rejected by simulator ({p.outcome.rule})" if p.reason_code else None,
                    account_servicer_reference=p.bank_reference,
                )
            )
        return build_pain002(
            StatusReport(
                message_id=new_id("SIMRPT"),
                created_at=_now(),
                original_message_id=original_message_id,
                payments=tuple(
                    PaymentInformationStatus(pmt_inf_id, transactions=tuple(txs)) for pmt_inf_id, txs in blocks.items()
                ),
            )
        )

    # -- the timeline ---------------------------------------------------------------

    def schedule(self, payment: Payment) -> None:
        """Advance an accepted payment to its outcome in the background."""
        task = asyncio.get_running_loop().create_task(self._advance(payment))
        self._tasks.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("simulated payment timeline failed", exc_info=task.exception())

    async def _advance(self, payment: Payment) -> None:
        await asyncio.sleep(self.settings.callback_delay)
        payment.move("ACSP")
        await self._notify(payment)
        await asyncio.sleep(self.settings.settle_delay)
        if payment.outcome.result == "reject":
            payment.move("RJCT", payment.outcome.reason_code)
        else:
            payment.move("ACSC")
        await self._notify(payment)

    async def _notify(self, payment: Payment) -> None:
        if not (self.settings.send_callbacks and payment.callback_url):
            return
        record = CallbackRecord(status=payment.iso_status)
        payment.callbacks.append(record)
        body = self.report([payment], original_message_id=payment.tx.message_id)
        if self._http is None:
            raise RuntimeError("bank simulator used outside its app's lifetime")
        for attempt in range(self.settings.callback_attempts):
            record.attempts = attempt + 1
            headers = {
                "Content-Type": "application/xml",
                "X-Signature": sign_payload(self.settings.callback_secret, body),
            }
            try:
                async with self._http.post(payment.callback_url, data=body, headers=headers) as resp:
                    record.http_status = resp.status
                    if resp.status < 300:
                        record.delivered = True
                        return
                    if resp.status < 500 and resp.status != 429:
                        log.warning("callback for %s refused: HTTP %s", payment.bank_reference, resp.status)
                        return  # the receiver said no for good: do not hammer it
            except (aiohttp.ClientError, TimeoutError) as exc:
                log.info("callback for %s failed: %s", payment.bank_reference, type(exc).__name__)
            if record.attempts < self.settings.callback_attempts:
                await asyncio.sleep(self.settings.callback_backoff * 2**attempt)

    # -- admin view -----------------------------------------------------------------

    def describe(self) -> list[dict[str, Any]]:
        """JSON-ready list of payments, IBANs masked."""
        out = []
        for p in self.payments.values():
            submission = self.submissions.get(p.idempotency_key)
            out.append(
                {
                    "instruction_id": p.tx.key,
                    "end_to_end_id": p.tx.end_to_end_id,
                    "bank_reference": p.bank_reference,
                    "amount": str(p.tx.amount),
                    "currency": p.tx.currency,
                    "creditor_name": p.tx.creditor_name,
                    "creditor_iban": mask(p.tx.creditor_iban) if p.tx.creditor_iban else None,
                    "debtor_iban": mask(p.tx.debtor_iban) if p.tx.debtor_iban else None,
                    "status": p.state,
                    "iso_status": p.iso_status,
                    "history": list(p.history),
                    "reason_code": p.reason_code,
                    "rule": p.outcome.rule,
                    "submissions": submission.count if submission else 0,
                    "callbacks_sent": sum(1 for c in p.callbacks if c.delivered),
                    "callbacks": [
                        {
                            "status": c.status,
                            "attempts": c.attempts,
                            "delivered": c.delivered,
                            "http_status": c.http_status,
                        }
                        for c in p.callbacks
                    ],
                }
            )
        return out
