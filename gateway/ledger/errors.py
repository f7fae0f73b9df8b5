"""The ledger's errors: one root, one line of docstring each (the CLI exits 2, the API answers 4xx)."""

from __future__ import annotations

from gateway.errors import ConfigError, ConflictError, GatewayError

__all__ = ["LedgerError", "LedgerRulesError", "PeriodError", "UnbalancedEntryError"]


class LedgerError(GatewayError, ValueError):
    """A ledger operation was refused."""

    default_message = "ledger operation refused"
    status = 422
    slug = "ledger-error"


class UnbalancedEntryError(LedgerError):
    """An entry's postings do not sum to zero in some currency, or an amount is not an integer."""

    default_message = "unbalanced entry"
    slug = "unbalanced-entry"

    def __init__(self, message: str | None = None, *, entry: str = "", imbalance: dict[str, int] | None = None):
        super().__init__(message)
        self.entry = entry
        self.imbalance = dict(imbalance or {})


class LedgerRulesError(ConfigError):
    """The posting rules (``config/ledger.yaml`` or a plugin's) are invalid or could not balance."""

    default_message = "invalid ledger rules"


class PeriodError(LedgerError, ConflictError):
    """A period cannot be closed or exported (not ended, not closed, malformed)."""

    default_message = "period refused"
    status = 409
    slug = "period-refused"
