"""Partner messages: what the gateway sent a partner and what the partner answered, masked.

``PartnerHttp`` records each request and its answer into the ``MessageLog`` of the work it
runs in (a context variable: a dispatch batch, a poll round), never into the database: the
log's messages are written by whoever commits what they produced, in the same transaction
(the event, the retry), so a message is never half-written and costs no transaction of its
own. Outside such work (no log set) nothing is recorded and nothing is paid.

Bodies are masked before they are kept (``mask_body``): IBANs (checksum-valid, and not a run inside one of
the gateway's own ids) and card
numbers (Luhn-valid) show their last 4 characters, account numbers in JSON, ISO 20022 XML
(``Othr/Id``) and NACHA entry records too, secrets and signatures in JSON are dropped; the
known account identifiers of the payments a message is about are masked wherever they
appear. Headers are never kept (so no ``Authorization`` and no signature), only the media
type; the URL is kept as its path, never its query or host. Bodies are cut at
``max_bytes`` (after masking, so no cut leaves part of an account number visible).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from stdnum import luhn
from stdnum.iso7064 import mod_97_10

from gateway.domain.accounts import IbanAccount, UsAccount, WalletAccount, mask
from gateway.domain.ids import new_ids
from gateway.domain.order import PaymentOrder

__all__ = [
    "DEFAULT_MAX_BYTES",
    "MessageLog",
    "PartnerMessage",
    "about",
    "account_secrets",
    "capturing",
    "inbound",
    "mask_body",
    "narrow",
    "record_exchange",
]

#: bodies longer than this (bytes, after masking) are cut and flagged ``truncated``
DEFAULT_MAX_BYTES = 16384

#: what a dropped secret reads as
DROPPED = "[dropped]"

# An IBAN without boundaries (lookarounds cost half the scan): a match inside a longer token is masked only
# if it passes the checksum, the safe side. A card number is a whole run of 13-19 digits: a longer run (a
# timestamped message id) is no card, and 1 in 10 of its 19-digit slices would pass Luhn.
_IBAN_RE = re.compile(r"[A-Z]{2}[0-9]{2}[A-Z0-9]{11,30}")
#: the gateway's own ids (``gateway.domain.ids``: a prefix of at most 8, ``_``, 26 Crockford digits): about 1 in 100
#: holds a run that passes the IBAN checksum, and they are no account, so a match inside one is kept
_GATEWAY_ID_RE = re.compile(r"[a-z][a-z0-9]{0,7}_[0-9A-HJKMNP-TV-Z]{26}")
_PAN_RE = re.compile(r"(?<![0-9])[0-9]{13,19}(?![0-9])")
_OTHR_ID_RE = re.compile(r"(<(?:\w+:)?Othr>\s*<(?:\w+:)?Id>)([^<]+)(<)")
_SECRET_KEY_RE = re.compile(r"secret|signature|password|passwd|token|api_?key|authorization|cvv|cvc|pin\b", re.I)
_ACCOUNT_KEY_RE = re.compile(r"iban|account|acct|^number$|card_?number|^pan$|wallet", re.I)
#: a JSON member with a string value: read as text, so the partner's own layout is kept and a cut body still masks
_JSON_PAIR_RE = re.compile(r'"((?:[^"\\]|\\.)*)"(\s*:\s*)"((?:[^"\\]|\\.)*)"')
#: read this far past the cut, so every identifier that starts before it is seen whole (IBAN ≤ 34, a NACHA
#: record 94, a JSON member with its key)
_MARGIN = 256


def _iban_ok(value: str) -> bool:
    """ISO 13616 mod-97 check: only real IBANs are masked, not references that look like one."""
    return bool(mod_97_10.is_valid(value[4:] + value[:4]))


def _mask_iban(m: re.Match[str]) -> str:
    """A checksum-valid IBAN shows its last 4, unless it is a run inside one of the gateway's own ids."""
    value = m.group(0)
    if not _iban_ok(value):
        return value
    start, end = m.span()
    text = m.string
    for own in _GATEWAY_ID_RE.finditer(text, max(0, start - 35), min(len(text), end + 35)):
        if own.start() <= start and end <= own.end():
            return value
    return mask(value)


def _mask_match(m: re.Match[str], check: Any) -> str:
    value = m.group(0)
    return mask(value) if check(value) else value


def _mask_pair(m: re.Match[str]) -> str:
    key, colon, value = m.group(1), m.group(2), m.group(3)
    if _SECRET_KEY_RE.search(key):
        return f'"{key}"{colon}"{DROPPED}"'
    if _ACCOUNT_KEY_RE.search(key):
        return f'"{key}"{colon}"{mask(value)}"'
    return m.group(0)


def _mask_nacha(text: str) -> str:
    """Entry detail records (type 6): the DFI account number (positions 13-29) shows its last 4."""
    lines = text.split("\n")
    for i, line in enumerate(lines):
        if line.startswith("6") and len(line.rstrip("\r")) == 94:
            number = line[12:29]
            lines[i] = line[:12] + mask(number.rstrip()).ljust(17) + line[29:]
    return "\n".join(lines)


def mask_body(body: bytes, media_type: str | None = None, secrets: Sequence[str] = (), limit: int | None = None) -> str:
    """The body as text with account identifiers masked and secrets dropped (see the module's docstring).

    ``secrets``: account identifiers known to be in the message (the payments it is about),
    masked wherever they appear, whatever the format. ``limit``: only the first ``limit`` bytes
    will be kept, so only they (and a margin) are read: a bulk pain.001 of 200 KB costs what 16 KB do.
    """
    if limit is not None and len(body) > limit + _MARGIN:
        body = body[: limit + _MARGIN]
    text = body.decode("utf-8", errors="replace")
    kind = (media_type or "").lower()
    stripped = text.lstrip()
    if "json" in kind or stripped[:1] in ("{", "["):
        text = _JSON_PAIR_RE.sub(_mask_pair, text)
    elif "xml" in kind or stripped.startswith("<"):
        text = _OTHR_ID_RE.sub(lambda m: m.group(1) + mask(m.group(2)) + m.group(3), text)
    elif stripped.startswith("101"):  # a NACHA file: its first record is the file header "1" + priority "01"
        text = _mask_nacha(text)
    text = _IBAN_RE.sub(_mask_iban, text)
    text = _PAN_RE.sub(lambda m: _mask_match(m, luhn.is_valid), text)
    known = {s for s in secrets if len(s) > 4}
    if len(known) <= 8:
        for secret in known:
            if secret in text:
                text = text.replace(secret, mask(secret))
    else:  # a bulk message: one pass, not one per payment
        pattern = re.compile("|".join(re.escape(s) for s in sorted(known, key=len, reverse=True)))
        text = pattern.sub(lambda m: mask(m.group(0)), text)
    return text


def account_secrets(order: PaymentOrder) -> tuple[str, ...]:
    """The order's account identifiers: what must never appear unmasked in a message about it."""
    out: list[str] = []
    for party in (order.debtor, order.creditor):
        account = party.account
        if isinstance(account, IbanAccount):
            continue  # every valid IBAN is masked wherever it appears (``mask_body``)
        if isinstance(account, UsAccount):
            out.append(account.number)
        elif isinstance(account, WalletAccount):
            out.append(account.wallet)
    return tuple(out)


@dataclass(frozen=True, slots=True)
class PartnerMessage:
    """One masked message between the gateway and a partner, and the payments it is about."""

    id: str
    #: ``out``: the gateway sent it; ``in``: the partner sent it (an answer or a callback)
    direction: str
    partner: str
    #: ``submit``, ``status``, ``callback``, ``cancel`` …
    kind: str
    method: str
    path: str
    #: the HTTP status of the answer (``in`` answers), or of the gateway's answer to a callback
    status_code: int | None
    occurred_at: datetime
    media_type: str | None
    body: str
    #: the body's size as sent, in bytes (before masking and cutting)
    size: int
    truncated: bool
    instruction_ids: tuple[str, ...] = ()


def _cut(text: str, max_bytes: int) -> tuple[str, bool]:
    raw = text.encode()
    if len(raw) <= max_bytes:
        return text, False
    return raw[:max_bytes].decode("utf-8", errors="ignore"), True


def _media_type(headers: Mapping[str, str] | None) -> str | None:
    if not headers:
        return None
    value = headers.get("Content-Type") or headers.get("content-type")
    if value is None:
        value = next((v for k, v in headers.items() if k.lower() == "content-type"), None)
    return value.split(";")[0].strip()[:100] if value else None


#: an exchange as recorded, before masking: the arguments of ``MessageLog.message``
_Raw = tuple[str, str, str, str, int | None, Mapping[str, str] | None, bytes | None, tuple[str, ...], datetime]


@dataclass
class MessageLog:
    """The partner messages one unit of work exchanged, kept until its transaction writes them."""

    kind: str
    max_bytes: int = DEFAULT_MAX_BYTES
    #: instruction id → its account identifiers (masked in any message about it)
    secrets: dict[str, tuple[str, ...]] = field(default_factory=dict)
    #: the exchanges recorded so far, as sent and received: masked only when taken (``take``), so an
    #: exchange that is not kept (a poll that brought no news) costs no masking
    pending: list[_Raw] = field(default_factory=list)

    def know(self, orders: Sequence[PaymentOrder]) -> None:
        for order in orders:
            self.secrets[order.id] = account_secrets(order)

    def message(
        self,
        direction: str,
        partner: str,
        method: str,
        url: str,
        status_code: int | None,
        headers: Mapping[str, str] | None,
        body: bytes | None,
        instruction_ids: tuple[str, ...],
        at: datetime,
    ) -> PartnerMessage:
        media_type = _media_type(headers)
        known = [s for i in instruction_ids for s in self.secrets.get(i, ())]
        text, truncated = _cut(mask_body(body or b"", media_type, known, self.max_bytes), self.max_bytes)
        return PartnerMessage(
            id="",
            direction=direction,
            partner=partner,
            kind=self.kind,
            method=method.upper()[:8],
            path=urlsplit(url).path[:300] or "/",
            status_code=status_code,
            occurred_at=at,
            media_type=media_type,
            body=text,
            size=len(body or b""),
            truncated=truncated,
            instruction_ids=instruction_ids,
        )

    def take(self, instruction_ids: Sequence[str] | None = None) -> list[PartnerMessage]:
        """The messages recorded so far (about ``instruction_ids`` only, when given), masked, with ids; forgotten
        here."""
        if instruction_ids is None:
            taken, self.pending = self.pending, []
        else:
            wanted = set(instruction_ids)
            taken = [r for r in self.pending if not wanted.isdisjoint(r[7])]
            self.pending = [r for r in self.pending if wanted.isdisjoint(r[7])]
        ids = new_ids("pmsg", len(taken)) if taken else []
        return [_with_id(self.message(*r), i) for r, i in zip(taken, ids, strict=True)]


def _with_id(message: PartnerMessage, message_id: str) -> PartnerMessage:
    return dataclasses.replace(message, id=message_id)


_LOG: ContextVar[MessageLog | None] = ContextVar("partner_message_log", default=None)
#: (adapter name, instruction ids) the partner calls made now are about
_ABOUT: ContextVar[tuple[str, tuple[str, ...]] | None] = ContextVar("partner_message_about", default=None)


@contextmanager
def capturing(log: MessageLog | None) -> Iterator[MessageLog | None]:
    """Record the partner calls made inside (and in tasks started inside) into ``log`` (None: record nothing)."""
    token = _LOG.set(log)
    try:
        yield log
    finally:
        _LOG.reset(token)


@contextmanager
def about(partner: str, instruction_ids: Sequence[str]) -> Iterator[None]:
    """The partner calls made inside are ``partner``'s, about these payments."""
    token = _ABOUT.set((partner, tuple(instruction_ids)))
    try:
        yield
    finally:
        _ABOUT.reset(token)


@contextmanager
def narrow(instruction_id: str) -> Iterator[None]:
    """Inside ``about``: the calls made inside are about this one payment (one request of a batch)."""
    current = _ABOUT.get()
    if current is None:
        yield
        return
    token = _ABOUT.set((current[0], (instruction_id,)))
    try:
        yield
    finally:
        _ABOUT.reset(token)


def record_exchange(
    method: str,
    url: str,
    request_headers: Mapping[str, str],
    request_body: bytes | None,
    status_code: int | None,
    response_headers: Mapping[str, str] | None,
    response_body: bytes | None,
    sent_at: datetime,
) -> None:
    """Record a request (sent at ``sent_at``) and, when one came, its answer into the current log; nothing
    without a log."""
    log = _LOG.get()
    subject = _ABOUT.get()
    if log is None or subject is None:
        return
    partner, ids = subject
    log.pending.append(("out", partner, method, url, None, request_headers, request_body, ids, sent_at))
    if status_code is not None:
        now = max(datetime.now(UTC), sent_at)
        log.pending.append(("in", partner, method, url, status_code, response_headers, response_body, ids, now))


def inbound(
    partner: str,
    kind: str,
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: bytes,
    status_code: int | None,
    max_bytes: int,
) -> PartnerMessage:
    """A message the partner sent on its own (a callback), not yet linked to payments."""
    log = MessageLog(kind, max_bytes)
    return _with_id(
        log.message("in", partner, method, url, status_code, headers, body, (), datetime.now(UTC)),
        new_ids("pmsg", 1)[0],
    )
