"""Upstream control totals: what a business unit says it sent on a day (count and sum per currency).

They arrive one day at a time over ``POST /v1/control-totals`` (the API checks the body
against ``CONTROL_TOTALS_SCHEMA`` and calls :func:`checked_totals`) or as a file of many
days and business units (``gateway recon control-totals FILE``, read by :func:`read_totals_file`).
Either way they are stored with :func:`store_totals`: one row per business unit, day and
currency, replaced when sent again (so sending the same totals twice changes nothing), all
rows of one request or file in one transaction. The next reconciliation run compares them
with what the gateway accepted (``upstream_total`` breaks, ``gateway.recon.breaks``).

The file is CSV with a header row naming ``date``, ``currency``, ``count``, ``amount`` and,
unless the command names one business unit for the whole file, ``business_unit`` (other
columns are ignored), or JSON: one API body or a list of them. Amounts are decimal text with
at most the currency's minor units. A file with any bad row is refused whole: the error names
the line (CSV) or the JSON pointer, and nothing of it is stored.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from sqlalchemy import insert, update
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.domain.errors import CurrencyError
from gateway.domain.money import minor_units
from gateway.errors import ContractError, FieldError
from gateway.store.tables import control_totals

__all__ = [
    "MAX_FILE_BYTES",
    "ControlTotal",
    "checked_totals",
    "read_totals_file",
    "store_totals",
]

#: a control totals file is a summary: a few rows per business unit and day
MAX_FILE_BYTES = 16 * 1024 * 1024
_DAY = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
_AMOUNT = re.compile(r"^[0-9]{1,15}(\.[0-9]{1,4})?$")
_UNIT = re.compile(r"^[^\x00-\x1f\x7f]{1,64}$")
_CSV_COLUMNS = ("date", "currency", "count", "amount")


@dataclass(frozen=True, slots=True)
class ControlTotal:
    """One business unit's count and sum (in minor units) of one currency on one day."""

    business_unit: str
    day: date
    currency: str
    count: int
    sum_minor: int


def _refuse(pointer: str, message: str) -> ContractError:
    return ContractError(f"{pointer}: {message}", errors=[FieldError(pointer, message)])


def _minor(amount: str, currency: str, where: str) -> int:
    try:
        digits = minor_units(currency)
    except CurrencyError:
        raise _refuse(f"{where}/currency", f"{currency!r} is not an ISO 4217 currency") from None
    if not _AMOUNT.fullmatch(amount):
        raise _refuse(f"{where}/amount", f"{amount!r} is not a decimal amount (digits, '.' and up to 4 decimals)")
    try:
        scaled = Decimal(amount).scaleb(digits)
    except InvalidOperation:  # pragma: no cover - the pattern admits only decimals
        raise _refuse(f"{where}/amount", f"{amount!r} is not a decimal amount") from None
    if scaled != scaled.to_integral_value():
        raise _refuse(f"{where}/amount", f"more decimals than {currency} has ({digits})")
    return int(scaled)


def _total(unit: str, day: date, currency: str, count: Any, amount: str, at: str) -> ControlTotal:
    if not isinstance(count, int) or isinstance(count, bool) or not 0 <= count <= 100_000_000:
        raise _refuse(f"{at}/count", f"{count!r} is not a count (0 to 100000000)")
    return ControlTotal(unit, day, currency, count, _minor(amount, currency, at))


def checked_totals(unit: str, day: date, totals: Sequence[Mapping[str, Any]], where: str = "") -> list[ControlTotal]:
    """One day's totals of one business unit, their amounts in minor units; one entry per currency.

    ``totals`` has the API's shape (``currency``, ``count``, ``amount`` as decimal text); ``where``
    prefixes the pointers of the errors.
    """
    rows = [
        _total(unit, day, str(t["currency"]), t["count"], str(t["amount"]), f"{where}/totals/{i}")
        for i, t in enumerate(totals)
    ]
    if len({r.currency for r in rows}) != len(rows):
        raise _refuse(f"{where}/totals", "a currency twice: send one entry per currency")
    return rows


def _day(text: str, pointer: str) -> date:
    try:
        if not _DAY.fullmatch(text):
            raise ValueError(text)
        return date.fromisoformat(text)
    except ValueError:
        raise _refuse(pointer, f"{text!r} is not a date (YYYY-MM-DD)") from None


def _unit(text: str, pointer: str) -> str:
    if not _UNIT.fullmatch(text):
        raise _refuse(pointer, "a business unit name: 1 to 64 characters, no control characters")
    return text


def _from_csv(text: str, unit: str | None) -> list[ControlTotal]:
    reader = csv.DictReader(io.StringIO(text, newline=""))
    columns = set(reader.fieldnames or ())
    needed = _CSV_COLUMNS if unit else ("business_unit", *_CSV_COLUMNS)
    missing = [c for c in needed if c not in columns]
    if missing:
        raise _refuse("/header", f"the header row lacks {', '.join(missing)} (it needs {', '.join(needed)})")
    out: list[ControlTotal] = []
    seen: set[tuple[str, date, str]] = set()
    for row in reader:
        at = f"/line/{reader.line_num}"
        if None in row or any(row.get(c) in (None, "") for c in needed):
            raise _refuse(at, f"needs a value in each of {', '.join(needed)}")
        who = unit or _unit(row["business_unit"].strip(), f"{at}/business_unit")
        day = _day(row["date"].strip(), f"{at}/date")
        currency = row["currency"].strip()
        try:
            count = int(row["count"].strip())
        except ValueError:
            raise _refuse(f"{at}/count", f"{row['count']!r} is not a whole number") from None
        if (who, day, currency) in seen:
            raise _refuse(at, f"{currency} for {who} on {day} a second time")
        seen.add((who, day, currency))
        out.append(_total(who, day, currency, count, row["amount"].strip(), at))
    return out


def _from_json(doc: Any, unit: str | None) -> list[ControlTotal]:
    bodies = doc if isinstance(doc, list) else [doc]
    out: list[ControlTotal] = []
    for i, body in enumerate(bodies):
        where = f"/{i}" if isinstance(doc, list) else ""
        if not isinstance(body, dict) or not isinstance(body.get("totals"), list) or "date" not in body:
            raise _refuse(where or "/", "needs an object with date and totals (the POST /v1/control-totals body)")
        who = str(body.get("business_unit") or unit or "")
        if not who:
            raise _refuse(f"{where}/business_unit", "name the business unit (here or with --business-unit)")
        for j, t in enumerate(body["totals"]):
            if not isinstance(t, dict) or not {"currency", "count", "amount"} <= set(t):
                raise _refuse(f"{where}/totals/{j}", "needs currency, count and amount")
        out += checked_totals(
            _unit(who, f"{where}/business_unit"), _day(str(body["date"]), f"{where}/date"), body["totals"], where
        )
    return out


def read_totals_file(path: Path, *, business_unit: str | None = None) -> list[ControlTotal]:
    """Every total in a CSV or JSON file, checked; ``ContractError`` naming the first bad line or pointer."""
    data = path.read_bytes()
    if len(data) > MAX_FILE_BYTES:
        raise _refuse("/", f"{len(data)} bytes is more than a control totals file may have ({MAX_FILE_BYTES})")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise _refuse("/", f"not UTF-8 text (byte {exc.start})") from None
    if text.lstrip().startswith(("{", "[")):
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            raise _refuse("/", f"not JSON: {exc.msg} at line {exc.lineno}") from None
        totals = _from_json(doc, business_unit)
    else:
        totals = _from_csv(text, business_unit)
    if not totals:
        raise _refuse("/", "no totals in the file")
    return totals


async def store_totals(engine: AsyncEngine, totals: Iterable[ControlTotal], by: str, now: datetime) -> int:
    """Insert or replace each total (sending them again changes nothing), all in one transaction."""
    stored = 0
    async with engine.begin() as conn:
        for t in totals:
            key = (
                (control_totals.c.business_unit == t.business_unit)
                & (control_totals.c.day == t.day)
                & (control_totals.c.currency == t.currency)
            )
            values = {"count": t.count, "sum_minor": t.sum_minor, "received_at": now, "received_by": by}
            done = await conn.execute(update(control_totals).where(key).values(**values))
            if done.rowcount == 0:
                await conn.execute(
                    insert(control_totals).values(
                        business_unit=t.business_unit, day=t.day, currency=t.currency, **values
                    )
                )
            stored += 1
    return stored
