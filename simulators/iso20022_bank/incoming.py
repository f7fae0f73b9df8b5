"""Money in on the bank simulator: credit transfers a payer sends to the enterprise's account.

QA and tests make them happen through the control surface (unsigned, like every ``/_sim`` route):

- ``POST /_sim/incoming-transfers`` — ``{"payer_name", "payer_iban", "amount", "currency",
  "remittance_text", "creditor_reference", "value_date", "booking_date", "end_to_end_id",
  "account"}`` (``payer_name``, ``amount`` required; ``currency`` EUR; ``value_date`` today (UTC);
  ``booking_date`` the value date; ``end_to_end_id`` ``NOTPROVIDED``; ``account`` the creditor's
  account of the direct debit desk). ``201`` with the movement: its number on the account and
  the bank's reference (``AcctSvcrRef``). A bad field is ``400`` naming it; nothing is booked.
- ``GET /_sim/incoming-transfers`` — every transfer injected (IBANs masked).

An injected transfer is a movement on the account like a collected direct debit: it is in the
camt.054 notifications (``GET /camt054``, ``/_sim/camt054``; one ``Ntfctn`` per movement with
``?after=N``) and, as a ``CRDT`` entry (bank transaction code ``PMNT/RCDT/ESCT``, the payer as
``Dbtr``/``DbtrAcct``, ``RmtInf`` with ``Ustrd`` and ``Strd/CdtrRefInf``), in the camt.053 of its
booking date, whose balances and ``TxsSummry`` count it. Both carry the same ``AcctSvcrRef``:
the gateway knows a notified credit when the day's statement brings it again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from aiohttp import web
from stdnum import iso11649

from gateway.domain.accounts import IbanAccount, mask
from gateway.domain.money import Money, validate_currency
from gateway.errors import GatewayError
from gateway_adapters.iso20022_bank.camt054 import NotificationEntry
from gateway_simulators.core import SIMULATOR
from gateway_simulators.iso20022_bank.direct_debits import CREDITOR_ACCOUNT, DESK

__all__ = ["BadTransfer", "add_incoming_routes", "parse_transfer"]

_FIELDS = frozenset(
    {
        "payer_name",
        "payer_iban",
        "amount",
        "currency",
        "remittance_text",
        "creditor_reference",
        "value_date",
        "booking_date",
        "end_to_end_id",
        "account",
    }
)


class BadTransfer(ValueError):
    """An injected transfer the simulator refuses: which field, and why."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True)
class _Text:
    name: str
    size: int


def _text(doc: dict[str, Any], spec: _Text, *, required: bool = False) -> str | None:
    value = doc.get(spec.name)
    if value is None:
        if required:
            raise BadTransfer(spec.name, "is required")
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > spec.size:
        raise BadTransfer(spec.name, f"must be a text of 1 to {spec.size} characters")
    return value.strip()


def _iban(doc: dict[str, Any], name: str) -> str | None:
    raw = _text(doc, _Text(name, 42))
    if raw is None:
        return None
    try:
        return IbanAccount.parse(raw, f"/{name}").iban
    except GatewayError as exc:
        raise BadTransfer(name, exc.message) from None


def _day(doc: dict[str, Any], name: str, default: date) -> date:
    raw = doc.get(name)
    if raw is None:
        return default
    try:
        return date.fromisoformat(str(raw))
    except ValueError:
        raise BadTransfer(name, f"must be a date YYYY-MM-DD, not {raw!r}") from None


def parse_transfer(doc: Any, *, today: date, servicer_reference: str) -> NotificationEntry:
    """An injection request as the movement the bank books; ``BadTransfer`` naming the first bad field."""
    if not isinstance(doc, dict):
        raise BadTransfer("body", "must be a JSON object")
    unknown = sorted(set(doc) - _FIELDS)
    if unknown:
        raise BadTransfer(unknown[0], "is not a field of an incoming transfer")
    payer = _text(doc, _Text("payer_name", 140), required=True)
    currency = _text(doc, _Text("currency", 3)) or "EUR"
    try:
        validate_currency(currency)
    except GatewayError as exc:
        raise BadTransfer("currency", exc.message) from None
    raw_amount = doc.get("amount")
    if not isinstance(raw_amount, str):
        raise BadTransfer("amount", "is required, a decimal string like '1450.00'")
    try:
        money = Money(raw_amount, currency)
    except GatewayError as exc:
        raise BadTransfer("amount", exc.message) from None
    if money.amount <= 0:
        raise BadTransfer("amount", "must be more than zero")
    reference = _text(doc, _Text("creditor_reference", 40))
    if reference is not None:
        if not iso11649.is_valid(reference):
            raise BadTransfer("creditor_reference", f"{reference!r} is not an ISO 11649 creditor reference (RF..)")
        reference = str(iso11649.compact(reference))
    value_on = _day(doc, "value_date", today)
    return NotificationEntry(
        kind="credit_transfer",
        amount=money.amount,
        currency=money.currency,
        booked_on=_day(doc, "booking_date", value_on),
        value_on=value_on,
        end_to_end_id=_text(doc, _Text("end_to_end_id", 35)) or "NOTPROVIDED",
        servicer_reference=servicer_reference,
        debtor_name=payer,
        debtor_iban=_iban(doc, "payer_iban"),
        creditor_iban=_iban(doc, "account") or CREDITOR_ACCOUNT,
        remittance_text=_text(doc, _Text("remittance_text", 140)),
        creditor_reference=reference,
    )


def _view(n: int, e: NotificationEntry) -> dict[str, Any]:
    return {
        "movement": n,
        "servicer_reference": e.servicer_reference,
        "end_to_end_id": e.end_to_end_id,
        "amount": str(e.amount),
        "currency": e.currency,
        "payer_name": e.debtor_name,
        "payer_iban": mask(e.debtor_iban) if e.debtor_iban else None,
        "account": mask(e.creditor_iban) if e.creditor_iban else None,
        "remittance_text": e.remittance_text,
        "creditor_reference": e.creditor_reference,
        "value_date": (e.value_on or e.booked_on).isoformat(),
        "booking_date": e.booked_on.isoformat(),
    }


async def inject_transfer(request: web.Request) -> web.Response:
    """Book a credit transfer from a payer on the enterprise's account (QA control)."""
    sim = request.app[SIMULATOR]
    desk = request.app[DESK]
    try:
        doc = await request.json()
    except ValueError:
        doc = None
    number = len(desk.movements) + 1
    try:
        entry = parse_transfer(
            doc, today=datetime.now(UTC).date(), servicer_reference=sim.new_id("SIMCT", f"incoming:{number}")
        )
    except BadTransfer as exc:
        error = {"code": "BAD_TRANSFER", "field": exc.field, "message": exc.message}
        return web.json_response({"error": error}, status=400)
    desk.movements.append(entry)
    sim.journal.record(
        "in",
        "incoming-transfer",
        method="POST",
        path=request.path,
        http_status=201,
        outcome="created",
        end_to_end_id=entry.end_to_end_id,
        partner_reference=entry.servicer_reference,
    )
    return web.json_response(_view(number, entry), status=201)


async def list_transfers(request: web.Request) -> web.Response:
    desk = request.app[DESK]
    found = [_view(n, e) for n, e in enumerate(desk.movements, start=1) if e.kind == "credit_transfer"]
    return web.json_response(found)


def add_incoming_routes(app: web.Application) -> None:
    """The control routes of money in (after ``add_direct_debit_routes``: the movements are the desk's)."""
    app.router.add_post("/_sim/incoming-transfers", inject_transfer)
    app.router.add_get("/_sim/incoming-transfers", list_transfers)
