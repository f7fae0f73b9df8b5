"""Parties and their accounts: IBAN (+BIC), US account + ABA routing number, or wallet.

Identifiers validate on construction, each step raising one specific error with
the JSON pointer of the failing field (so the API can name it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from schwifty import BIC, IBAN
from schwifty.exceptions import SchwiftyException
from stdnum import lei as _lei
from stdnum.exceptions import ValidationError as _StdnumError

from gateway.domain.errors import AccountError, IdentifierError

__all__ = [
    "Account",
    "Agent",
    "IbanAccount",
    "Party",
    "UltimateParty",
    "UsAccount",
    "WalletAccount",
    "aba_check_digit_ok",
    "mask",
    "parse_account",
    "parse_party",
    "parse_ultimate_party",
]

_ROUTING_RE = re.compile(r"^[0-9]{9}$")
_US_ACCOUNT_RE = re.compile(r"^[0-9A-Za-z-]{1,17}$")
_WALLET_RE = re.compile(r"^[A-Za-z0-9._:@+-]{3,64}$")


@lru_cache(maxsize=4096)
def _compact_iban(value: str) -> str | SchwiftyException:
    """schwifty's verdict on an IBAN, cached: a business unit pays the same accounts again and again."""
    try:
        return IBAN(value).compact
    except SchwiftyException as exc:
        return exc


@lru_cache(maxsize=4096)
def _compact_bic(value: str) -> str:
    return BIC(value).compact


def mask(value: str, keep: int = 4) -> str:
    """Show only the last ``keep`` characters: what logs and responses may carry."""
    if len(value) <= keep:
        return "*" * len(value)
    return "*" * (len(value) - keep) + value[-keep:]


def aba_check_digit_ok(routing: str) -> bool:
    """ABA routing number checksum: 3·d1 + 7·d2 + 1·d3 + … ≡ 0 (mod 10)."""
    if not _ROUTING_RE.fullmatch(routing):
        return False
    weights = (3, 7, 1) * 3
    return sum(int(d) * w for d, w in zip(routing, weights, strict=True)) % 10 == 0


@dataclass(frozen=True, slots=True)
class IbanAccount:
    """An account identified by IBAN (validated by schwifty)."""

    iban: str

    kind = "iban"

    @classmethod
    def parse(cls, value: str, pointer: str) -> IbanAccount:
        compact = _compact_iban(value)
        if isinstance(compact, str):
            return cls(compact)
        raise AccountError(f"invalid IBAN: {compact}", pointer=pointer)

    @property
    def country(self) -> str:
        return self.iban[:2]

    def as_dict(self) -> dict[str, str]:
        return {"iban": self.iban}

    def masked(self) -> dict[str, str]:
        return {"iban": self.iban[:4] + mask(self.iban[4:])}


@dataclass(frozen=True, slots=True)
class UsAccount:
    """A US account: account number + ABA routing number (check digit validated)."""

    number: str
    routing: str

    kind = "us"
    country = "US"

    @classmethod
    def parse(cls, number: str, routing: str, pointer: str) -> UsAccount:
        if not _US_ACCOUNT_RE.fullmatch(number or ""):
            raise AccountError("account number must be 1-17 letters or digits", pointer=f"{pointer}/number")
        if not _ROUTING_RE.fullmatch(routing or ""):
            raise AccountError("routing number must be 9 digits", pointer=f"{pointer}/routing")
        if not aba_check_digit_ok(routing):
            raise AccountError("routing number fails the ABA check digit", pointer=f"{pointer}/routing")
        return cls(number, routing)

    def as_dict(self) -> dict[str, str]:
        return {"number": self.number, "routing": self.routing}

    def masked(self) -> dict[str, str]:
        return {"number": mask(self.number), "routing": self.routing}


@dataclass(frozen=True, slots=True)
class WalletAccount:
    """A wallet identifier at a wallet/card partner."""

    wallet: str

    kind = "wallet"
    country = None

    @classmethod
    def parse(cls, value: str, pointer: str) -> WalletAccount:
        if not _WALLET_RE.fullmatch(value or ""):
            raise AccountError("wallet id must be 3-64 characters [A-Za-z0-9._:@+-]", pointer=pointer)
        return cls(value)

    def as_dict(self) -> dict[str, str]:
        return {"wallet": self.wallet}

    def masked(self) -> dict[str, str]:
        return {"wallet": mask(self.wallet)}


Account = IbanAccount | UsAccount | WalletAccount


@dataclass(frozen=True, slots=True)
class Agent:
    """The party's bank, by BIC."""

    bic: str

    @classmethod
    def parse(cls, value: str, pointer: str) -> Agent:
        try:
            compact = _compact_bic(value)
        except SchwiftyException as exc:
            raise AccountError(f"invalid BIC: {exc}", pointer=pointer) from None
        return cls(compact)

    def as_dict(self) -> dict[str, str]:
        return {"bic": self.bic}


@dataclass(frozen=True, slots=True)
class Party:
    """Debtor or creditor: a name, an account, and optionally its bank."""

    name: str
    account: Account
    agent: Agent | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "account": self.account.as_dict()}
        if self.agent:
            out["agent"] = self.agent.as_dict()
        return out

    def masked(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "account": self.account.masked()}
        if self.agent:
            out["agent"] = self.agent.as_dict()
        return out


@dataclass(frozen=True, slots=True)
class UltimateParty:
    """Ultimate debtor or creditor: identified (name, optional LEI or BIC), never debited, so no account."""

    name: str
    lei: str | None = None
    bic: str | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name}
        if self.lei:
            out["identification"] = {"lei": self.lei}
        elif self.bic:
            out["identification"] = {"bic": self.bic}
        return out


def parse_account(data: dict[str, Any], pointer: str) -> Account:
    """Build the account from its contract form; the schema guarantees one shape."""
    if "iban" in data:
        return IbanAccount.parse(data["iban"], f"{pointer}/iban")
    if "routing" in data or "number" in data:
        return UsAccount.parse(data.get("number", ""), data.get("routing", ""), pointer)
    if "wallet" in data:
        return WalletAccount.parse(data["wallet"], f"{pointer}/wallet")
    raise AccountError("account needs iban, number+routing, or wallet", pointer=pointer)


def parse_party(data: dict[str, Any], pointer: str) -> Party:
    """Build a party (name, account, optional agent) from its contract form."""
    account = parse_account(data["account"], f"{pointer}/account")
    agent = Agent.parse(data["agent"]["bic"], f"{pointer}/agent/bic") if data.get("agent") else None
    return Party(name=data["name"], account=account, agent=agent)


def parse_ultimate_party(data: dict[str, Any], pointer: str) -> UltimateParty:
    """Build an ultimate party from its contract form; the LEI's ISO 17442 check digits are validated."""
    ident = data.get("identification") or {}
    if "lei" in ident:
        try:
            return UltimateParty(data["name"], lei=_lei.validate(ident["lei"]))
        except _StdnumError as exc:
            raise IdentifierError(f"invalid LEI: {exc}", pointer=f"{pointer}/identification/lei") from None
    if "bic" in ident:
        return UltimateParty(data["name"], bic=Agent.parse(ident["bic"], f"{pointer}/identification/bic").bic)
    return UltimateParty(data["name"])
