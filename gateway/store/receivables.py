"""Receivables and receipts: invoices to distributors, incoming credits, and what was applied to what.

``record_receipts`` runs inside the transaction that stores a statement
(``gateway.store.statements``): every booked credit line becomes one receipt
(the ``(statement_pk, line)`` key makes a second one impossible), is booked, and
is matched at once by three rules in order:

1. ``reference`` — the structured creditor reference (ISO 11649 RF) of the line,
   or an RF reference written in its remittance text, names open receivables;
   any amount: a partial payment leaves the rest open, an over-payment leaves the
   excess on the distributor's account;
2. ``invoice_text`` — invoice numbers found in the remittance text whose open
   amounts add up to exactly the amount received (one payment, several invoices);
3. ``payer_account`` — exactly one open receivable whose payer account (masked,
   as statements show it) and open amount are the line's.

What no rule places waits in finance's queue (state ``unmatched``): assign it
(``assign``), leave it on a distributor's account (``put_on_account``) or pay it
back (``mark_refunded``, after the payout instruction is accepted). Every step
posts its ledger entry, moves the distributor's credit line and accrues the
distributor's rebate (``gateway.store.rebates``) in the same transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

from sqlalchemy import case, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.domain.ids import new_id
from gateway.domain.receivables import (
    Allocation,
    OpenItem,
    ReceiptState,
    StructuredReferenceError,
    allocate,
    references_in,
    structured_reference,
    tokens_of,
)
from gateway.domain.statements import Statement, StatementLine
from gateway.errors import ConflictError, ContractError, FieldError, NotFoundError
from gateway.store.creditlines import OPEN_STATUSES, adjust_receivables, money_view
from gateway.store.journal import post, rules_for
from gateway.store.rebates import accrue
from gateway.store.tables import (
    collections,
    idempotency_keys,
    receipt_allocations,
    receipts,
    receivables,
    statements,
)

__all__ = [
    "apply_allocations",
    "assign",
    "find_receivables",
    "insert_receivable",
    "mark_refunded",
    "put_on_account",
    "receipt_view",
    "receivable_view",
    "record_receipts",
    "remember_response",
    "replayed_response",
]

#: the states in which a receipt still has money to place
_PLACEABLE = (ReceiptState.UNMATCHED.value, ReceiptState.ON_ACCOUNT.value)


# -- idempotency (the keys table instructions use; a receivable has no instruction id) -----------


async def replayed_response(
    conn: AsyncConnection, business_unit_id: str, key: str, request_hash: str
) -> tuple[int, dict[str, Any]] | None:
    """The stored answer to this key (409 if it was used with another body); None if the key is new."""
    row = (
        await conn.execute(
            select(idempotency_keys.c.request_hash, idempotency_keys.c.status_code, idempotency_keys.c.response).where(
                idempotency_keys.c.business_unit_id == business_unit_id, idempotency_keys.c.key == key
            )
        )
    ).first()
    if row is None:
        return None
    if row.request_hash != request_hash:
        raise ConflictError("this Idempotency-Key was used before with a different request; use a new key")
    return int(row.status_code), dict(row.response)


async def remember_response(
    conn: AsyncConnection,
    business_unit_id: str,
    key: str,
    request_hash: str,
    status: int,
    response: dict[str, Any],
    now: datetime,
) -> None:
    await conn.execute(
        insert(idempotency_keys).values(
            business_unit_id=business_unit_id,
            key=key,
            request_hash=request_hash,
            status_code=status,
            response=response,
            instruction_id=None,
            created_at=now,
        )
    )


# -- the ledger --------------------------------------------------------------------------------


async def _book(
    conn: AsyncConnection,
    kind: str,
    now: datetime,
    *,
    currency: str,
    amount: int,
    memo: str,
    business_unit: str | None = None,
    adapter: str | None = None,
    distributor: str | None = None,
) -> None:
    """Post one money-in event (nothing when the ledger is off or its rules have no such kind)."""
    rules = rules_for(conn)
    if rules is None or kind not in rules.events or amount <= 0:
        return
    entry = rules.event(
        kind,
        currency=currency,
        amounts={"amount": amount},
        business_unit=business_unit,
        adapter=adapter,
        distributor=distributor,
        memo=memo,
    )
    await post(conn, [entry], now, rules)


# -- receivables -------------------------------------------------------------------------------


def receivable_view(row: Any, today: date) -> dict[str, Any]:
    """The API's view of a receivable (``overdue``: open and past its due date)."""
    cur = row["currency"]
    is_open = row["status"] in OPEN_STATUSES
    return {
        "id": row["id"],
        "invoice_number": row["invoice_number"],
        "distributor": row["distributor"],
        "amount": money_view(row["amount_minor"], cur),
        "paid": money_view(row["paid_minor"], cur),
        "outstanding": money_view(row["amount_minor"] - row["paid_minor"] if is_open else 0, cur),
        "status": row["status"],
        "due_date": row["due_date"].isoformat(),
        "overdue": is_open and row["due_date"] < today,
        "structured_reference": row["structured_reference"],
        "payer_account": row["payer_account"],
        "reservation_id": row["reservation_id"],
        "created_at": row["created_at"].isoformat(),
        "updated_at": row["updated_at"].isoformat(),
    }


async def insert_receivable(conn: AsyncConnection, row: dict[str, Any], now: datetime) -> None:
    """Store a new receivable, book it, and count it on the distributor's credit line (caller's transaction)."""
    clash = await conn.scalar(
        select(receivables.c.id).where(
            receivables.c.business_unit_id == row["business_unit_id"],
            receivables.c.invoice_number == row["invoice_number"],
        )
    )
    if clash is not None:
        raise ConflictError(
            f"invoice {row['invoice_number']!r} is already registered by this business unit ({clash})",
            errors=[FieldError("/invoice_number", "duplicate invoice number")],
        )
    await conn.execute(insert(receivables).values(**row))
    await _book(
        conn,
        "receivable_raised",
        now,
        currency=row["currency"],
        amount=row["amount_minor"],
        memo=f"invoice {row['invoice_number']} ({row['id']})",
        business_unit=row["business_unit"],
        distributor=row["distributor"],
    )
    await adjust_receivables(conn, row["distributor"], row["currency"], row["amount_minor"], now)
    await accrue(
        conn,
        "invoiced",
        row["distributor"],
        row["currency"],
        row["amount_minor"],
        now,
        f"invoice {row['invoice_number']} ({row['id']})",
    )


async def find_receivables(conn: AsyncConnection, ids: Sequence[str]) -> dict[str, Any]:
    rows = (await conn.execute(select(receivables).where(receivables.c.id.in_(sorted(set(ids)))))).mappings().all()
    return {r["id"]: r for r in rows}


# -- receipts ----------------------------------------------------------------------------------


async def _allocations_of(conn: AsyncConnection, receipt_ids: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {i: [] for i in receipt_ids}
    if not receipt_ids:
        return found
    rows = await conn.execute(
        select(
            receipt_allocations.c.receipt_id,
            receipt_allocations.c.receivable_id,
            receipt_allocations.c.amount_minor,
            receipt_allocations.c.rule,
            receipts.c.currency,
            receivables.c.invoice_number,
        )
        .join(receipts, receipts.c.id == receipt_allocations.c.receipt_id)
        .join(receivables, receivables.c.id == receipt_allocations.c.receivable_id)
        .where(receipt_allocations.c.receipt_id.in_(list(receipt_ids)))
        .order_by(receipt_allocations.c.id)
    )
    for r in rows:
        found[r.receipt_id].append(
            {
                "receivable_id": r.receivable_id,
                "invoice_number": r.invoice_number,
                "amount": money_view(r.amount_minor, r.currency),
                "rule": r.rule,
            }
        )
    return found


async def receipt_view(conn: AsyncConnection, rows: Sequence[Any]) -> list[dict[str, Any]]:
    """The API's view of receipts, with what each was applied to."""
    allocations = await _allocations_of(conn, [r["id"] for r in rows])
    out = []
    for r in rows:
        cur = r["currency"]
        out.append(
            {
                "id": r["id"],
                "state": r["state"],
                "amount": money_view(r["amount_minor"], cur),
                "unapplied": money_view(r["unapplied_minor"], cur),
                "distributor": r["distributor"],
                "booked_on": r["booked_on"].isoformat() if r["booked_on"] else None,
                "payer": {"name": r["payer_name"], "account": r["payer_account"]},
                "structured_reference": r["structured_reference"],
                "text": r["text"],
                "source": r["source"],
                "statement_line": f"ln_{r['statement_pk']}_{r['line']}",  # as reconciliation names it
                "allocations": allocations[r["id"]],
                "refund_instruction_id": r["refund_instruction_id"],
                "created_at": r["created_at"].isoformat(),
                "updated_at": r["updated_at"].isoformat(),
            }
        )
    return out


def _reference(value: str | None) -> str | None:
    if not value:
        return None
    try:
        return structured_reference(value)
    except StructuredReferenceError:
        return None


async def _open_items(conn: AsyncConnection, currency: str, *conditions: Any) -> list[Any]:
    return list(
        (
            await conn.execute(
                select(receivables).where(
                    receivables.c.currency == currency, receivables.c.status.in_(OPEN_STATUSES), *conditions
                )
            )
        )
        .mappings()
        .all()
    )


def _outstanding(row: Any) -> int:
    return int(row["amount_minor"] - row["paid_minor"])


async def _candidates(conn: AsyncConnection, receipt: dict[str, Any]) -> tuple[list[Any], str] | None:
    """The open receivables a new receipt pays, and the rule that found them; None when no rule does."""
    cur, amount = receipt["currency"], receipt["amount_minor"]
    refs = [r for r in [receipt["structured_reference"], *references_in(receipt["text"])] if r]
    if refs:
        found = await _open_items(conn, cur, receivables.c.structured_reference.in_(sorted(set(refs))))
        if found and len({r["distributor"] for r in found}) == 1:
            return found, "reference"
    tokens = tokens_of(receipt["text"])
    if tokens:
        found = await _open_items(conn, cur, func.upper(receivables.c.invoice_number).in_(tokens))
        if found and len({r["distributor"] for r in found}) == 1 and sum(_outstanding(r) for r in found) == amount:
            return found, "invoice_text"
    if receipt["payer_account"]:
        found = await _open_items(
            conn,
            cur,
            receivables.c.payer_account == receipt["payer_account"],
            receivables.c.amount_minor - receivables.c.paid_minor == amount,
        )
        if len(found) == 1:
            return found, "payer_account"
    return None


async def apply_allocations(
    conn: AsyncConnection,
    receipt: dict[str, Any],
    allocations: Sequence[Allocation],
    targets: dict[str, Any],
    rule: str,
    now: datetime,
) -> int:
    """Apply parts of a receipt to receivables: amounts, statuses, credit lines, ledger; the total applied.

    Each receivable takes its part with a conditional update (never more than it
    has open), so a concurrent assignment cannot over-pay it: 409 instead.
    """
    total = 0
    for a in allocations:
        target = targets[a.receivable_id]
        c = receivables.c
        moved = await conn.execute(
            update(receivables)
            .where(
                c.id == a.receivable_id,
                c.status.in_(OPEN_STATUSES),
                c.amount_minor - c.paid_minor >= a.amount_minor,
            )
            .values(
                paid_minor=c.paid_minor + a.amount_minor,
                status=case((c.paid_minor + a.amount_minor >= c.amount_minor, "paid"), else_="partially_paid"),
                updated_at=now,
            )
        )
        if not moved.rowcount:
            raise ConflictError(f"receivable {a.receivable_id} has less than that open now; read it and try again")
        await conn.execute(
            insert(receipt_allocations).values(
                receipt_id=receipt["id"],
                receivable_id=a.receivable_id,
                amount_minor=a.amount_minor,
                rule=rule,
                created_at=now,
            )
        )
        await _book(
            conn,
            "receipt_applied",
            now,
            currency=receipt["currency"],
            amount=a.amount_minor,
            memo=f"receipt {receipt['id']} applied to invoice {target['invoice_number']}",
            distributor=target["distributor"],
        )
        await adjust_receivables(conn, target["distributor"], target["currency"], -a.amount_minor, now)
        await accrue(
            conn,
            "collected",
            target["distributor"],
            target["currency"],
            a.amount_minor,
            now,
            f"receipt {receipt['id']} applied to invoice {target['invoice_number']}",
        )
        total += a.amount_minor
    return total


async def _match_new(conn: AsyncConnection, receipt: dict[str, Any], now: datetime) -> None:
    found = await _candidates(conn, receipt)
    if found is None:
        return
    rows, rule = found
    items = [OpenItem(r["id"], _outstanding(r), r["due_date"].isoformat()) for r in rows]
    allocations, left = allocate(receipt["amount_minor"], items)
    await apply_allocations(conn, receipt, allocations, {r["id"]: r for r in rows}, rule, now)
    await conn.execute(
        update(receipts)
        .where(receipts.c.id == receipt["id"])
        .values(
            unapplied_minor=left,
            state=ReceiptState.ON_ACCOUNT.value if left else ReceiptState.MATCHED.value,
            distributor=rows[0]["distributor"],
            updated_at=now,
        )
    )


async def _already_received(conn: AsyncConnection, statement: Statement, line: StatementLine) -> bool:
    """Whether this credit is money the gateway already knows: one a report of another kind already
    brought (a camt.054 notification, then the day's camt.053: same bank, same account servicer's
    reference, same amount), or a direct debit it collected (its instruction id is one of our
    collections: the collection's money, booked by its own status). Such a line is stored with its
    statement but is not a receipt."""
    ours = [r for r in {line.partner_reference, line.end_to_end_id} if r and r.startswith("col_")]
    if ours and (await conn.execute(select(collections.c.id).where(collections.c.id.in_(ours)))).first():
        return True
    if not line.servicer_reference:
        return False
    found = await conn.execute(
        select(receipts.c.id)
        .join(statements, statements.c.id == receipts.c.statement_pk)
        .where(
            receipts.c.source == statement.source,
            receipts.c.servicer_reference == line.servicer_reference,
            receipts.c.currency == line.currency,
            receipts.c.amount_minor == line.amount_minor,
            statements.c.format != statement.format,
        )
        .limit(1)
    )
    return found.first() is not None


async def record_receipts(
    conn: AsyncConnection, statement_pk: int, statement: Statement, now: datetime, *, first: int = 1
) -> int:
    """Turn the booked credit lines of a statement just stored into receipts, book and match them; how many.

    ``first``: the line number of ``statement.lines[0]`` (a streamed statement is stored a chunk at a time).
    """
    made = 0
    for n, line in enumerate(statement.lines, start=first):
        if not line.credit or line.kind != "booked" or line.amount_minor <= 0 or line.items:
            continue  # an itemised line (a card payout batch) is explained by its items, not a receipt
        if await _already_received(conn, statement, line):
            continue
        receipt = {
            "id": new_id("rct"),
            "statement_pk": statement_pk,
            "line": n,
            "source": statement.source,
            "currency": line.currency,
            "amount_minor": line.amount_minor,
            "unapplied_minor": line.amount_minor,
            "state": ReceiptState.UNMATCHED.value,
            "distributor": None,
            "booked_on": line.booked_on or line.value_on,
            "payer_name": line.counterparty_name,
            "payer_account": line.counterparty_account,
            "structured_reference": _reference(line.remittance_reference),
            "text": line.text,
            "refund_instruction_id": None,
            "servicer_reference": line.servicer_reference,
            "created_at": now,
            "updated_at": now,
        }
        await conn.execute(insert(receipts).values(**receipt))
        await _book(
            conn,
            "receipt_booked",
            now,
            currency=line.currency,
            amount=line.amount_minor,
            memo=f"receipt {receipt['id']} (statement {statement.statement_id} line {n})",
            adapter=statement.source,
        )
        await _match_new(conn, receipt, now)
        made += 1
    return made


async def _placeable(conn: AsyncConnection, receipt_id: str) -> dict[str, Any]:
    row = (await conn.execute(select(receipts).where(receipts.c.id == receipt_id))).mappings().first()
    if row is None:
        raise NotFoundError(f"no receipt {receipt_id!r}")
    if row["state"] not in _PLACEABLE or row["unapplied_minor"] <= 0:
        raise ConflictError(f"receipt {receipt_id} is {row['state']} with nothing left to place")
    return dict(row)


async def _take(conn: AsyncConnection, receipt: dict[str, Any], amount: int, values: dict[str, Any]) -> None:
    """Take ``amount`` off a receipt's unapplied money, if it still has it (409 otherwise)."""
    moved = await conn.execute(
        update(receipts)
        .where(
            receipts.c.id == receipt["id"],
            receipts.c.state.in_(_PLACEABLE),
            receipts.c.unapplied_minor >= amount,
        )
        .values(unapplied_minor=receipts.c.unapplied_minor - amount, **values)
    )
    if not moved.rowcount:
        raise ConflictError(f"receipt {receipt['id']} changed meanwhile; read it and try again")


async def assign(
    conn: AsyncConnection, receipt_id: str, parts: Sequence[tuple[str, int]], now: datetime
) -> dict[str, Any]:
    """Finance applies a receipt to receivables by hand (``parts``: receivable id, minor units)."""
    receipt = await _placeable(conn, receipt_id)
    targets = await find_receivables(conn, [p[0] for p in parts])
    for i, (receivable_id, amount) in enumerate(parts):
        at = f"/allocations/{i}"
        row = targets.get(receivable_id)
        if row is None:
            raise ContractError(
                f"{at}/receivable_id: no receivable {receivable_id!r}",
                errors=[FieldError(f"{at}/receivable_id", "no such receivable")],
            )
        if row["currency"] != receipt["currency"]:
            raise ContractError(
                f"{at}/amount/currency: the receipt is in {receipt['currency']}, the receivable in {row['currency']}",
                errors=[FieldError(f"{at}/amount/currency", "currency differs from the receipt's")],
            )
        if row["status"] not in OPEN_STATUSES or amount > _outstanding(row):
            raise ContractError(
                f"{at}/amount: receivable {receivable_id} has {money_view(_outstanding(row), row['currency'])['value']}"
                f" {row['currency']} open",
                errors=[FieldError(f"{at}/amount", "more than the receivable has open")],
            )
    if len({p[0] for p in parts}) != len(parts):
        raise ContractError(
            "/allocations: name each receivable once", errors=[FieldError("/allocations", "duplicate receivable")]
        )
    total = sum(p[1] for p in parts)
    if total > receipt["unapplied_minor"]:
        raise ContractError(
            f"/allocations: they add up to more than the receipt's unapplied "
            f"{money_view(receipt['unapplied_minor'], receipt['currency'])['value']} {receipt['currency']}",
            errors=[FieldError("/allocations", "more than the receipt has unapplied")],
        )
    distributors = {targets[p[0]]["distributor"] for p in parts}
    if len(distributors) != 1:
        raise ContractError(
            "/allocations: one receipt pays one distributor's receivables",
            errors=[FieldError("/allocations", "several distributors")],
        )
    left = receipt["unapplied_minor"] - total
    await _take(
        conn,
        receipt,
        total,
        {
            "state": ReceiptState.ON_ACCOUNT.value if left else ReceiptState.MATCHED.value,
            "distributor": distributors.pop(),
            "updated_at": now,
        },
    )
    await apply_allocations(conn, receipt, [Allocation(r, a) for r, a in parts], targets, "manual", now)
    return receipt


async def put_on_account(conn: AsyncConnection, receipt_id: str, distributor: str, now: datetime) -> None:
    """Leave a receipt's unapplied money on a distributor's account (a later ``assign`` may still use it)."""
    receipt = await _placeable(conn, receipt_id)
    if receipt["distributor"] not in (None, distributor):
        raise ConflictError(f"receipt {receipt_id} is already on the account of {receipt['distributor']}")
    await _take(
        conn, receipt, 0, {"state": ReceiptState.ON_ACCOUNT.value, "distributor": distributor, "updated_at": now}
    )


async def mark_refunded(
    conn: AsyncConnection, receipt_id: str, business_unit: str, instruction_id: str, amount: int, now: datetime
) -> bool:
    """Record that a receipt's unapplied money went back through ``instruction_id``; False if it already had."""
    row = (await conn.execute(select(receipts).where(receipts.c.id == receipt_id))).mappings().first()
    if row is None:
        raise NotFoundError(f"no receipt {receipt_id!r}")
    if row["state"] == ReceiptState.REFUNDED.value:
        return False
    receipt = dict(row)
    if receipt["unapplied_minor"] != amount:
        raise ConflictError(
            f"receipt {receipt_id} changed while its refund {instruction_id} was accepted; cancel that instruction"
        )
    await _take(
        conn,
        receipt,
        amount,
        {"state": ReceiptState.REFUNDED.value, "refund_instruction_id": instruction_id, "updated_at": now},
    )
    await _book(
        conn,
        "receipt_refunded",
        now,
        currency=receipt["currency"],
        amount=amount,
        memo=f"receipt {receipt_id} refunded by {instruction_id}",
        business_unit=business_unit,
    )
    return True
