"""The card acquirer's settlement report as statements: one payout batch, one line, itemised.

The report (JSON, ``GET /_sim/settlements/{day}`` on the simulator) holds payout
batches, one per currency and day. A batch declares its ``gross`` (charges in,
payouts out, chargebacks and returned payouts the other way), its ``fees`` and its
``net`` (gross - fees): what reaches (or, negative, leaves) the merchant's bank
account. Each batch is a ``Statement`` of its own (id: the batch id) with ONE line
of the net, which carries every transaction as a ``LineItem`` (its gross and fee):
reconciliation matches the line to all of them at once (1:N) and posts the fees.

Checked before anything is stored: every figure an integer in minor units, every
transaction's type known, the items' sum the declared gross, their fees the
declared fees, gross - fees the declared net.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from datetime import date
from typing import Any

from gateway.domain.statements import LineItem, Statement, StatementFormat, StatementLine
from gateway.errors import ContractError

__all__ = ["CARD_SETTLEMENT", "read_settlement_report", "statement_formats"]

SOURCE = "card_acquirer"
_SNIFF = re.compile(rb'^\s*\{.{0,200}?"object"\s*:\s*"settlement_report"', re.DOTALL)
#: transaction type -> the key naming the gateway's object
_KINDS = {
    "charge": "collection_id",
    "chargeback": "collection_id",
    "payout": "instruction_id",
    "payout_return": "instruction_id",
}
_PARTNER_KEY = {"charge": "charge", "chargeback": "charge", "payout": "payout", "payout_return": "payout"}


class SettlementReportError(ContractError):
    """The settlement report is not one the acquirer writes."""

    default_message = "invalid settlement report"


def _int(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise SettlementReportError(f"{where} must be an integer of minor units")
    return value


def _text(value: Any, where: str, size: int) -> str:
    if not isinstance(value, str) or not value or len(value) > size:
        raise SettlementReportError(f"{where} must be a string of 1 to {size} characters")
    return value


def _batch(raw: Any, n: int) -> Statement:
    where = f"/data/{n}"
    if not isinstance(raw, dict) or not isinstance(raw.get("transactions"), list):
        raise SettlementReportError(f"{where}: a payout batch needs its transactions")
    currency = _text(raw.get("currency"), f"{where}/currency", 3).upper()
    try:
        day = date.fromisoformat(_text(raw.get("day"), f"{where}/day", 10))
    except ValueError:
        raise SettlementReportError(f"{where}/day: not a date (YYYY-MM-DD)") from None
    batch_id = _text(raw.get("id"), f"{where}/id", 35)
    items = []
    for k, t in enumerate(raw["transactions"]):
        at = f"{where}/transactions/{k}"
        if not isinstance(t, dict) or t.get("type") not in _KINDS:
            raise SettlementReportError(f"{at}/type: one of {', '.join(_KINDS)}")
        kind = t["type"]
        items.append(
            LineItem(
                kind=kind,
                reference=_text(t.get(_KINDS[kind]), f"{at}/{_KINDS[kind]}", 64),
                amount_minor=_int(t.get("amount"), f"{at}/amount"),
                fee_minor=_int(t.get("fee"), f"{at}/fee"),
                partner_reference=_text(t.get(_PARTNER_KEY[kind]), f"{at}/{_PARTNER_KEY[kind]}", 64),
            )
        )
    gross, fees, net = (_int(raw.get(k), f"{where}/{k}") for k in ("gross", "fees", "net"))
    summed, charged = sum(i.amount_minor for i in items), sum(i.fee_minor for i in items)
    if summed != gross:
        raise SettlementReportError(f"{where}: its transactions sum to {summed}, it declares gross {gross}")
    if charged != fees:
        raise SettlementReportError(f"{where}: its fees sum to {charged}, it declares {fees}")
    if gross - fees != net:
        raise SettlementReportError(f"{where}: gross {gross} - fees {fees} is not the declared net {net}")
    lines = ()
    if items:
        lines = (
            StatementLine(
                amount_minor=abs(net),
                credit=net >= 0,
                currency=currency,
                booked_on=day,
                value_on=day,
                partner_reference=batch_id,
                counterparty_name="card acquirer payout",
                text=f"payout batch {batch_id}: {len(items)} transactions, fees {fees}"[:140],
                items=tuple(items),
            ),
        )
    return Statement(
        source=SOURCE,
        format="card_settlement",
        statement_id=batch_id,
        currency=currency,
        period_start=day,
        period_end=day,
        lines=lines,
        declared_count=len(lines),
    )


def read_settlement_report(body: bytes) -> list[Statement]:
    """Every payout batch of the report as a statement; ``SettlementReportError`` naming the first problem."""
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise SettlementReportError("not JSON") from None
    if not isinstance(doc, dict) or doc.get("object") != "settlement_report" or not isinstance(doc.get("data"), list):
        raise SettlementReportError('not a settlement report ({"object": "settlement_report", "data": [...]})')
    return [_batch(raw, n) for n, raw in enumerate(doc["data"])]


CARD_SETTLEMENT = StatementFormat(
    name="card_settlement",
    source=SOURCE,
    description="the card acquirer's settlement report: payout batches, gross per transaction, fees, net",
    sniff=lambda head: _SNIFF.search(head) is not None,
    read=read_settlement_report,
)


def statement_formats() -> Sequence[StatementFormat]:
    return [CARD_SETTLEMENT]
