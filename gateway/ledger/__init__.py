"""The double-entry ledger: every economic event of a payment becomes a balanced, tamper-evident entry.

- ``model``: ``Entry`` and ``Posting`` (integer minor units, balanced per currency)
- ``rules``: the chart of accounts and the posting rules (``config/ledger.yaml`` + plugins)
- ``journal``: posting in the causing transaction, running balances, periods
- ``audit``: the hash chains over the journal and the instruction events, and ``verify``
- ``books``: reading balances and entries, trial balance, backfill, period close, reversals
- ``export``: numbered GL export batches; ``cli``: the ``ledger`` and ``audit`` commands

See docs/ledger.md.
"""
