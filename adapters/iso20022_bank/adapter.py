"""The ISO 20022 bank adapter: pain.001.001.09 out over HTTPS, signed pain.002 back.

Wire protocol (what the bank, and its simulator, speak):

- ``POST {base_url}/pain001`` with one pain.001 per payment; headers
  ``Idempotency-Key: <instruction id>``, ``X-Signature`` (HMAC of the body with
  ``request_secret``) and ``X-Callback-Url``. The bank answers with a pain.002.
- ``GET {base_url}/payments/{instruction id}/status`` (signature over the empty
  body) answers a pain.002 with the current status, 404 if unknown.
- The bank posts pain.002 callbacks to ``X-Callback-Url``.

Everything the bank sends is signed with ``callback_secret``; the adapter acts
only on what it can verify.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Mapping
from typing import Any, ClassVar
from urllib.parse import quote

from gateway.adapter import (
    AdapterContext,
    HttpAdapter,
    PaymentOrder,
    StatusUpdate,
    SubmitResult,
    http_settings_schema,
)
from gateway.domain.status import Status
from gateway.errors import (
    ContractError,
    PermanentPartnerError,
    SignatureError,
    TransientPartnerError,
)
from gateway.partners.http import CALLBACK_URL_HEADER, IDEMPOTENCY_HEADER, TRANSIENT_HTTP_STATUSES, header, retry_after
from gateway.partners.signing import sign_payload
from gateway_adapters.iso20022_bank.pain001 import build_pain001
from gateway_adapters.iso20022_bank.pain002 import (
    StatusReport,
    parse_pain002,
    status_updates,
)
from gateway_adapters.iso20022_bank.reasons import describe_reason
from gateway_adapters.iso20022_bank.schemas import PAIN001_VERSION, PAIN001_XSD

__all__ = ["SIGNATURE_HEADER", "Iso20022BankAdapter"]

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Signature"

_DEFAULT_MAX_AMOUNT = "999999999.99"


class Iso20022BankAdapter(HttpAdapter):
    """A bank that takes ISO 20022 pain.001.001.09 and reports with signed pain.002."""

    name: ClassVar[str] = "iso20022_bank"
    partner_label: ClassVar[str] = "the bank"
    account_kinds: ClassVar[frozenset[str]] = frozenset({"iban"})
    payment_types: ClassVar[frozenset[str]] = frozenset({"credit_transfer", "payout", "refund"})
    partner_contracts: ClassVar[Mapping[str, str]] = {PAIN001_VERSION: str(PAIN001_XSD)}
    settings_schema: ClassVar[Mapping[str, Any]] = http_settings_schema(
        ["request_secret", "callback_secret"], currencies=["EUR"], max_amount=_DEFAULT_MAX_AMOUNT
    )

    def __init__(self, settings: Mapping[str, Any], context: AdapterContext) -> None:
        super().__init__(settings, context)
        self._request_secret = str(self.settings["request_secret"]).encode()
        self._callback_secret = str(self.settings["callback_secret"]).encode()

    # -- HTTP -----------------------------------------------------------------------

    async def _call(
        self, method: str, url: str, body: bytes, headers: dict[str, str]
    ) -> tuple[int, Mapping[str, str], bytes]:
        headers = {**headers, SIGNATURE_HEADER: sign_payload(self._request_secret, body)}
        return await self.http.request(method, url, body, headers)

    def _verify_response(self, status: int, headers: Mapping[str, str], body: bytes) -> None:
        """Only a response the bank signed is acted on.

        A missing or forged signature on a synchronous answer means we cannot
        know what the bank decided, so it is a ``TransientPartnerError``: the
        dispatcher retries with the same Idempotency-Key, the bank deduplicates,
        and the retry gets a (hopefully genuine) answer. Making it permanent
        would let anyone on the path fail a payment the bank may have taken.
        """
        try:
            self.verify_signed(self._callback_secret, body, headers, SIGNATURE_HEADER)
        except SignatureError as exc:
            raise TransientPartnerError(
                f"bank response (HTTP {status}) failed signature check: {exc.message}"
            ) from None

    def _refusal(self, status: int, headers: Mapping[str, str], body: bytes, order: PaymentOrder) -> Exception:
        """The error for a non-2xx answer: transient for 429/5xx, permanent for the rest."""
        if status in TRANSIENT_HTTP_STATUSES:
            return TransientPartnerError(
                f"bank answered HTTP {status}",
                reason_code=f"HTTP{status}",
                retry_after=retry_after(headers, self.context.clock()),
            )
        self._verify_response(status, headers, body)
        code, message = self._error_detail(headers, body)
        log.warning("bank refused %s: HTTP %s %s", order.id, status, code)
        return PermanentPartnerError(
            order.redact(f"bank refused the payment (HTTP {status}): {message}"),
            reason_code=code or f"HTTP{status}",
        )

    @staticmethod
    def _error_detail(headers: Mapping[str, str], body: bytes) -> tuple[str | None, str]:
        """(reason code, message) from a pain.002 RJCT or the bank's JSON error body."""
        content_type = (header(headers, "Content-Type") or "").lower()
        if "json" in content_type:
            try:
                error = json.loads(body)["error"]
                return str(error.get("code")), str(error.get("message", ""))[:300]
            except (ValueError, KeyError, TypeError, AttributeError):
                return None, "unreadable error body"
        try:
            report = parse_pain002(body)
        except ContractError:
            return None, "unreadable error body"
        txs = report.transactions
        code = report.group_reason_code or (txs[0].reason_code if txs else None)
        reason = report.group_reason or (txs[0].reason if txs else None)
        return code, reason or "rejected"

    def _report(self, headers: Mapping[str, str], body: bytes, what: str) -> StatusReport:
        content_type = (header(headers, "Content-Type") or "").lower()
        if "xml" not in content_type:
            # What the bank does not declare as XML is not read as XML (a proxy's page, a mix-up).
            raise TransientPartnerError(f"bank {what} is {content_type or 'untyped'}, not XML")
        try:
            return parse_pain002(body)
        except ContractError as exc:
            # A signed but unreadable answer: the bank is misbehaving; retrying is safe.
            raise TransientPartnerError(f"bank {what} is not a valid pain.002: {exc.message}") from None

    @staticmethod
    def _check_echo(report: StatusReport, order: PaymentOrder, what: str) -> None:
        """A report that names another amount or currency for this payment is not about it: never act on it."""
        for tx in report.transactions:
            if tx.instruction_id != order.id or tx.amount is None:
                continue
            if tx.currency != order.money.currency or tx.amount != order.money.amount:
                raise TransientPartnerError(
                    f"bank {what} for {order.id} names {tx.amount} {tx.currency}, "
                    f"not {order.money.amount} {order.money.currency}"
                )

    @staticmethod
    def _own_update(report: StatusReport, order: PaymentOrder) -> StatusUpdate | None:
        """The status in ``report`` that speaks for ``order``, if any."""
        updates = status_updates(report)
        for update in updates:
            if update.instruction_id == order.id:
                return update
        if order.partner_reference:
            for update in updates:
                if update.instruction_id is None and update.partner_reference == order.partner_reference:
                    return update
        return None

    # -- Adapter API ----------------------------------------------------------------

    async def submit(self, order: PaymentOrder) -> SubmitResult:
        """POST one pain.001; map the bank's signed pain.002 answer to a ``SubmitResult``.

        2xx + ACTC/ACSP/... → ``submitted``; 2xx + ACSC → ``settled``; 2xx + RJCT →
        ``rejected`` with the ISO reason code. 429/5xx, timeouts and connection
        errors → ``TransientPartnerError``; other 4xx → ``PermanentPartnerError``
        with the bank's reason code; an order the XSD rejects never leaves.
        """
        now = self.context.clock()
        try:
            body = build_pain001(
                order,
                created_at=now,
                execution_date=order.requested_execution_date or now.date(),
            )
        except ContractError as exc:
            raise PermanentPartnerError(
                order.redact(f"order cannot be expressed as {PAIN001_VERSION}: {exc.message}"),
                reason_code="FF01",
            ) from None
        headers = {
            "Content-Type": "application/xml; charset=utf-8",
            IDEMPOTENCY_HEADER: order.id,
            CALLBACK_URL_HEADER: self.context.callback_url,
        }
        status, resp_headers, resp_body = await self._call("POST", f"{self.base_url}/pain001", body, headers)
        if not 200 <= status < 300:
            raise self._refusal(status, resp_headers, resp_body, order)
        self._verify_response(status, resp_headers, resp_body)
        report = self._report(resp_headers, resp_body, "answer")
        self._check_echo(report, order, "answer")
        update = self._own_update(report, order)
        if update is None:
            raise TransientPartnerError(f"bank answer does not mention instruction {order.id}")
        partner_reference = update.partner_reference or report.message_id
        result_status = update.status or Status.SUBMITTED
        log.info("bank took %s as %s (%s)", order.id, partner_reference, update.partner_status)
        return SubmitResult(
            status=result_status,
            partner_reference=partner_reference,
            reason_code=update.reason_code if result_status is Status.REJECTED else None,
            reason=describe_reason(update.reason_code, update.reason) if result_status is Status.REJECTED else None,
            partner_status=update.partner_status,
        )

    async def poll(self, order: PaymentOrder) -> StatusUpdate | None:
        """GET the payment's status; ``None`` when the bank does not know it (404)."""
        url = f"{self.base_url}/payments/{quote(order.id, safe='')}/status"
        status, headers, body = await self._call("GET", url, b"", {})
        if status == 404:
            self._verify_response(status, headers, body)
            return None
        if not 200 <= status < 300:
            raise self._refusal(status, headers, body, order)
        self._verify_response(status, headers, body)
        report = self._report(headers, body, "status report")
        self._check_echo(report, order, "status report")
        update = self._own_update(report, order)
        if update is None:
            raise TransientPartnerError(f"bank status report does not mention instruction {order.id}")
        return _described(update)

    def parse_callback(self, headers: Mapping[str, str], body: bytes) -> list[StatusUpdate]:
        """Verify the signature (first), then read the pain.002 into one update per transaction."""
        self.verify_signed(self._callback_secret, body, headers, SIGNATURE_HEADER)
        return [_described(u) for u in status_updates(parse_pain002(body))]


def _described(update: StatusUpdate) -> StatusUpdate:
    """Fill in a readable reason for a reason code the bank sent without text."""
    if update.reason_code and not update.reason:
        return dataclasses.replace(update, reason=describe_reason(update.reason_code, None))
    return update
