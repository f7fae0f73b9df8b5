"""The instant rail's statement: the participant account's camt.053, read by the bank adapter's camt.053 reader.

An instant scheme settles each payment on its own, and the account's end-of-day
statement lists every one of them; instant schemes are ISO 20022 based, so the
statement is a ``camt.053`` (any version; the simulator writes
``camt.053.001.08``, the account as ``Othr/Id``: a US account number). It is the
same reader as the bank's (``gateway_adapters.iso20022_bank.statements``), its
statements stored as ``instant_rtp``'s, so their lines are matched to the
payments sent through the instant rail. The format is ``rtp.camt.053``: a
camt.053 file does not say which partner it comes from, so ``auto`` reads it as
the bank's; the adapter's fetch names it, and so must an upload
(``--format rtp.camt.053``).
"""

from __future__ import annotations

from collections.abc import Sequence

from gateway.domain.statements import StatementFormat
from gateway_adapters.iso20022_bank.statements import camt053_format

__all__ = ["RTP_CAMT053", "SOURCE", "statement_formats"]

SOURCE = "instant_rtp"

RTP_CAMT053 = camt053_format(
    name="rtp.camt.053",
    source=SOURCE,
    description="the instant rail's account statement, ISO 20022 camt.053.001.02 and later (never recognised by auto)",
)


def statement_formats() -> Sequence[StatementFormat]:
    return [RTP_CAMT053]
