"""The ledger entries reconciliation posts (rules ``recon_*`` in ``config/ledger.yaml``).

- a confirmed match: ``recon_settled`` for each settled payment (from the
  partner's book account, where the callback put it, to the reconciled bank
  account), and the difference the rule explains as ``recon_fee`` or ``recon_fx``;
- a statement line nothing explains: ``recon_suspense`` (its signed amount: money
  out is positive), taken out again by ``recon_unsuspense`` when it is matched,
  or written off by ``recon_write_off``.

Entries are built here and posted by the caller in the transaction that records
the match or the break (``gateway.store.journal.post``).
"""

from __future__ import annotations

from collections.abc import Iterable

from gateway.ledger.model import Entry, Posting
from gateway.ledger.rules import Rules

__all__ = ["line_entry", "match_entries"]

#: what a matched payment's kind posts, and the sign of its amount in it
#: (a payment an itemised batch settled and that was returned since is settled like any; its return line
#: takes the money back: ``recon_settled`` negated)
_EVENTS = {
    "payment": ("recon_settled", 1),
    "returned": ("recon_settled", 1),
    "return": ("recon_settled", -1),
    "charge": ("recon_collected", 1),
    "chargeback": ("recon_collected", -1),
}


def match_entries(
    rules: Rules,
    *,
    source: str,
    currency: str,
    payments: Iterable[tuple[str, str, int] | tuple[str, str, int, str]],
    difference_minor: int,
    explains: str | None,
    match_id: int,
    shapes: dict[tuple[str, str, str, str], tuple[tuple[str, int], ...]] | None = None,
) -> list[Entry]:
    """The entries of a confirmed match: ``payments`` are (instruction id, business unit, amount[, kind]).

    A payment (an instruction) posts ``recon_settled``; a charge of an itemised line
    (a collection, money in) posts ``recon_collected`` from the partner's receivable
    to the reconciled account, a chargeback deducted from it the same negated.

    ``shapes`` caches the settlement's postings of one minor unit per (adapter,
    currency, business unit) across a run; the legs are linear in the amount, so
    they scale to every payment (as ``Rules.transition`` does).
    """
    shapes = {} if shapes is None else shapes
    memo = f"reconciled by match {match_id}"
    out = []
    for instruction_id, bu, amount, *kind in payments:
        event, sign = _EVENTS[kind[0] if kind else "payment"]
        shape = shapes.get((event, source, currency, bu))
        if shape is None:
            unit = rules.event(event, currency=currency, amounts={"amount": 1}, adapter=source, business_unit=bu)
            shape = shapes[(event, source, currency, bu)] = tuple((p.account, p.amount) for p in unit.postings)
        postings = tuple(Posting(account, currency, k * sign * amount) for account, k in shape)
        out.append(Entry(event, postings, memo, instruction_id.removesuffix("/cb").removesuffix("/rt"), bu))
    if difference_minor:
        kind = "recon_fx" if explains == "fx" else "recon_fee"
        out.append(
            rules.event(
                kind,
                currency=currency,
                amounts={"amount": difference_minor},
                adapter=source,
                memo=f"difference of match {match_id}",
            )
        )
    return out


def line_entry(rules: Rules, kind: str, *, source: str, currency: str, signed_minor: int, memo: str) -> Entry:
    """``recon_suspense`` / ``recon_unsuspense`` / ``recon_write_off`` of a statement line's signed amount."""
    return rules.event(kind, currency=currency, amounts={"amount": signed_minor}, adapter=source, memo=memo)
