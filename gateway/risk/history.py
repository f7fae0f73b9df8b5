"""Risk history: what the rules remember, kept incrementally, never recomputed from all payments.

- **velocity counters**: count and sum per (business unit, subject, key,
  currency) in time buckets; a window of W seconds is read from buckets of
  W/24 seconds, so a sliding window costs at most 25 buckets whatever the
  traffic (it may reach back up to one bucket further than W); only the
  (subject, bucket size) pairs some rule reads are kept;
- **pair statistics**: the last ``PAIR_MEMORY`` amounts per debtor → creditor
  pair and currency, from which the median and MAD are taken;
- **beneficiaries**: first seen, payments and largest amount per creditor account;
- **names**: the accounts paid under each creditor name, with counts (account changes);
- **recent payments** per creditor account, for duplicate detection.

``History`` is the in-memory form. The store loads the slice a batch needs into
one (``gateway.risk.store``), the rules read and update it payment by payment
(so payments of one batch see each other), and the store writes the changes
back. The quality benchmark runs a whole stream through one ``History``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from gateway.risk.model import Candidate

__all__ = [
    "KEEP_BUCKETS",
    "PAIR_MEMORY",
    "SUBJECTS",
    "Beneficiary",
    "CounterSpec",
    "History",
    "Lessons",
    "NameAccounts",
    "PairStats",
    "Recent",
    "bucket_seconds",
]

#: amounts remembered per pair (median/MAD are taken over these)
PAIR_MEMORY = 32
#: buckets per velocity window
BUCKETS_PER_WINDOW = 24
#: buckets of one size worth keeping: the ones a window reads, plus the current partial one and one of slack;
#: older counters are pruned (``prune_after``)
KEEP_BUCKETS = BUCKETS_PER_WINDOW + 2

#: whose payments a velocity counter counts
SUBJECTS = ("debtor", "creditor")

CounterKey = tuple[str, str, str, str, int]  # business unit, subject, key, currency, bucket size
CounterSpec = tuple[str, int]  # subject, bucket size: one kind of counter a rule reads
PairKey = tuple[str, str, str, str]  # business unit, debtor key, creditor key, currency


def bucket_seconds(window_seconds: int) -> int:
    """Bucket size used for a window (at least one minute)."""
    return max(60, window_seconds // BUCKETS_PER_WINDOW)


@dataclass(slots=True)
class PairStats:
    count: int
    amounts: list[int]  # minor units, oldest first, at most PAIR_MEMORY


@dataclass(slots=True)
class Beneficiary:
    first_seen: datetime
    count: int
    max_minor: int


@dataclass(slots=True)
class NameAccounts:
    """The accounts a creditor name was paid to: fingerprint → payments."""

    accounts: dict[str, int] = field(default_factory=dict)

    @property
    def count(self) -> int:
        return sum(self.accounts.values())


@dataclass(frozen=True, slots=True)
class Recent:
    at: datetime
    instruction_id: str
    currency: str
    amount_minor: int
    remittance: str


@dataclass(slots=True)
class Changes:
    """What a batch changed, for the store to write back."""

    counters: dict[tuple[CounterKey, int], list[int]] = field(default_factory=dict)  # (key, bucket) → [n, sum]
    pairs: set[PairKey] = field(default_factory=set)
    beneficiaries: set[tuple[str, str]] = field(default_factory=set)
    names: set[tuple[str, str, str]] = field(default_factory=set)  # (bu, name, creditor key)
    recents: list[tuple[str, str, Recent]] = field(default_factory=list)  # (bu, creditor key, recent)


@dataclass(slots=True)
class Lessons:
    """What a run of payments that went through teaches, summed per key (``History.learn_all``).

    ``learn_all`` of it changes a ``History`` exactly as ``learn_only`` of each payment, in the
    order they were added, would: applying it costs per pair, beneficiary and name, not per
    payment (the history import builds one per chunk where the chunk is checked).
    """

    #: pair → the amounts paid (minor units), in order
    pairs: dict[PairKey, list[int]] = field(default_factory=dict)
    #: (business unit, creditor key) → [the first payment's instant, payments, largest amount]
    beneficiaries: dict[tuple[str, str], list[Any]] = field(default_factory=dict)
    #: (business unit, normalised creditor name, creditor key) → payments
    names: dict[tuple[str, str, str], int] = field(default_factory=dict)

    def add(
        self,
        business_unit: str,
        debtor_key: str,
        creditor_key: str,
        currency: str,
        amount_minor: int,
        at: datetime,
        creditor_name: str,
    ) -> None:
        """One payment that went through (the fields ``learn_only`` reads of its ``Candidate``)."""
        pkey = (business_unit, debtor_key, creditor_key, currency)
        amounts = self.pairs.get(pkey)
        if amounts is None:
            self.pairs[pkey] = [amount_minor]
        else:
            amounts.append(amount_minor)
        bkey = (business_unit, creditor_key)
        known = self.beneficiaries.get(bkey)
        if known is None:
            self.beneficiaries[bkey] = [at, 1, amount_minor]
        else:
            known[1] += 1
            if amount_minor > known[2]:
                known[2] = amount_minor
        if creditor_name:
            nkey = (business_unit, creditor_name, creditor_key)
            self.names[nkey] = self.names.get(nkey, 0) + 1

    def __bool__(self) -> bool:
        return bool(self.pairs)


class History:
    """In-memory risk history (see module docstring).

    ``counters`` are the (subject, bucket size) pairs kept, as the rules declare
    them (``Rule.counters``); none are kept without it.
    """

    def __init__(self, recent_seconds: int = 86_400, *, counters: Iterable[CounterSpec] = ()) -> None:
        specs = set(counters)
        self.counter_specs: list[CounterSpec] = sorted(specs, key=lambda spec: (spec[1], spec[0]))
        self.bucket_sizes = sorted({size for _, size in specs})
        self.recent_seconds = recent_seconds
        self.counters: dict[CounterKey, dict[int, list[int]]] = {}
        self.pairs: dict[PairKey, PairStats] = {}
        self.beneficiaries: dict[tuple[str, str], Beneficiary] = {}
        self.names: dict[tuple[str, str], NameAccounts] = {}
        self.recent: dict[tuple[str, str], list[Recent]] = {}
        self.changes = Changes()

    # -- reads (rules) -------------------------------------------------------

    def velocity(self, c: Candidate, subject: str, window_seconds: int) -> tuple[int, int]:
        """Count and sum (minor units) of earlier payments of this subject in the window."""
        size = bucket_seconds(window_seconds)
        key = c.debtor_key if subject == "debtor" else c.creditor_key
        buckets = self.counters.get((c.business_unit, subject, key, c.currency, size))
        if not buckets:
            return 0, 0
        start = (int(c.at.timestamp()) - window_seconds) // size * size
        count = total = 0
        for bucket, (n, amount) in buckets.items():
            if bucket >= start:
                count += n
                total += amount
        return count, total

    def pair(self, c: Candidate) -> PairStats | None:
        return self.pairs.get((c.business_unit, c.debtor_key, c.creditor_key, c.currency))

    def beneficiary(self, c: Candidate) -> Beneficiary | None:
        return self.beneficiaries.get((c.business_unit, c.creditor_key))

    def accounts_for_name(self, c: Candidate) -> NameAccounts | None:
        return self.names.get((c.business_unit, c.creditor_name)) if c.creditor_name else None

    def recent_to(self, c: Candidate, window_seconds: int) -> list[Recent]:
        found = self.recent.get((c.business_unit, c.creditor_key), [])
        since = c.at.timestamp() - window_seconds
        return [r for r in found if r.at.timestamp() >= since]

    # -- writes --------------------------------------------------------------

    def record(self, c: Candidate, *, learn: bool) -> None:
        """Remember a screened payment.

        Every screened payment counts towards velocity and duplicates (attempts
        matter). Only payments that went through (``learn``) teach what is
        usual: pair amounts, known beneficiaries, the account behind a name. A
        held payment teaches when finance approves it (``learn_only``).
        """
        at = int(c.at.timestamp())
        for subject, size in self.counter_specs:
            bucket = at // size * size
            key = c.debtor_key if subject == "debtor" else c.creditor_key
            ckey = (c.business_unit, subject, key, c.currency, size)
            slot = self.counters.setdefault(ckey, {}).setdefault(bucket, [0, 0])
            slot[0] += 1
            slot[1] += c.amount_minor
            delta = self.changes.counters.setdefault((ckey, bucket), [0, 0])
            delta[0] += 1
            delta[1] += c.amount_minor
        recent = Recent(c.at, c.instruction_id, c.currency, c.amount_minor, c.remittance)
        bucket_list = self.recent.setdefault((c.business_unit, c.creditor_key), [])
        bucket_list.append(recent)
        if len(bucket_list) > 64:  # keep memory bounded for busy creditors
            since = c.at.timestamp() - self.recent_seconds
            bucket_list[:] = [r for r in bucket_list if r.at.timestamp() >= since][-256:]
        self.changes.recents.append((c.business_unit, c.creditor_key, recent))
        if learn:
            self.learn_only(c)

    def learn_only(self, c: Candidate) -> None:
        """Teach the usual from a payment that went through (or that finance approved)."""
        pkey = (c.business_unit, c.debtor_key, c.creditor_key, c.currency)
        stats = self.pairs.get(pkey)
        if stats is None:
            stats = self.pairs[pkey] = PairStats(0, [])
        stats.count += 1
        stats.amounts.append(c.amount_minor)
        if len(stats.amounts) > PAIR_MEMORY:
            del stats.amounts[: len(stats.amounts) - PAIR_MEMORY]
        self.changes.pairs.add(pkey)
        bkey = (c.business_unit, c.creditor_key)
        known = self.beneficiaries.get(bkey)
        if known is None:
            self.beneficiaries[bkey] = Beneficiary(c.at, 1, c.amount_minor)
        else:
            known.count += 1
            known.max_minor = max(known.max_minor, c.amount_minor)
        self.changes.beneficiaries.add(bkey)
        if c.creditor_name:
            nkey = (c.business_unit, c.creditor_name)
            named = self.names.setdefault(nkey, NameAccounts())
            named.accounts[c.creditor_key] = named.accounts.get(c.creditor_key, 0) + 1
            self.changes.names.add((c.business_unit, c.creditor_name, c.creditor_key))

    def learn_all(self, lessons: Lessons) -> None:
        """``learn_only`` of every payment ``lessons`` holds, in the order they were added (per key)."""
        changes = self.changes
        for pkey, amounts in lessons.pairs.items():
            stats = self.pairs.get(pkey)
            if stats is None:
                stats = self.pairs[pkey] = PairStats(0, [])
            stats.count += len(amounts)
            stats.amounts += amounts
            if len(stats.amounts) > PAIR_MEMORY:
                del stats.amounts[: len(stats.amounts) - PAIR_MEMORY]
            changes.pairs.add(pkey)
        for bkey, (first, count, largest) in lessons.beneficiaries.items():
            known = self.beneficiaries.get(bkey)
            if known is None:
                self.beneficiaries[bkey] = Beneficiary(first, count, largest)
            else:
                known.count += count
                known.max_minor = max(known.max_minor, largest)
            changes.beneficiaries.add(bkey)
        for (bu, name, ck), count in lessons.names.items():
            named = self.names.setdefault((bu, name), NameAccounts())
            named.accounts[ck] = named.accounts.get(ck, 0) + count
            changes.names.add((bu, name, ck))

    def prune(self, now: datetime, keep_seconds: int) -> None:
        """Forget counters and recent payments older than ``keep_seconds`` (long streams)."""
        cutoff = int(now.timestamp()) - keep_seconds
        for ckey, buckets in list(self.counters.items()):
            stale = [b for b in buckets if b < cutoff]
            if len(stale) == len(buckets):
                del self.counters[ckey]  # nothing left: drop the key too, so the next prune does not walk it
            else:
                for bucket in stale:
                    del buckets[bucket]
        for key, items in list(self.recent.items()):
            kept = [r for r in items if r.at.timestamp() >= cutoff]
            if kept:
                self.recent[key] = kept
            else:
                del self.recent[key]
        self.changes = Changes()
