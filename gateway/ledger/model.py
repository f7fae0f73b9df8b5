"""Journal entries and postings: small immutable records that refuse to be unbalanced.

Amounts are integers in the currency's minor units; a debit is positive, a
credit negative. An entry balances when its postings sum to zero in every
currency (beancount's check, TigerBeetle's integer amounts). Entries are never
changed: a correction is a new entry that reverses the original (``reverses``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from gateway.ledger.errors import UnbalancedEntryError

__all__ = ["ACCOUNT_TYPES", "Entry", "Posting", "imbalance", "net_postings"]

#: account types and the side their balance normally sits on (+1 debit, -1 credit)
ACCOUNT_TYPES: Mapping[str, int] = {"asset": 1, "expense": 1, "liability": -1, "income": -1, "equity": -1}


@dataclass(frozen=True, slots=True)
class Posting:
    """One line of an entry: ``amount`` minor units on ``account`` (debit > 0, credit < 0)."""

    account: str
    currency: str
    amount: int


@dataclass(frozen=True, slots=True)
class Entry:
    """A balanced set of postings about one economic event (see ``check``)."""

    kind: str  # "payment" for lifecycle entries, else the event kind ("fee", …)
    postings: tuple[Posting, ...]
    memo: str = ""
    instruction_id: str | None = None
    business_unit: str | None = None
    #: when the event happened, if not now (backfill, late events); kept as the entry's original date
    occurred_at: datetime | None = None
    #: the id of the entry this one reverses (corrections)
    reverses: int | None = None
    meta: Mapping[str, str] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """How errors name the entry."""
        what = f"{self.kind} entry"
        if self.instruction_id:
            what += f" of instruction {self.instruction_id}"
        return f"{what} ({self.memo})" if self.memo else what

    def check(self) -> Entry:
        """The entry itself if its amounts are integers and it balances per currency, else ``UnbalancedEntryError``."""
        if len(self.postings) < 2:
            raise UnbalancedEntryError(
                f"{self.label} has {len(self.postings)} posting(s); at least 2", entry=self.label
            )
        for p in self.postings:
            if type(p.amount) is not int:  # bool, float, Decimal: never
                raise UnbalancedEntryError(
                    f"{self.label}: amount {p.amount!r} on {p.account} is not an integer of minor units",
                    entry=self.label,
                )
        off = imbalance(self.postings)
        if off:
            shown = ", ".join(f"{cur} {amount:+d}" for cur, amount in sorted(off.items()))
            raise UnbalancedEntryError(
                f"{self.label} does not balance: {shown} (minor units)", entry=self.label, imbalance=off
            )
        return self


def imbalance(postings: Iterable[Posting]) -> dict[str, int]:
    """What the postings leave over per currency (empty when they balance)."""
    sums: dict[str, int] = {}
    for p in postings:
        sums[p.currency] = sums.get(p.currency, 0) + p.amount
    return {cur: amount for cur, amount in sums.items() if amount}


def net_postings(postings: Iterable[Posting]) -> tuple[Posting, ...]:
    """The postings netted per (account, currency), zeros dropped, in first-seen order."""
    sums: dict[tuple[str, str], int] = {}
    for p in postings:
        key = (p.account, p.currency)
        sums[key] = sums.get(key, 0) + p.amount
    return tuple(Posting(a, c, amount) for (a, c), amount in sums.items() if amount)
