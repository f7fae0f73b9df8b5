"""The instant payments adapter: one JSON credit transfer per request, answered synchronously.

Wire protocol (what the partner, and its simulator, speak; see docs/adapters/instant_rtp.md):

- ``POST {base_url}/v1/payments`` with a ``payment-request`` (pacs.008 semantics);
  headers ``Idempotency-Key: <instruction id>`` and ``X-Signature`` (HMAC of the
  body with ``request_secret``). The partner answers within seconds with a
  signed ``payment-report`` (pacs.002 semantics): ``ACSC`` settled or ``RJCT``
  rejected with a reason code.
- ``GET {base_url}/v1/payments/{instruction id}`` (signature over the empty
  body) answers the same report, or ``404 NOT_FOUND``: the partner never
  executed a payment with that id.
- ``GET {base_url}/v1/statements?date=D`` (signature over the empty body)
  answers the account's signed camt.053 for that day: every payment the rail
  settled, for reconciliation (``fetch_statements``, format ``rtp.camt.053``).

The request has a hard deadline (``timeout_seconds``). Once it may have left,
a missing or unreadable answer is an *unknown outcome*, never a failure:
``OutcomeUnknownError`` makes the dispatcher ask the same partner again with
the same idempotency key, and the partner answers the original outcome.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Mapping
from typing import Any, ClassVar
from urllib.parse import quote

from gateway.adapter import (
    AdapterContext,
    HttpAdapter,
    PaymentOrder,
    RenderedMessage,
    StatusUpdate,
    SubmitResult,
    http_settings_schema,
)
from gateway.domain.statements import FetchedFile, StatementFetch
from gateway.domain.status import Status
from gateway.errors import (
    ContractError,
    OutcomeUnknownError,
    PermanentPartnerError,
    SignatureError,
    TransientPartnerError,
)
from gateway.partners.http import IDEMPOTENCY_HEADER, TRANSIENT_HTTP_STATUSES, header, retry_after
from gateway.partners.signing import sign_payload
from gateway_adapters.instant_rtp.messages import (
    CONTRACT_DIR,
    ERROR,
    REPORT,
    REQUEST,
    Report,
    build_request,
    read_error,
    read_report,
)
from gateway_adapters.instant_rtp.reasons import describe_reason
from gateway_adapters.instant_rtp.statements import RTP_CAMT053

__all__ = [
    "IDEMPOTENCY_HEADER",
    "NOT_FOUND",
    "PARTNER_STATUS",
    "SIGNATURE_HEADER",
    "InstantRtpAdapter",
    "never_executed",
]

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Signature"
#: ``StatusUpdate.partner_status`` of a poll the partner answered "no such payment": it was never executed
NOT_FOUND = "NOT_FOUND"

#: partner status (pacs.002 TxSts) → gateway status; ``None``: still pending at the partner
PARTNER_STATUS: Mapping[str, Status | None] = {
    "ACSC": Status.SETTLED,
    "RJCT": Status.REJECTED,
    "RCVD": None,
    "ACTC": None,
    "ACSP": None,
    "ACWP": None,
}

_DEFAULT_MAX_AMOUNT = "1000000.00"  # the RTP network's per-payment limit
_TYPES = frozenset({"credit_transfer", "payout", "refund"})


def never_executed(update: StatusUpdate | None) -> bool:
    """Whether a poll answer is the partner's signed word that it never executed the payment.

    The only answer on which a payment with an unknown outcome may be re-routed elsewhere.
    """
    return update is not None and update.status is None and update.partner_status == NOT_FOUND


class InstantRtpAdapter(HttpAdapter):
    """An instant credit transfer rail (RTP style): JSON over HTTPS, signed synchronous answers."""

    name: ClassVar[str] = "instant_rtp"
    partner_label: ClassVar[str] = "the partner"
    account_kinds: ClassVar[frozenset[str]] = frozenset({"us"})
    payment_types: ClassVar[frozenset[str]] = _TYPES
    instant: ClassVar[bool] = True
    partner_contracts: ClassVar[Mapping[str, str]] = {
        m: str(CONTRACT_DIR / f"{m}.json") for m in (REQUEST, REPORT, ERROR)
    }
    #: the account's camt.053 of each closed day (``fetch_statements``)
    statement_sources: ClassVar[frozenset[str]] = frozenset({RTP_CAMT053.name})
    settings_schema: ClassVar[Mapping[str, Any]] = http_settings_schema(
        ["request_secret", "response_secret"],
        currencies=["USD"],
        max_amount=_DEFAULT_MAX_AMOUNT,
        timeout_seconds=5,
        timeout_maximum=60,
        properties={"statements_path": {"type": "string", "pattern": "^/", "default": "/v1/statements"}},
    )

    def __init__(self, settings: Mapping[str, Any], context: AdapterContext) -> None:
        super().__init__(settings, context)
        self._request_secret = str(self.settings["request_secret"]).encode()
        self._response_secret = str(self.settings["response_secret"]).encode()

    # -- HTTP -----------------------------------------------------------------------

    async def _exchange(
        self, method: str, url: str, body: bytes, headers: dict[str, str], *, lost: type[TransientPartnerError]
    ) -> tuple[int, Mapping[str, str], bytes]:
        """One signed call under the hard deadline; ``lost`` is raised once the request may have left."""
        headers = {**headers, SIGNATURE_HEADER: sign_payload(self._request_secret, body)}
        return await self.http.request(method, url, body, headers, lost=lost)

    def _verify(
        self, status: int, headers: Mapping[str, str], body: bytes, *, lost: type[TransientPartnerError]
    ) -> None:
        """Act only on what the partner signed; anything else says nothing about the payment."""
        try:
            self.verify_signed(self._response_secret, body, headers, SIGNATURE_HEADER)
        except SignatureError as exc:
            raise lost(f"partner answer (HTTP {status}) failed the signature check: {exc.message}") from None

    @staticmethod
    def _report(
        headers: Mapping[str, str], body: bytes, order: PaymentOrder, *, lost: type[TransientPartnerError]
    ) -> Report:
        """A signed 2xx body read as a report about ``order`` (its id, amount and currency), or ``lost``."""
        content_type = (header(headers, "Content-Type") or "").lower()
        if "json" not in content_type:
            raise lost(f"partner answer is {content_type or 'untyped'}, not JSON")
        try:
            report = read_report(body)
        except ContractError as exc:
            raise lost(f"partner answer is not a valid {REPORT}: {exc.message}") from None
        if report.instruction_id != order.id:
            raise lost(f"partner answer names instruction {report.instruction_id}, not {order.id}")
        if report.currency != order.money.currency or report.amount != order.money.amount:
            raise lost(
                f"partner answer for {order.id} names {report.amount} {report.currency}, "
                f"not {order.money.amount} {order.money.currency}"
            )
        if report.status not in PARTNER_STATUS:
            raise lost(f"partner answer has unknown status {report.status}")
        return report

    @staticmethod
    def _error_detail(body: bytes) -> tuple[str | None, str]:
        try:
            return read_error(body)
        except ContractError:
            return None, "unreadable error body"

    # -- Adapter API ----------------------------------------------------------------

    def render(self, order: PaymentOrder) -> RenderedMessage:
        """The payment request the partner would receive, valid against its contract (``FF01`` if it cannot be)."""
        now = self.context.clock()
        try:
            body = build_request(order, message_id=f"RTP{now:%Y%m%d%H%M%S}{secrets.token_hex(8)}", created_at=now)
        except ContractError as exc:
            raise PermanentPartnerError(
                order.redact(f"order cannot be expressed as a {REQUEST}: {exc.message}"), reason_code="FF01"
            ) from None
        return RenderedMessage(REQUEST, "application/json", body)

    async def submit(self, order: PaymentOrder) -> SubmitResult:
        """POST the payment; ``ACSC`` → ``settled``, ``RJCT`` → ``rejected`` (+ reason code), pending → ``submitted``.

        Never connected → ``TransientPartnerError``; 429 (the partner throttles
        before it looks at a payment) → ``TransientPartnerError`` with its
        Retry-After; a timeout, a lost connection, a 5xx, or an unsigned or
        unreadable answer after the request may have left → ``OutcomeUnknownError``;
        another signed 4xx (the partner refused the request itself) →
        ``PermanentPartnerError`` with the partner's error code.
        """
        body = self.render(order).body
        url = f"{self.base_url}/v1/payments"
        headers = {IDEMPOTENCY_HEADER: order.id, "Content-Type": "application/json"}
        status, resp_headers, raw = await self._exchange("POST", url, body, headers, lost=OutcomeUnknownError)
        if status == 429:
            raise TransientPartnerError(
                "partner throttled the request (HTTP 429)",
                reason_code="HTTP429",
                retry_after=retry_after(resp_headers, self.context.clock()),
            )
        if status >= 500 or status == 408:
            raise OutcomeUnknownError(
                f"partner answered HTTP {status}", retry_after=retry_after(resp_headers, self.context.clock())
            )
        self._verify(status, resp_headers, raw, lost=OutcomeUnknownError)
        if not 200 <= status < 300:
            code, description = self._error_detail(raw)
            log.warning("instant_rtp refused %s: HTTP %s %s", order.id, status, code)
            raise PermanentPartnerError(
                order.redact(f"partner refused the request (HTTP {status}): {description}"),
                reason_code=code or f"HTTP{status}",
            )
        report = self._report(resp_headers, raw, order, lost=OutcomeUnknownError)
        outcome = PARTNER_STATUS[report.status]
        rejected = outcome is Status.REJECTED
        return SubmitResult(
            status=outcome or Status.SUBMITTED,
            partner_reference=report.transaction_id,
            reason_code=report.reason_code if rejected else None,
            reason=describe_reason(report.reason_code, report.reason) if rejected else None,
            partner_status=report.status,
        )

    async def poll(self, order: PaymentOrder) -> StatusUpdate:
        """GET the payment's status: settled, rejected, pending (``status=None``), or ``NOT_FOUND``.

        ``NOT_FOUND`` (``status=None``, ``partner_status="NOT_FOUND"``, see
        ``never_executed``) is the partner's signed word that it holds no
        payment with this id. Every failure is a ``TransientPartnerError``:
        the question can always be asked again.
        """
        url = f"{self.base_url}/v1/payments/{quote(order.id, safe='')}"
        lost = TransientPartnerError
        status, headers, raw = await self._exchange("GET", url, b"", {}, lost=lost)
        if status == 429 or status >= 500:
            raise TransientPartnerError(
                f"partner answered HTTP {status}", retry_after=retry_after(headers, self.context.clock())
            )
        self._verify(status, headers, raw, lost=lost)
        if status == 404:
            code, description = self._error_detail(raw)
            if code != NOT_FOUND:
                raise TransientPartnerError(f"partner answered HTTP 404 without {NOT_FOUND}: {description}")
            return StatusUpdate(
                status=None,
                instruction_id=order.id,
                partner_status=NOT_FOUND,
                reason="the partner holds no payment with this id: it was never executed",
            )
        if not 200 <= status < 300:
            code, description = self._error_detail(raw)
            raise PermanentPartnerError(
                f"partner refused the status query (HTTP {status}): {description}", reason_code=code
            )
        return _update(self._report(headers, raw, order, lost=lost))

    async def fetch_statements(self, request: StatementFetch) -> list[FetchedFile]:
        """The account's camt.053 of each closed day asked for (``GET {statements_path}?date=D``, signed both ways).

        A day's statement is final once the day is over, so only closed days are asked for; a day already
        imported adds nothing (each ``Stmt`` is stored once, by its id, the same every time it is asked).
        An answer the partner did not sign, or that is not XML, is never imported.
        """
        files = []
        for day in request.closed_days():
            url = f"{self.base_url}{self.settings['statements_path']}?date={day.isoformat()}"
            lost = TransientPartnerError
            status, headers, body = await self._exchange("GET", url, b"", {}, lost=lost)
            if status in TRANSIENT_HTTP_STATUSES:
                raise TransientPartnerError(
                    f"partner answered HTTP {status} for the statement of {day}", reason_code=f"HTTP{status}"
                )
            self._verify(status, headers, body, lost=lost)
            if not 200 <= status < 300:
                code, description = self._error_detail(body)
                raise PermanentPartnerError(
                    f"partner refused the statement of {day} (HTTP {status}): {description}", reason_code=code
                )
            content_type = (header(headers, "Content-Type") or "").lower()
            if "xml" not in content_type:
                raise TransientPartnerError(
                    f"partner answered the statement of {day} as {content_type or 'untyped'}, not XML"
                )
            files.append(FetchedFile(RTP_CAMT053.name, f"rtp camt.053 {day.isoformat()}", body))
        return files

    def parse_callback(self, headers: Mapping[str, str], body: bytes) -> list[StatusUpdate]:
        """The partner answers synchronously and sends no callbacks; a pushed report is still verified first."""
        self.verify_signed(self._response_secret, body, headers, SIGNATURE_HEADER)
        return [_update(read_report(body))]


def _update(report: Report) -> StatusUpdate:
    outcome = PARTNER_STATUS.get(report.status)
    rejected = outcome is Status.REJECTED
    return StatusUpdate(
        status=outcome,
        instruction_id=report.instruction_id,
        partner_reference=report.transaction_id,
        partner_status=report.status,
        reason_code=report.reason_code if rejected else None,
        reason=describe_reason(report.reason_code, report.reason) if rejected else None,
        occurred_at=report.created_at,
    )
