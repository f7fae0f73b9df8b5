"""The card/wallet acquirer adapter: payouts and refunds over a REST JSON API.

Wire protocol (what the acquirer, and its simulator, speak; docs/adapters/card_acquirer.md):

- ``POST {base_url}/v1/payouts`` with a ``payout-create`` JSON body; headers
  ``Authorization: Bearer <api_key>``, ``Idempotency-Key: <instruction id>``
  and ``X-Callback-Url``. The acquirer answers a ``payout`` object (2xx) or
  ``{"error": {"type", "code", "message"}}``. Same key + same body → the same
  answer; same key + another body → ``409 idempotency_error``.
- ``GET {base_url}/v1/payouts/{instruction id}`` answers the current ``payout``
  object, 404 if the acquirer does not know it.
- The final status arrives by webhook (a ``webhook-event``), signed in
  ``Acquirer-Signature: t=<unix>,v1=<hex HMAC-SHA256 of "t.body">`` with the
  webhook secret; a timestamp outside the tolerance is a replay and refused.

Every message is checked against the JSON Schemas in
``contracts/partners/card_acquirer/`` — what the adapter sends before it
leaves, what it receives before it is acted on. Codes are mapped by the tables
in ``gateway_adapters.card_acquirer.codes``.
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
    CollectionOrder,
    CollectionResult,
    CollectionUpdate,
    HttpAdapter,
    PaymentOrder,
    RefundResult,
    RenderedMessage,
    StatusUpdate,
    SubmitResult,
    http_settings_schema,
)
from gateway.contracts.safejson import decode_partner_json
from gateway.domain.accounts import WalletAccount, mask
from gateway.domain.collection_status import CollectionStatus
from gateway.domain.datetimes import datetime_from_unix
from gateway.domain.money import Money
from gateway.domain.statements import FetchedFile, StatementFetch
from gateway.domain.status import Status
from gateway.errors import (
    ContractError,
    DomainError,
    FieldError,
    PermanentPartnerError,
    TransientPartnerError,
)
from gateway.partners.http import (
    CALLBACK_URL_HEADER,
    IDEMPOTENCY_HEADER,
    TRANSIENT_HTTP_STATUSES,
    header,
    retry_after,
)
from gateway_adapters.card_acquirer.codes import (
    CHARGE_EVENT_STATUSES,
    CHARGE_STATUSES,
    CHARGEBACK_REASONS,
    EVENT_STATUSES,
    PAYOUT_STATUSES,
    REROUTE,
    rule_for,
)
from gateway_adapters.card_acquirer.contracts import (
    CHARGE,
    CHARGE_CREATE,
    CHARGE_EVENT,
    ERROR,
    PAYOUT,
    PAYOUT_CREATE,
    REFUND,
    REFUND_CREATE,
    WEBHOOK_EVENT,
    contract_files,
    validate,
)

__all__ = ["CALLBACK_URL_HEADER", "SIGNATURE_HEADER", "CardAcquirerAdapter"]

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "Acquirer-Signature"

_DEFAULT_CURRENCIES = ("EUR", "USD", "GBP")
_DEFAULT_MAX_AMOUNT = "100000.00"
#: how long to wait before retrying after the acquirer refused our API key (an operator must fix it)
_AUTH_RETRY_AFTER = 60.0


def _json(body: bytes) -> Any:
    return decode_partner_json(body, "acquirer message")


class CardAcquirerAdapter(HttpAdapter):
    """A card/wallet acquirer: JSON payouts and refunds to wallets, signed webhooks back.

    Not ``instant``: the acquirer accepts a payout at once but pays it out
    later (``pending`` → ``in_transit`` → ``paid``), so the final status always
    comes by webhook or poll.
    """

    name: ClassVar[str] = "card_acquirer"
    partner_label: ClassVar[str] = "the acquirer"
    account_kinds: ClassVar[frozenset[str]] = frozenset({"wallet"})
    payment_types: ClassVar[frozenset[str]] = frozenset({"payout", "refund"})
    instant: ClassVar[bool] = False
    partner_contracts: ClassVar[Mapping[str, str]] = contract_files()
    settings_schema: ClassVar[Mapping[str, Any]] = http_settings_schema(
        ["api_key", "webhook_secret"],
        currencies=_DEFAULT_CURRENCIES,
        max_amount=_DEFAULT_MAX_AMOUNT,
        properties={
            "api_key": {"type": "string", "pattern": "^sk_(test|live)_[A-Za-z0-9_]{8,}$"},
            "settlements_path": {"type": "string", "pattern": "^/", "default": "/v1/settlements"},
        },
    )
    #: the day's settlement report (``card_settlement``): fetched for each closed day (``fetch_statements``)
    statement_sources: ClassVar[frozenset[str]] = frozenset({"card_settlement"})

    collection_kinds: ClassVar[frozenset[str]] = frozenset({"card_charge", "wallet_charge"})

    def __init__(self, settings: Mapping[str, Any], context: AdapterContext) -> None:
        super().__init__(settings, context)
        self._api_key = str(self.settings["api_key"])
        self._webhook_secret = str(self.settings["webhook_secret"]).encode()
        self.collection_currencies = frozenset(self.settings["currencies"])

    # -- messages -------------------------------------------------------------------

    def payout_request(self, order: PaymentOrder) -> dict[str, Any]:
        """The ``payout-create`` body for ``order``; ``PermanentPartnerError`` if it cannot be one."""
        account = order.creditor.account
        if not isinstance(account, WalletAccount):
            raise PermanentPartnerError(
                f"the acquirer pays out to wallets only, not to {account.kind} accounts", reason_code=REROUTE
            )
        body: dict[str, Any] = {
            "amount": order.money.minor,
            "currency": order.money.currency.lower(),
            "type": order.type,
            "destination": {"wallet": account.wallet, "name": order.creditor.name[:140]},
            "statement_descriptor": order.reference[:22],
            "metadata": {
                "instruction_id": order.id,
                "reference": order.reference[:64],
                "business_unit": order.business_unit[:64],
            },
        }
        if order.remittance_information:
            body["description"] = order.remittance_information[:500]
        try:
            validate(PAYOUT_CREATE, body)
        except ContractError as exc:
            raise PermanentPartnerError(
                f"order cannot be expressed as a payout: {exc.message}".replace(account.wallet, mask(account.wallet)),
                reason_code="FF01",
            ) from None
        return body

    def _headers(self, **extra: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._api_key}", "Accept": "application/json", **extra}

    async def _call(self, method: str, url: str, body: bytes | None, headers: dict[str, str]) -> tuple[int, Any, bytes]:
        return await self.http.request(method, url, body, headers)

    @staticmethod
    def _payout(headers: Mapping[str, str], body: bytes, order: PaymentOrder, what: str) -> dict[str, Any]:
        """A ``payout`` object the contract accepts, about ``order``, or ``TransientPartnerError``.

        An answer we cannot trust (not JSON, off-contract, about another payment
        or amount) means we do not know what the acquirer decided; retrying with
        the same Idempotency-Key is safe, acting on it is not.
        """
        content_type = (header(headers, "Content-Type") or "").lower()
        if "json" not in content_type:
            raise TransientPartnerError(f"acquirer {what} is {content_type or 'untyped'}, not JSON")
        try:
            payout = _json(body)
            validate(PAYOUT, payout)
        except ContractError as exc:
            raise TransientPartnerError(f"acquirer {what} is not a valid payout: {exc.message}") from None
        if payout["metadata"]["instruction_id"] != order.id:
            raise TransientPartnerError(f"acquirer {what} is about another payment, not {order.id}")
        try:
            money = Money.from_minor(payout["amount"], payout["currency"].upper())
        except DomainError as exc:
            raise TransientPartnerError(f"acquirer {what} names an invalid amount: {exc.message}") from None
        if money != order.money:
            raise TransientPartnerError(f"acquirer {what} for {order.id} names {money}, not {order.money}")
        return payout

    def _refusal(self, status: int, headers: Mapping[str, str], body: bytes) -> tuple[str | None, Exception]:
        """(acquirer code, error) for a non-2xx answer, by the ``ERROR_CODES`` table.

        A ``reject`` code comes back as the code with ``None`` for the error: the
        caller turns it into a rejection.
        """
        wait = retry_after(headers, self.context.clock())
        try:
            error = _json(body)
            validate(ERROR, error)
            code, kind, message = error["error"]["code"], error["error"]["type"], error["error"]["message"][:300]
        except ContractError:
            code, kind, message = None, None, "unreadable error body"
        rule = rule_for(code)
        if rule is not None and rule.outcome == "retry":
            if code == "invalid_api_key":
                wait = wait or _AUTH_RETRY_AFTER
                log.error("the card acquirer refused the configured API key")
            return code, TransientPartnerError(
                f"acquirer answered HTTP {status} {code}", reason_code=rule.reason_code, retry_after=wait
            )
        if rule is not None and rule.outcome == "reroute":
            return code, PermanentPartnerError(
                f"acquirer cannot carry the payment: {code}: {message}", reason_code=REROUTE
            )
        if rule is not None:
            return code, PermanentPartnerError(f"acquirer declined: {code}", reason_code=rule.reason_code)
        if status in TRANSIENT_HTTP_STATUSES:
            return code, TransientPartnerError(
                f"acquirer answered HTTP {status}", reason_code=f"HTTP{status}", retry_after=wait
            )
        if kind == "idempotency_error":
            reason_code = "IDEMPOTENCY_CONFLICT"
        elif kind == "invalid_request_error":
            reason_code = "FF01"
        else:
            reason_code = (code or f"HTTP{status}").upper()
        return code, PermanentPartnerError(
            f"acquirer refused the payout (HTTP {status}): {message}", reason_code=reason_code
        )

    # -- Adapter API ----------------------------------------------------------------

    def render(self, order: PaymentOrder) -> RenderedMessage:
        """The ``payout-create`` body the acquirer would receive, valid against its contract."""
        return RenderedMessage(
            PAYOUT_CREATE, "application/json", json.dumps(self.payout_request(order), separators=(",", ":")).encode()
        )

    async def submit(self, order: PaymentOrder) -> SubmitResult:
        """POST one payout; map the answer by the code tables.

        2xx ``pending``/``in_transit`` → ``submitted``; ``paid`` → ``settled``;
        ``failed`` → ``rejected`` with the mapped reason code. Error codes: ``retry``
        → ``TransientPartnerError``; ``reject`` → ``rejected``; ``reroute`` →
        ``PermanentPartnerError(reason_code="REROUTE")``: the dispatcher sends the
        payment back to routing, which skips this adapter.
        """
        payload = self.render(order).body
        headers = self._headers(
            **{
                "Content-Type": "application/json",
                IDEMPOTENCY_HEADER: order.id,
                CALLBACK_URL_HEADER: self.context.callback_url,
            }
        )
        status, resp_headers, body = await self._call("POST", f"{self.base_url}/v1/payouts", payload, headers)
        if not 200 <= status < 300:
            code, error = self._refusal(status, resp_headers, body)
            rule = rule_for(code)
            if isinstance(error, PermanentPartnerError) and rule is not None and rule.outcome == "reject":
                log.info("acquirer declined %s: %s", order.id, code)
                return SubmitResult(
                    status=Status.REJECTED,
                    partner_reference="",
                    reason_code=rule.reason_code,
                    reason=rule.description,
                    partner_status=code,
                )
            log.warning("acquirer refused %s: HTTP %s %s", order.id, status, code)
            raise error
        payout = self._payout(resp_headers, body, order, "answer")
        update = _update(payout)
        if update.reason_code == REROUTE:
            raise PermanentPartnerError(
                f"acquirer cannot carry the payment: {payout.get('failure_code')}", reason_code=REROUTE
            )
        log.info("acquirer took %s as %s (%s)", order.id, payout["id"], payout["status"])
        return SubmitResult(
            status=update.status or Status.SUBMITTED,
            partner_reference=payout["id"],
            reason_code=update.reason_code,
            reason=update.reason,
            partner_status=payout["status"],
        )

    async def poll(self, order: PaymentOrder) -> StatusUpdate | None:
        """GET the payout by instruction id; ``None`` when the acquirer does not know it (404)."""
        url = f"{self.base_url}/v1/payouts/{quote(order.id, safe='')}"
        status, headers, body = await self._call("GET", url, None, self._headers())
        if status == 404:
            return None
        if not 200 <= status < 300:
            _, error = self._refusal(status, headers, body)
            if isinstance(error, TransientPartnerError):
                raise error
            raise PermanentPartnerError(f"acquirer refused the status query (HTTP {status})")
        return _update(self._payout(headers, body, order, "status answer"))

    # -- collections: charges, captures, refunds, chargebacks ---------------------------------------

    def charge_request(self, order: CollectionOrder) -> dict[str, Any]:
        """The ``charge-create`` body for ``order``; ``PermanentPartnerError`` if it cannot be one."""
        payer = order.payer
        source: dict[str, str] = {"name": payer.name[:140]}
        if order.kind == "card_charge" and payer.card_token:
            source["token"] = payer.card_token
        elif order.kind == "wallet_charge" and payer.wallet:
            source["wallet"] = payer.wallet
        else:
            raise PermanentPartnerError(f"the acquirer cannot collect a {order.kind}", reason_code="NO_ROUTE")
        body: dict[str, Any] = {
            "amount": order.money.minor,
            "currency": order.money.currency.lower(),
            "source": source,
            "capture": order.capture != "manual",
            "statement_descriptor": order.reference[:22],
            "metadata": {
                "collection_id": order.id,
                "reference": order.reference[:64],
                "business_unit": order.business_unit[:64],
            },
        }
        if order.description:
            body["description"] = order.description[:500]
        try:
            validate(CHARGE_CREATE, body)
        except ContractError as exc:
            message = exc.message.replace(payer.instrument, mask(payer.instrument)) if payer.instrument else exc.message
            raise PermanentPartnerError(
                f"collection cannot be expressed as a charge: {message}", reason_code="FF01"
            ) from None
        return body

    @staticmethod
    def _object(headers: Mapping[str, str], body: bytes, message: str, what: str) -> dict[str, Any]:
        """A ``message`` object the contract accepts, or ``TransientPartnerError`` (we do not know what happened)."""
        content_type = (header(headers, "Content-Type") or "").lower()
        if "json" not in content_type:
            raise TransientPartnerError(f"acquirer {what} is {content_type or 'untyped'}, not JSON")
        try:
            obj = _json(body)
            validate(message, obj)
        except ContractError as exc:
            raise TransientPartnerError(f"acquirer {what} is not a valid {message}: {exc.message}") from None
        return dict(obj)

    def _charge(self, headers: Mapping[str, str], body: bytes, order: CollectionOrder, what: str) -> dict[str, Any]:
        charge = self._object(headers, body, CHARGE, what)
        if charge["metadata"]["collection_id"] != order.id:
            raise TransientPartnerError(f"acquirer {what} is about another collection, not {order.id}")
        try:
            money = Money.from_minor(charge["amount"], charge["currency"].upper())
        except DomainError as exc:
            raise TransientPartnerError(f"acquirer {what} names an invalid amount: {exc.message}") from None
        if money != order.money:
            raise TransientPartnerError(f"acquirer {what} for {order.id} names {money}, not {order.money}")
        return charge

    async def _charge_call(self, order: CollectionOrder, url: str, payload: bytes | None, key: str) -> CollectionResult:
        headers = self._headers(
            **{
                "Content-Type": "application/json",
                IDEMPOTENCY_HEADER: key,
                CALLBACK_URL_HEADER: self.context.callback_url,
            }
        )
        status, resp_headers, body = await self._call("POST", url, payload, headers)
        if not 200 <= status < 300:
            code, error = self._refusal(status, resp_headers, body)
            rule = rule_for(code)
            if isinstance(error, PermanentPartnerError) and rule is not None and rule.outcome == "reject":
                log.info("acquirer declined collection %s: %s", order.id, code)
                return CollectionResult(
                    CollectionStatus.REJECTED,
                    "",
                    reason_code=rule.reason_code,
                    reason=rule.description,
                    partner_status=code,
                )
            raise error
        charge = self._charge(resp_headers, body, order, "answer")
        update = _collection_update(charge)
        return CollectionResult(
            status=update.status or CollectionStatus.SUBMITTED,
            partner_reference=charge["id"],
            reason_code=update.reason_code,
            reason=update.reason,
            partner_status=charge["status"],
        )

    async def collect(self, order: CollectionOrder) -> CollectionResult:
        """POST one charge, the collection id as Idempotency-Key: ``pending`` → submitted, ``succeeded`` → collected."""
        payload = json.dumps(self.charge_request(order), separators=(",", ":")).encode()
        return await self._charge_call(order, f"{self.base_url}/v1/charges", payload, order.id)

    async def capture(self, order: CollectionOrder) -> CollectionResult:
        """Capture an authorised charge (idempotent at the acquirer: a second capture answers the same)."""
        url = f"{self.base_url}/v1/charges/{quote(order.id, safe='')}/capture"
        return await self._charge_call(order, url, b"{}", f"{order.id}:capture")

    async def refund_collection(self, order: CollectionOrder, refund_id: str, money: Money) -> RefundResult:
        """POST a refund of the charge (the refund id as Idempotency-Key)."""
        request = {"amount": money.minor, "metadata": {"refund_id": refund_id, "collection_id": order.id}}
        validate(REFUND_CREATE, request)
        headers = self._headers(**{"Content-Type": "application/json", IDEMPOTENCY_HEADER: refund_id})
        url = f"{self.base_url}/v1/charges/{quote(order.id, safe='')}/refunds"
        status, resp_headers, body = await self._call(
            "POST", url, json.dumps(request, separators=(",", ":")).encode(), headers
        )
        if not 200 <= status < 300:
            code, error = self._refusal(status, resp_headers, body)
            if isinstance(error, TransientPartnerError):
                raise error
            return RefundResult(False, reason_code=(code or f"HTTP{status}").upper(), reason=str(error))
        refund = self._object(resp_headers, body, REFUND, "refund answer")
        if refund["metadata"]["refund_id"] != refund_id or refund["amount"] != money.minor:
            raise TransientPartnerError(f"acquirer refund answer is not about refund {refund_id} of {money}")
        return RefundResult(
            refund["status"] == "succeeded",
            partner_reference=refund["id"],
            reason_code=(refund.get("failure_code") or "").upper() or None,
        )

    async def poll_collection(self, order: CollectionOrder) -> CollectionUpdate | None:
        """GET the charge by collection id; ``None`` when the acquirer does not know it (404)."""
        url = f"{self.base_url}/v1/charges/{quote(order.id, safe='')}"
        status, headers, body = await self._call("GET", url, None, self._headers())
        if status == 404:
            return None
        if not 200 <= status < 300:
            _, error = self._refusal(status, headers, body)
            if isinstance(error, TransientPartnerError):
                raise error
            raise PermanentPartnerError(f"acquirer refused the charge query (HTTP {status})")
        return _collection_update(self._charge(headers, body, order, "status answer"))

    # -- statements -----------------------------------------------------------------------------------

    async def fetch_statements(self, request: StatementFetch) -> list[FetchedFile]:
        """The settlement report of each closed day asked for (``GET {settlements_path}/{day}``, Bearer).

        A day's report is final once the day is over, so only closed days are asked for; a day
        already imported adds nothing (its payout batches are stored once, by batch id).
        """
        files = []
        for day in request.closed_days():
            url = f"{self.base_url}{self.settings['settlements_path']}/{day.isoformat()}"
            status, headers, body = await self._call("GET", url, None, self._headers())
            if not 200 <= status < 300:
                _, error = self._refusal(status, headers, body)
                if isinstance(error, TransientPartnerError):
                    raise error
                raise PermanentPartnerError(f"acquirer refused the settlement report of {day} (HTTP {status})")
            files.append(FetchedFile("card_settlement", f"card settlement {day.isoformat()}", body))
        return files

    def parse_collection_callback(self, headers: Mapping[str, str], body: bytes) -> list[CollectionUpdate] | None:
        """A ``charge.*`` event (``Acquirer-Signature`` verified before anything is read from it) as a
        collection update; ``None`` for any other body, which ``parse_callback`` verifies and reads."""
        try:
            event = _json(body)
        except ContractError:
            return None  # not JSON: parse_callback refuses it, signature first
        if not (isinstance(event, dict) and str(event.get("type", "")).startswith("charge.")):
            return None
        self.verify_signed(self._webhook_secret, body, headers, SIGNATURE_HEADER)
        validate(CHARGE_EVENT, event)
        update = _collection_update(event["data"]["object"], CHARGE_EVENT_STATUSES[event["type"]])
        try:
            occurred_at = datetime_from_unix(event["created"])
        except ValueError as exc:
            raise ContractError(str(exc), errors=[FieldError("/created", str(exc))]) from None
        return [dataclasses.replace(update, occurred_at=occurred_at)]

    def parse_callback(self, headers: Mapping[str, str], body: bytes) -> list[StatusUpdate]:
        """Verify ``Acquirer-Signature`` (first, with the replay tolerance), then read the event."""
        self.verify_signed(self._webhook_secret, body, headers, SIGNATURE_HEADER)
        event = _json(body)
        validate(WEBHOOK_EVENT, event)
        payout = event["data"]["object"]
        update = _update(payout, EVENT_STATUSES[event["type"]])
        try:
            occurred_at = datetime_from_unix(event["created"])
        except ValueError as exc:  # the contract bounds it; this is the reader's own guard
            raise ContractError(str(exc), errors=[FieldError("/created", str(exc))]) from None
        return [dataclasses.replace(update, occurred_at=occurred_at)]


def _collection_update(charge: Mapping[str, Any], status: CollectionStatus | None = None) -> CollectionUpdate:
    """The gateway's reading of a charge object (``status`` from the event type when there is one)."""
    status = CHARGE_STATUSES[charge["status"]] if status is None else status
    reason_code = reason = None
    if status is CollectionStatus.REJECTED:
        code = charge.get("failure_code")
        rule = rule_for(code)
        reason_code = rule.reason_code if rule is not None else (code or "MS03").upper()
        reason = charge.get("failure_message") or (rule.description if rule is not None else code)
    elif status is CollectionStatus.CHARGED_BACK:
        reason_code = charge.get("dispute_reason_code") or "CHARGEBACK"
        reason = f"chargeback: {CHARGEBACK_REASONS.get(reason_code, 'reason code ' + reason_code)}"
    return CollectionUpdate(
        status=status,
        collection_id=charge["metadata"]["collection_id"],
        partner_reference=charge["id"],
        partner_status=charge["status"],
        reason_code=reason_code,
        reason=reason,
    )


def _update(payout: Mapping[str, Any], status: Status | None = None) -> StatusUpdate:
    """The gateway's reading of a payout object (``status`` from the event type when there is one)."""
    status = PAYOUT_STATUSES[payout["status"]] if status is None else status
    reason_code = reason = None
    if status in (Status.REJECTED, Status.RETURNED, Status.FAILED):
        code = payout.get("failure_code")
        rule = rule_for(code)
        if rule is not None and rule.outcome == "reroute" and status is Status.REJECTED:
            status = Status.FAILED
        reason_code = rule.reason_code if rule is not None else (code or "MS03").upper()
        reason = payout.get("failure_message") or (rule.description if rule is not None else code)
    return StatusUpdate(
        status=status,
        instruction_id=payout["metadata"]["instruction_id"],
        partner_reference=payout["id"],
        partner_status=payout["status"],
        reason_code=reason_code,
        reason=reason,
    )
