"""NACHA files as statements: returns, notifications of change and settled entries; and the ODFI's
settlement report (``ach_settlement``), where each batch the ODFI settled is ONE debit line.

A NACHA file is its own statement: ``nacha.read_file`` checks every control
figure the format has (record counts, entry hashes, debit and credit totals per
batch and file, blocking) and refuses the file with every problem listed. Each
entry becomes a line; a return (addenda 99) carries its reason code and the
trace of the entry returned, a notification of change (addenda 98) is a
zero-amount ``change`` line. The statement id is the file's identity: origin,
creation date and time, and the file id modifier.

The settlement report (JSON, ``GET /statements/{day}`` on the ODFI simulator) is
what reaches the originator's account: per batch the ODFI settled that day, one
debit of the entries' total plus the ODFI's fees. Each batch line itemises its
entries (``LineItem`` of kind ``payout``, named by trace number, the gateway's
partner reference), so reconciliation matches the line to all of them at once
(1:N, the ``batch`` rule) and posts the fees. Checked before anything is stored:
every figure an integer of cents, the entries' sum the declared gross, their fees
the declared fees, gross + fees the declared debit.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from datetime import date
from typing import Any

from gateway.domain.accounts import mask
from gateway.domain.statements import LineItem, Statement, StatementFormat, StatementLine
from gateway.errors import ContractError
from gateway_adapters.ach_nacha.nacha import AchFile, ReturnAddenda, read_file

__all__ = ["ACH_SETTLEMENT", "NACHA", "read_ach_settlement", "read_nacha_statements"]

SOURCE = "ach_nacha"
_SNIFF = re.compile(rb"^101[ 0-9]{20}[0-9]{10}")
_SETTLEMENT_SNIFF = re.compile(rb'^\s*\{.{0,200}?"object"\s*:\s*"ach_settlement_report"', re.DOTALL)


def _yymmdd(value: str) -> date | None:
    value = value.strip()
    if len(value) != 6 or not value.isdigit():
        return None
    try:
        return date(2000 + int(value[:2]), int(value[2:4]), int(value[4:]))
    except ValueError:
        return None


def _statement(ach: AchFile) -> Statement:
    header = ach.header
    created = _yymmdd(header.get("creation_date"))
    lines = []
    for batch, entry in ach.entries():
        detail = entry.detail
        notice = next((a for a in entry.addenda if isinstance(a, ReturnAddenda)), None)
        kind = "booked"
        if notice is not None:
            kind = "return" if notice.get("addenda_type") == "99" else "change"
        lines.append(
            StatementLine(
                amount_minor=detail.amount_cents,
                credit=detail.is_credit,
                currency="USD",
                booked_on=_yymmdd(batch.header.get("settlement_date")) or created,
                value_on=_yymmdd(batch.header.get("effective_date")),
                partner_reference=detail.trace_number,
                counterparty_name=detail.get("name") or None,
                counterparty_account=mask(detail.get("account").strip()) if detail.get("account").strip() else None,
                kind=kind,
                reason_code=notice.get("reason_code") if notice is not None else None,
                original_reference=notice.get("original_trace") if notice is not None else None,
                text=(detail.get("individual_id") or None),
            )
        )
    origin = header.get("immediate_origin").strip()
    stamp = f"{header.get('creation_date')}{header.get('creation_time')}"
    control = ach.control
    return Statement(
        source=SOURCE,
        format="nacha",
        statement_id=f"{origin}/{stamp}/{header.get('file_id_modifier')}",
        currency="USD",
        account=mask(origin) if origin else None,
        period_start=created,
        period_end=created,
        lines=tuple(lines),
        # read_file has already checked these against the batches; kept so the statement says what it declared
        declared_credits_minor=control.number("total_credit") if control is not None else None,
        declared_debits_minor=control.number("total_debit") if control is not None else None,
    )


def read_nacha_statements(body: bytes) -> list[Statement]:
    """The file as one statement; ``NachaError`` (every problem) if its records or totals are wrong."""
    return [_statement(read_file(body))]


NACHA = StatementFormat(
    name="nacha",
    source=SOURCE,
    description="NACHA ACH file: returns (R codes), notifications of change (C codes) and settled entries",
    sniff=lambda head: _SNIFF.match(head) is not None,
    read=read_nacha_statements,
)


class SettlementReportError(ContractError):
    """The settlement report is not one the ODFI writes."""

    default_message = "invalid ACH settlement report"


def _cents(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise SettlementReportError(f"{where} must be a non-negative integer of cents")
    return value


def _text(value: Any, where: str, size: int) -> str:
    if not isinstance(value, str) or not value or len(value) > size:
        raise SettlementReportError(f"{where} must be a string of 1 to {size} characters")
    return value


def _batch_line(raw: Any, n: int, day: date) -> StatementLine:
    where = f"/batches/{n}"
    if not isinstance(raw, dict) or not isinstance(raw.get("entries"), list) or not raw["entries"]:
        raise SettlementReportError(f"{where}/entries: a settled batch needs its entries")
    batch_id = _text(raw.get("id"), f"{where}/id", 35)
    items = []
    for k, e in enumerate(raw["entries"]):
        at = f"{where}/entries/{k}"
        if not isinstance(e, dict):
            raise SettlementReportError(f"{at}: an entry is an object")
        trace = _text(e.get("trace"), f"{at}/trace", 15)
        items.append(
            LineItem(
                kind="payout",  # money out of our account, as a card payout
                reference=trace,
                amount_minor=-_cents(e.get("amount_cents"), f"{at}/amount_cents"),
                fee_minor=_cents(e.get("fee_cents"), f"{at}/fee_cents"),
                partner_reference=trace,
            )
        )
    gross, fees, debit = (_cents(raw.get(k), f"{where}/{k}") for k in ("gross_cents", "fees_cents", "debit_cents"))
    summed, charged = -sum(i.amount_minor for i in items), sum(i.fee_minor for i in items)
    if summed != gross:
        raise SettlementReportError(f"{where}: its entries sum to {summed}, it declares gross {gross}")
    if charged != fees:
        raise SettlementReportError(f"{where}: its fees sum to {charged}, it declares {fees}")
    if gross + fees != debit:
        raise SettlementReportError(f"{where}: gross {gross} + fees {fees} is not the declared debit {debit}")
    company = raw.get("company_name")
    return StatementLine(
        amount_minor=debit,
        credit=False,
        currency="USD",
        booked_on=day,
        value_on=day,
        partner_reference=batch_id,
        counterparty_name=company if isinstance(company, str) and company else None,
        text=f"ACH batch {batch_id}: {len(items)} entries, fees {fees}"[:140],
        items=tuple(items),
    )


def read_ach_settlement(body: bytes) -> list[Statement]:
    """The day's settlement report as one statement, a line per batch; ``SettlementReportError`` naming the
    first problem."""
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise SettlementReportError("not JSON") from None
    if not isinstance(doc, dict) or doc.get("object") != "ach_settlement_report":
        raise SettlementReportError('/object must be "ach_settlement_report"')
    try:
        day = date.fromisoformat(_text(doc.get("date"), "/date", 10))
    except ValueError:
        raise SettlementReportError("/date: not a date (YYYY-MM-DD)") from None
    odfi = _text(doc.get("odfi"), "/odfi", 9)
    batches = doc.get("batches")
    if not isinstance(batches, list):
        raise SettlementReportError("/batches must be a list")
    lines = tuple(_batch_line(b, n, day) for n, b in enumerate(batches))
    return [
        Statement(
            source=SOURCE,
            format="ach_settlement",
            statement_id=f"{odfi}/{day.isoformat()}",
            currency="USD",
            account=mask(odfi),
            period_start=day,
            period_end=day,
            lines=lines,
            declared_count=len(lines),
        )
    ]


ACH_SETTLEMENT = StatementFormat(
    name="ach_settlement",
    source=SOURCE,
    description="the ODFI's daily ACH settlement report: one debit line per settled batch, itemised by trace",
    sniff=lambda head: _SETTLEMENT_SNIFF.match(head) is not None,
    read=read_ach_settlement,
)


def statement_formats() -> Sequence[StatementFormat]:
    return [NACHA, ACH_SETTLEMENT]
