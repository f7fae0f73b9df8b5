"""The double-entry ledger's definitions: entries and the rules that make them.

- ``model``: ``Entry`` and ``Posting`` (integer minor units, balanced per currency)
- ``rules``: the chart of accounts and the posting rules (``config/ledger.yaml`` + plugins)
- ``errors``: what the ledger refuses

Where the rest lives: posting in the causing transaction and running balances in
``gateway.store.journal``; the hash chains over the journal and the instruction
events in ``gateway.store.audit``; reading, backfill, period close, reversals and
the GL export in ``gateway.finance``; the API in ``gateway.api.ledger``; the
``ledger`` and ``audit`` commands in ``gateway.cli.ledger``. See docs/ledger.md.
"""
