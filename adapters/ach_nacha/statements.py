"""NACHA files as statements: returns, notifications of change and settled entries.

A NACHA file is its own statement: ``nacha.read_file`` checks every control
figure the format has (record counts, entry hashes, debit and credit totals per
batch and file, blocking) and refuses the file with every problem listed. Each
entry becomes a line; a return (addenda 99) carries its reason code and the
trace of the entry returned, a notification of change (addenda 98) is a
zero-amount ``change`` line. The statement id is the file's identity: origin,
creation date and time, and the file id modifier.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import date

from gateway.domain.accounts import mask
from gateway.domain.statements import Statement, StatementFormat, StatementLine
from gateway_adapters.ach_nacha.nacha import AchFile, ReturnAddenda, read_file

__all__ = ["NACHA", "read_nacha_statements"]

SOURCE = "ach_nacha"
_SNIFF = re.compile(rb"^101[ 0-9]{20}[0-9]{10}")


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


def statement_formats() -> Sequence[StatementFormat]:
    return [NACHA]
