"""The ISO 20022 bank adapter: pain.001.001.09 out over HTTPS, signed pain.002 back.

Wire protocol (what the bank, and its simulator, speak):

- ``POST {base_url}/pain001`` with one pain.001 per payment; headers
  ``Idempotency-Key: <instruction id>``, ``X-Signature`` (HMAC of the body with
  ``request_secret``) and ``X-Callback-Url``. The bank answers with a pain.002.
  Several payments of one dispatch batch go in ONE pain.001 (``submit_many``): a
  PmtInf block per payment, InstrId the instruction id (the bank deduplicates
  each payment on it), ``Idempotency-Key`` the message's MsgId; one pain.002
  answers them all.
- ``GET {base_url}/payments/{instruction id}/status`` (signature over the empty
  body) answers a pain.002 with the current status, 404 if unknown.
- The bank posts pain.002 callbacks to ``X-Callback-Url``.
- SEPA Core direct debits (``direct_debit`` collections, when a creditor is
  configured): ``POST {base_url}/pain008`` with one pain.008.001.08 per
  collection (``Idempotency-Key``, ``InstrId`` and ``EndToEndId``: the
  collection id), answered with a signed pain.002 (``ACCP`` or ``RJCT`` +
  reason); what happens later (collected, refused, returned, refunded) is read
  from the creditor account's camt.054 notification at ``GET
  {base_url}{notifications_path}`` (signed request over the empty body, signed
  answer), fetched when the dispatcher polls a collection.

Everything the bank sends is signed with ``callback_secret``; the adapter acts
only on what it can verify.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import time
from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any, ClassVar
from urllib.parse import quote

from gateway.adapter import (
    AdapterContext,
    CollectionOrder,
    CollectionResult,
    CollectionUpdate,
    HttpAdapter,
    PaymentOrder,
    RenderedMessage,
    StatusUpdate,
    SubmitResult,
    http_settings_schema,
)
from gateway.domain.collection_status import CollectionStatus
from gateway.domain.errors import MandateError
from gateway.domain.mandate import (
    DEFAULT_PRE_NOTIFICATION_DAYS,
    earliest_due_date,
    schedule_collection,
    validate_creditor_id,
)
from gateway.domain.statements import FetchedFile, StatementFetch
from gateway.domain.status import Status
from gateway.errors import (
    AdapterError,
    ConfigError,
    ContractError,
    PermanentPartnerError,
    SignatureError,
    TransientPartnerError,
)
from gateway.partners.http import CALLBACK_URL_HEADER, IDEMPOTENCY_HEADER, TRANSIENT_HTTP_STATUSES, header, retry_after
from gateway.partners.signing import sign_payload
from gateway_adapters.iso20022_bank.camt import StatementRead
from gateway_adapters.iso20022_bank.camt054 import collected_debits, r_transactions, read_camt054
from gateway_adapters.iso20022_bank.pain001 import build_pain001, build_pain001_many
from gateway_adapters.iso20022_bank.pain002 import (
    StatusReport,
    TransactionStatus,
    parse_pain002,
    status_updates,
)
from gateway_adapters.iso20022_bank.pain008 import Creditor, DirectDebit, build_pain008, collection_statuses
from gateway_adapters.iso20022_bank.reasons import describe_reason, refund_admissible, refund_deadline
from gateway_adapters.iso20022_bank.schemas import PAIN001_VERSION, PAIN001_XSD, PAIN008_VERSION, PAIN008_XSD

__all__ = ["SIGNATURE_HEADER", "Iso20022BankAdapter"]

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Signature"

_DEFAULT_MAX_AMOUNT = "999999999.99"

#: ISO 20022 reason for a collection whose dates cannot be met (``DT01`` invalid date)
DATE_REJECT_CODE = "DT01"

#: the adapter's own settings for direct debits (all optional: without a creditor it collects nothing)
_DIRECT_DEBIT_SETTINGS: dict[str, Any] = {
    "creditor_name": {"type": "string", "minLength": 1, "maxLength": 70},
    "creditor_iban": {"type": "string", "minLength": 15, "maxLength": 34},
    "creditor_id": {"type": "string", "minLength": 8, "maxLength": 35},
    "creditor_bic": {"type": "string", "pattern": "^[A-Z0-9]{8}([A-Z0-9]{3})?$"},
    "pre_notification_days": {"type": "integer", "minimum": 0, "maximum": 60, "default": DEFAULT_PRE_NOTIFICATION_DAYS},
    "notifications_path": {"type": "string", "pattern": "^/", "default": "/camt054"},
    "statements_path": {"type": "string", "pattern": "^/", "default": "/camt053"},
    "notifications_cache_seconds": {"type": "number", "minimum": 0, "default": 1},
    # one pain.001 per dispatch batch (submit_many) instead of one per payment: off unless asked for
    "bulk_submit": {"type": "boolean", "default": False},
}


class Iso20022BankAdapter(HttpAdapter):
    """A bank that takes ISO 20022 pain.001.001.09 and reports with signed pain.002."""

    name: ClassVar[str] = "iso20022_bank"
    partner_label: ClassVar[str] = "the bank"
    account_kinds: ClassVar[frozenset[str]] = frozenset({"iban"})
    payment_types: ClassVar[frozenset[str]] = frozenset({"credit_transfer", "payout", "refund"})
    partner_contracts: ClassVar[Mapping[str, str]] = {
        PAIN001_VERSION: str(PAIN001_XSD),
        PAIN008_VERSION: str(PAIN008_XSD),
    }
    statement_sources: ClassVar[frozenset[str]] = frozenset({"camt.053", "camt.054"})
    settings_schema: ClassVar[Mapping[str, Any]] = http_settings_schema(
        ["request_secret", "callback_secret"],
        currencies=["EUR"],
        max_amount=_DEFAULT_MAX_AMOUNT,
        properties=_DIRECT_DEBIT_SETTINGS,
    )

    def __init__(self, settings: Mapping[str, Any], context: AdapterContext) -> None:
        super().__init__(settings, context)
        self._request_secret = str(self.settings["request_secret"]).encode()
        self._callback_secret = str(self.settings["callback_secret"]).encode()
        self._creditor = _creditor(self.settings)
        if self._creditor is not None:  # direct debits need the creditor's account and identifier
            self.collection_kinds = frozenset({"direct_debit"})
            self.collection_currencies = frozenset({"EUR"})
        self._pre_notification_days = int(self.settings["pre_notification_days"])
        self._notifications: tuple[float, list[StatementRead] | AdapterError] | None = None

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

    def _refusal(
        self,
        status: int,
        headers: Mapping[str, str],
        body: bytes,
        order: PaymentOrder | CollectionOrder,
    ) -> Exception:
        """The error for a non-2xx answer to a payment or a direct debit: transient for 429/5xx,
        permanent for the rest (a payment's account identifiers masked in the message)."""
        if status in TRANSIENT_HTTP_STATUSES:
            return TransientPartnerError(
                f"bank answered HTTP {status}",
                reason_code=f"HTTP{status}",
                retry_after=retry_after(headers, self.context.clock()),
            )
        self._verify_response(status, headers, body)
        code, message = self._error_detail(headers, body)
        if isinstance(order, CollectionOrder):
            log.warning("bank refused direct debit %s: HTTP %s %s", order.id, status, code)
            text = f"bank refused the direct debit (HTTP {status}): {message}"
        else:
            log.warning("bank refused %s: HTTP %s %s", order.id, status, code)
            text = order.redact(f"bank refused the payment (HTTP {status}): {message}")
        return PermanentPartnerError(text, reason_code=code or f"HTTP{status}")

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
    def _check_echo(report: StatusReport | _ReportIndex, order: PaymentOrder, what: str) -> None:
        """A report that names another amount or currency for this payment is not about it: never act on it."""
        index = report if isinstance(report, _ReportIndex) else _ReportIndex(report)
        for tx in index.transactions.get(order.id, ()):
            if tx.amount is None:
                continue
            if tx.currency != order.money.currency or tx.amount != order.money.amount:
                raise TransientPartnerError(
                    f"bank {what} for {order.id} names {tx.amount} {tx.currency}, "
                    f"not {order.money.amount} {order.money.currency}"
                )

    @staticmethod
    def _own_update(report: StatusReport | _ReportIndex, order: PaymentOrder) -> StatusUpdate | None:
        """The status in ``report`` that speaks for ``order``, if any."""
        index = report if isinstance(report, _ReportIndex) else _ReportIndex(report)
        found = index.by_id.get(order.id)
        if found is None and order.partner_reference:
            found = index.by_reference.get(order.partner_reference)
        return found

    # -- Adapter API ----------------------------------------------------------------

    def render(self, order: PaymentOrder) -> RenderedMessage:
        """The pain.001 the bank would receive, valid against its XSD (``PermanentPartnerError`` FF01 if not)."""
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
        return RenderedMessage(PAIN001_VERSION, "application/xml; charset=utf-8", body)

    async def submit(self, order: PaymentOrder) -> SubmitResult:
        """POST one pain.001; map the bank's signed pain.002 answer to a ``SubmitResult``.

        2xx + ACTC/ACSP/... → ``submitted``; 2xx + ACSC → ``settled``; 2xx + RJCT →
        ``rejected`` with the ISO reason code. 429/5xx, timeouts and connection
        errors → ``TransientPartnerError``; other 4xx → ``PermanentPartnerError``
        with the bank's reason code; an order the XSD rejects never leaves.
        """
        body = self.render(order).body
        headers = {
            "Content-Type": "application/xml; charset=utf-8",
            IDEMPOTENCY_HEADER: order.id,
            CALLBACK_URL_HEADER: self.context.callback_url,
        }
        status, resp_headers, resp_body = await self._call("POST", f"{self.base_url}/pain001", body, headers)
        if not 200 <= status < 300:
            raise self._refusal(status, resp_headers, resp_body, order)
        self._verify_response(status, resp_headers, resp_body)
        return self._submit_result(self._report(resp_headers, resp_body, "answer"), order)

    def _submit_result(self, report: StatusReport | _ReportIndex, order: PaymentOrder) -> SubmitResult:
        """What the bank's answer ``report`` says about ``order`` (a ``_ReportIndex`` for many orders)."""
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

    async def submit_many(self, orders: Sequence[PaymentOrder]) -> list[SubmitResult | Exception]:
        """POST one pain.001 carrying every order; read each order's status from the one pain.002 answer.

        Each payment keeps ``order.id`` as its InstrId, the bank's per-payment idempotency key: a
        payment the bank holds already (sent before in another message) is answered with its current
        status, not taken again. The message's ``Idempotency-Key`` is its MsgId, derived from the
        orders it carries, so the same batch sent again is a replay. 429/5xx and transport errors are
        the answer for every order; a message the bank or the XSD refuses as a whole is sent again one
        payment at a time, so one bad payment cannot fail the others.
        """
        if len(orders) < 2 or not self.settings["bulk_submit"]:
            return await super().submit_many(orders)
        now = self.context.clock()
        message_id = _bulk_message_id(orders)
        try:
            body = build_pain001_many(
                [(order, order.requested_execution_date or now.date()) for order in orders],
                message_id=message_id,
                created_at=now,
            )
        except ContractError:
            return await super().submit_many(orders)  # one by one: the bad one fails alone, with its reason
        headers = {
            "Content-Type": "application/xml; charset=utf-8",
            IDEMPOTENCY_HEADER: message_id,
            CALLBACK_URL_HEADER: self.context.callback_url,
        }
        try:
            status, resp_headers, resp_body = await self._call("POST", f"{self.base_url}/pain001", body, headers)
            if status in TRANSIENT_HTTP_STATUSES:
                raise self._refusal(status, resp_headers, resp_body, orders[0])
            if not 200 <= status < 300:
                return await super().submit_many(orders)
            self._verify_response(status, resp_headers, resp_body)
            report = _ReportIndex(self._report(resp_headers, resp_body, "answer"))
        except AdapterError as exc:
            return [exc] * len(orders)
        answers: list[SubmitResult | Exception] = []
        for order in orders:
            try:
                answers.append(self._submit_result(report, order))
            except AdapterError as exc:
                answers.append(exc)
        log.info("bank took %d payments in message %s", len(orders), message_id)
        return answers

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

    # -- direct debits (collections) ------------------------------------------------

    def direct_debit(self, order: CollectionOrder, today: date) -> DirectDebit:
        """The pain.008 transaction for ``order`` submitted ``today``.

        The due date is the one the business unit asked for (``due_date``), else the earliest
        the scheme allows (D-1 TARGET2 business day, ``pre_notification_days`` of notice).
        ``MandateError`` when the dates cannot be met (due date too early, mandate signed after it).
        """
        assert self._creditor is not None and order.mandate is not None and order.payer.iban is not None
        mandate = order.mandate
        due_on = order.due_date or earliest_due_date(today, pre_notification_days=self._pre_notification_days)
        schedule_collection(
            due_on,
            mandate.sequence_type,
            today=today,
            signed_on=mandate.signature_date,
            pre_notification_days=self._pre_notification_days,
            pointer="/due_date",
        )
        text = " ".join(part for part in (order.reference, order.description) if part)
        return DirectDebit(
            collection_id=order.id,
            reference=order.id,
            amount=order.money.amount,
            currency=order.money.currency,
            due_on=due_on,
            sequence_type=mandate.sequence_type,
            mandate_id=mandate.id,
            mandate_signed_on=mandate.signature_date,
            debtor_name=order.payer.name[:70],
            debtor_iban=order.payer.iban.iban,
            debtor_bic=order.payer.bic,
            creditor=self._creditor,
            remittance_information=text[:140] or None,
        )

    async def collect(self, order: CollectionOrder) -> CollectionResult:
        """POST one pain.008 (the collection id as Idempotency-Key, InstrId and EndToEndId).

        ``ACCP`` → ``submitted`` (the outcome comes with camt.054, see ``poll_collection``); ``RJCT`` →
        ``rejected`` with its reason code; impossible dates → ``rejected`` ``DT01`` without asking the
        bank; 429/5xx and transport errors → ``TransientPartnerError``; other refusals → permanent.
        """
        if self._creditor is None or order.kind != "direct_debit":
            raise PermanentPartnerError(f"{self.name} does not collect {order.kind}", reason_code="NOT_SUPPORTED")
        if order.mandate is None or order.payer.iban is None:
            raise PermanentPartnerError("a direct debit needs the payer's IBAN and a mandate", reason_code="MD01")
        now = self.context.clock()
        try:
            debit = self.direct_debit(order, now.date())
        except MandateError as exc:
            log.info("direct debit %s cannot be collected: %s", order.id, exc.message)
            return CollectionResult(
                CollectionStatus.REJECTED, "", reason_code=DATE_REJECT_CODE, reason=exc.message, partner_status="DATES"
            )
        try:
            body = build_pain008([debit], message_id=order.id[:35], created_at=now)
        except ContractError as exc:
            raise PermanentPartnerError(
                f"collection cannot be expressed as {PAIN008_VERSION}: {exc.message}", reason_code="FF01"
            ) from None
        headers = {"Content-Type": "application/xml; charset=utf-8", IDEMPOTENCY_HEADER: order.id}
        status, resp_headers, resp_body = await self._call("POST", f"{self.base_url}/pain008", body, headers)
        if not 200 <= status < 300:
            raise self._refusal(status, resp_headers, resp_body, order)
        self._verify_response(status, resp_headers, resp_body)
        report = self._report(resp_headers, resp_body, "answer")
        own = [s for s in collection_statuses(report) if s.instruction_id in (order.id, None)]
        if not own:
            raise TransientPartnerError(f"bank answer does not mention collection {order.id}")
        answer = own[0]
        reference = next(
            (t.account_servicer_reference for t in report.transactions if t.instruction_id == order.id), None
        )
        if answer.status == "rejected" and answer.outcome is not None:
            log.info("bank rejected direct debit %s: %s", order.id, answer.outcome.reason_code)
            return CollectionResult(
                CollectionStatus.REJECTED,
                reference or report.message_id,
                reason_code=answer.outcome.reason_code or None,
                reason=answer.outcome.reason,
                partner_status=f"RJCT {answer.outcome.kind}",
            )
        log.info("bank took direct debit %s as %s", order.id, reference)
        return CollectionResult(CollectionStatus.SUBMITTED, reference or report.message_id, partner_status="ACCP")

    async def notifications(self) -> list[StatementRead]:
        """The creditor account's camt.054 (signed request, signed answer), fetched at most once per
        ``notifications_cache_seconds`` so a poll round over many collections asks the bank once.
        A failed fetch is remembered for as long, so a bank outage costs one request per round too."""
        now = time.monotonic()
        if self._notifications is not None and now - self._notifications[0] < float(
            self.settings["notifications_cache_seconds"]
        ):
            answer = self._notifications[1]
            if isinstance(answer, AdapterError):
                raise answer.with_traceback(None)
            return answer
        try:
            reports = await self._fetch_notifications()
        except AdapterError as exc:
            self._notifications = (now, exc)
            raise
        self._notifications = (now, reports)
        return reports

    async def _fetch_notifications(self) -> list[StatementRead]:
        body = await self._fetch(f"{self.base_url}{self.settings['notifications_path']}", "camt.054")
        try:
            reports = read_camt054(body)
        except ContractError as exc:
            raise TransientPartnerError(f"bank notification is not a valid camt.054: {exc.message}") from None
        return reports

    async def fetch_statements(self, request: StatementFetch) -> list[FetchedFile]:
        """The camt.053 of each closed day asked for, then the camt.054 notifications after the last one stored.

        Signed requests, signed answers (``statements_path?date=``, ``notifications_path?after=``: one
        ``Ntfctn`` per movement, numbered, so each is stored once and a missing one is a gap).
        """
        files = []
        for day in request.closed_days():
            url = f"{self.base_url}{self.settings['statements_path']}?date={day.isoformat()}"
            files.append(FetchedFile("camt.053", f"camt.053 {day.isoformat()}", await self._fetch(url, "camt.053")))
        after = int(request.after.get("camt.054", 0))
        url = f"{self.base_url}{self.settings['notifications_path']}?after={after}"
        files.append(FetchedFile("camt.054", f"camt.054 after {after}", await self._fetch(url, "camt.054")))
        return files

    async def _fetch(self, url: str, what: str) -> bytes:
        status, headers, body = await self._call("GET", url, b"", {})
        if status in TRANSIENT_HTTP_STATUSES:
            raise TransientPartnerError(f"bank answered HTTP {status} for {what}", reason_code=f"HTTP{status}")
        self._verify_response(status, headers, body)
        if not 200 <= status < 300:
            raise PermanentPartnerError(f"bank refused the {what} request (HTTP {status})")
        return body

    async def poll_collection(self, order: CollectionOrder) -> CollectionUpdate | None:
        """What the camt.054 notifications say about a direct debit: its latest outcome, or ``None``."""
        if order.kind != "direct_debit" or self._creditor is None:
            return None
        return collection_update(order, await self.notifications())


def _bulk_message_id(orders: Sequence[PaymentOrder]) -> str:
    """A bulk pain.001's MsgId (Max35Text): the same orders always give the same id."""
    digest = hashlib.sha256("\n".join(sorted(order.id for order in orders)).encode()).hexdigest()
    return f"BULK{digest[:31]}"


def _described(update: StatusUpdate) -> StatusUpdate:
    """Fill in a readable reason for a reason code the bank sent without text."""
    if update.reason_code and not update.reason:
        return dataclasses.replace(update, reason=describe_reason(update.reason_code, None))
    return update


def _creditor(settings: Mapping[str, Any]) -> Creditor | None:
    """The configured creditor (name, IBAN, CI) direct debits are collected for; ``None`` if not set."""
    names = ("creditor_name", "creditor_iban", "creditor_id")
    given = [n for n in names if settings.get(n)]
    if not given:
        return None
    if len(given) != len(names):
        missing = ", ".join(n for n in names if n not in given)
        raise ConfigError(f"partners.iso20022_bank: direct debits need {missing} too")
    return Creditor(
        name=str(settings["creditor_name"]),
        iban=str(settings["creditor_iban"]).replace(" ", "").upper(),
        creditor_id=validate_creditor_id(str(settings["creditor_id"]), pointer="/creditor_id"),
        bic=settings.get("creditor_bic"),
    )


def collection_update(order: CollectionOrder, reports: Sequence[StatementRead]) -> CollectionUpdate | None:
    """The latest outcome of ``order`` in camt.054 ``reports``: returned (an R-transaction after settlement:
    return, or refund MD06/MD01 with its window) over rejected (before settlement) over collected."""
    collected = [
        c
        for c in collected_debits(reports)
        if c.instruction_id == order.id and (c.amount, c.currency) == (order.money.amount, order.money.currency)
    ]
    r_txs = [r for r in r_transactions(reports) if r.instruction_id == order.id]
    settled_on = collected[0].booked_on if collected else None
    for r in [r for r in r_txs if r.settled] or [r for r in r_txs if not r.settled]:
        outcome = r.outcome
        reason = outcome.reason
        if outcome.kind == "refund":
            reason = _refund_window(reason, outcome.reason_code, settled_on or r.booked_on, r.booked_on)
        return CollectionUpdate(
            CollectionStatus(outcome.status),
            collection_id=order.id,
            partner_status=outcome.kind,
            reason_code=outcome.reason_code or None,
            reason=reason,
        )
    if collected:
        return CollectionUpdate(CollectionStatus.COLLECTED, collection_id=order.id, partner_status="BOOK")
    return None


def _refund_window(reason: str, code: str, settled_on: date | None, claimed_on: date | None) -> str:
    """The reason of a refund with its window: claimed within 8 weeks (MD06) or 13 months (MD01), or late."""
    if settled_on is None or claimed_on is None:
        return reason
    deadline = refund_deadline(code, settled_on)
    window = "8-week" if code == "MD06" else "13-month"
    timely = "within" if refund_admissible(code, settled_on, claimed_on) else "after"
    return f"{reason} (refund claimed {claimed_on.isoformat()}, {timely} the {window} window ending {deadline})"


class _ReportIndex:
    """A status report read once for many payments: its updates and transactions by instruction id.

    Looking each payment of a bulk answer up in the report would read the whole report per
    payment (quadratic in the message size); this keeps the first update per instruction id
    (and per partner reference, among those without an instruction id), as a scan would find.
    """

    def __init__(self, report: StatusReport) -> None:
        self.message_id = report.message_id
        self.by_id: dict[str, StatusUpdate] = {}
        self.by_reference: dict[str, StatusUpdate] = {}
        for update in status_updates(report):
            if update.instruction_id is not None:
                self.by_id.setdefault(update.instruction_id, update)
            elif update.partner_reference is not None:
                self.by_reference.setdefault(update.partner_reference, update)
        self.transactions: dict[str, list[TransactionStatus]] = {}
        for tx in report.transactions:
            if tx.instruction_id is not None:
                self.transactions.setdefault(tx.instruction_id, []).append(tx)
