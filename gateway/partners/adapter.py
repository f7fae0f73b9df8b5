"""The ``Adapter`` interface: what a partner adapter provides to the core.

The core talks to partners only through this interface and the hooks in
``gateway.plugins.hookspecs``. An adapter is a plugin: its package exposes a module in
the ``gateway.adapters`` entry-point group whose ``gateway_adapter_classes``
hookimpl returns its ``Adapter`` subclasses.
"""

from __future__ import annotations

import abc
import asyncio
import importlib
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Self

from gateway.config import schema_defaults
from gateway.domain.collection import CollectionOrder
from gateway.domain.collection_status import CollectionStatus
from gateway.domain.money import Money
from gateway.domain.order import PaymentOrder
from gateway.domain.statements import FetchedFile, StatementFetch
from gateway.domain.status import Status
from gateway.errors import PermanentPartnerError
from gateway.partners.capture import narrow
from gateway.partners.http import PartnerHttp, header
from gateway.partners.signing import verify_signature

if TYPE_CHECKING:
    from aiohttp import web

__all__ = [
    "Adapter",
    "AdapterContext",
    "Capabilities",
    "CollectionOrder",
    "CollectionResult",
    "CollectionUpdate",
    "ConformanceProfile",
    "HttpAdapter",
    "PaymentOrder",
    "RefundResult",
    "RenderedMessage",
    "StatusUpdate",
    "SubmitResult",
    "http_settings_schema",
]


@dataclass(frozen=True)
class Capabilities:
    """What an adapter can carry; routing filters on it and the conformance kit checks it.

    Empty sets mean "any".
    """

    currencies: frozenset[str] = frozenset()
    countries: frozenset[str] = frozenset()
    account_kinds: frozenset[str] = frozenset({"iban"})
    types: frozenset[str] = frozenset({"credit_transfer", "payout", "refund"})
    max_amount: Decimal | None = None
    instant: bool = False

    def refusal(self, order: PaymentOrder) -> str | None:
        """Why this adapter cannot carry ``order``, or ``None`` if it can."""
        if self.currencies and order.money.currency not in self.currencies:
            return f"currency {order.money.currency} not supported"
        if order.type not in self.types:
            return f"type {order.type} not supported"
        kind = order.creditor.account.kind
        if kind not in self.account_kinds:
            return f"{kind} accounts not supported"
        country = order.creditor.account.country
        if self.countries and country not in self.countries:
            return f"creditor country {country} not supported"
        if self.max_amount is not None and order.money.amount > self.max_amount:
            return f"amount above {self.max_amount}"
        if order.urgency == "instant" and not self.instant:
            return "instant payments not supported"
        return None

    def as_dict(self) -> dict[str, Any]:
        return {
            "currencies": sorted(self.currencies),
            "countries": sorted(self.countries),
            "account_kinds": sorted(self.account_kinds),
            "types": sorted(self.types),
            "max_amount": str(self.max_amount) if self.max_amount is not None else None,
            "instant": self.instant,
        }


@dataclass(frozen=True)
class SubmitResult:
    """The partner's synchronous answer to ``submit``.

    ``status`` is ``submitted`` (partner took it, final status follows),
    ``settled`` or ``rejected`` (with an ISO-style ``reason_code``).
    """

    status: Status
    partner_reference: str
    reason_code: str | None = None
    reason: str | None = None
    partner_status: str | None = None


@dataclass(frozen=True)
class StatusUpdate:
    """One status the partner reported (callback or poll).

    At least one of ``instruction_id`` and ``partner_reference`` identifies
    the payment. ``status`` is ``None`` when the partner only acknowledged
    (e.g. pain.002 ``ACCP``): recorded, but no transition.
    """

    status: Status | None
    instruction_id: str | None = None
    partner_reference: str | None = None
    partner_status: str | None = None
    reason_code: str | None = None
    reason: str | None = None
    occurred_at: datetime | None = None


@dataclass(frozen=True)
class CollectionResult:
    """The partner's synchronous answer to ``collect`` or ``capture``.

    ``status`` is ``submitted`` (the partner took it; the outcome follows, or a manual-capture
    charge was authorised and waits for its capture), ``collected`` or ``rejected`` (with a
    ``reason_code``).
    """

    status: CollectionStatus
    partner_reference: str
    reason_code: str | None = None
    reason: str | None = None
    partner_status: str | None = None


@dataclass(frozen=True)
class CollectionUpdate:
    """One collection status the partner reported (webhook or poll): ``collected``, ``rejected``,
    ``failed``, ``charged_back``, ``returned``; ``None`` when it only acknowledged.

    At least one of ``collection_id`` and ``partner_reference`` identifies the collection.
    """

    status: CollectionStatus | None
    collection_id: str | None = None
    partner_reference: str | None = None
    partner_status: str | None = None
    reason_code: str | None = None
    reason: str | None = None
    occurred_at: datetime | None = None


@dataclass(frozen=True)
class RefundResult:
    """The partner's answer to ``refund_collection``: the refund was paid (``succeeded``) or refused."""

    succeeded: bool
    partner_reference: str | None = None
    reason_code: str | None = None
    reason: str | None = None


@dataclass(frozen=True)
class RenderedMessage:
    """A payment in the partner's own format, already checked against the partner's contract (``Adapter.render``)."""

    #: the partner message or file format, e.g. ``pain.001.001.09``, ``payout-create``, ``NACHA``
    message: str
    media_type: str
    body: bytes


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class AdapterContext:
    """What the core hands an adapter when it builds it."""

    #: absolute URL the partner must post callbacks to
    callback_url: str
    #: the gateway's clock (injectable so tests can move time)
    clock: Callable[[], datetime] = _utcnow


@dataclass(frozen=True)
class ConformanceProfile:
    """How the conformance kit (``gateway.devtools.conformance``) drives an adapter against its simulator.

    Returned by ``Adapter.conformance_profile()``; see docs/adapters.md.
    """

    #: (simulator base URL, a fresh scratch directory) → the adapter's settings
    adapter_settings: Callable[[str, Path], Mapping[str, Any]]
    #: the simulator's settings (secrets matching ``adapter_settings``; short delays)
    simulator_settings: Mapping[str, Any]
    #: (instruction id, creditor name) → an order the adapter can carry
    sample_order: Callable[[str, str], PaymentOrder]
    #: a creditor name that makes the simulator refuse the payment
    reject_marker: str = "REJECTNOW-AC04"
    #: the status that refusal ends in (``returned`` for rails that refuse after settling)
    rejection_status: Status = Status.REJECTED
    #: the header carrying the partner's callback signature
    signature_header: str = "X-Signature"
    #: why the signature check does not apply (a partner that never calls back), or None
    no_callbacks_reason: str | None = None
    #: the setting (seconds) bounding one partner request
    timeout_setting: str = "timeout_seconds"
    #: for adapters whose ``submit`` only queues: send what is queued (e.g. ``run_cutoff``)
    deliver: Callable[[Adapter], Awaitable[object]] | None = None
    #: (running simulator app, order) → payments the partner booked for it; default: the simulator core's journal
    payments_at_partner: Callable[[web.Application, PaymentOrder], int] | None = None


class Adapter(abc.ABC):
    """A partner adapter. Subclass it, set ``name`` and ``capabilities``, implement the calls."""

    #: unique adapter name; appears in URLs (``/v1/partners/{name}/callbacks``) and config
    name: ClassVar[str]
    #: what the adapter can carry (a class default; an instance may narrow it from its settings)
    capabilities: Capabilities
    #: partner-side message contracts this adapter speaks: message name → schema file path
    partner_contracts: ClassVar[Mapping[str, str]] = {}
    #: JSON Schema (dict) for this adapter's ``partners.<name>`` settings; validated at start-up
    settings_schema: ClassVar[Mapping[str, Any]] = {"type": "object"}
    #: the collection kinds (``card_charge``, ``wallet_charge``, ``direct_debit``) this adapter can collect;
    #: empty: it collects nothing. Collections are routed only to an adapter that declares their kind.
    collection_kinds: ClassVar[frozenset[str]] = frozenset()
    #: currencies it collects in (empty: any)
    collection_currencies: ClassVar[frozenset[str]] = frozenset()
    #: the statement formats (``camt.053``, ``camt.054``) it fetches from its partner itself
    #: (``fetch_statements``); empty: none, statements come only as uploads
    statement_sources: ClassVar[frozenset[str]] = frozenset()
    #: requests the default ``submit_many`` sends to the partner at the same time
    submit_concurrency: ClassVar[int] = 32

    @classmethod
    @abc.abstractmethod
    def from_settings(cls, settings: Mapping[str, Any], context: AdapterContext) -> Self:
        """Build the adapter from its ``partners.<name>`` settings."""

    @classmethod
    def conformance_profile(cls) -> ConformanceProfile | None:
        """How the conformance kit drives this adapter against its simulator; ``None`` if it cannot.

        By convention, ``profile()`` of the ``conformance`` module beside the adapter's
        module (``my_bank/adapter.py`` → ``my_bank/conformance.py``), or beside the module
        of the nearest base class that has one; ``None`` without one.
        """
        module = None
        for klass in cls.__mro__:
            package = klass.__module__.rpartition(".")[0]
            if klass in (Adapter, HttpAdapter) or not package or not issubclass(klass, Adapter):
                continue
            name = f"{package}.conformance"
            try:
                module = importlib.import_module(name)
                break
            except ModuleNotFoundError as exc:
                if exc.name != name:
                    raise
        if module is None:
            return None
        profile = getattr(module, "profile", None)
        return profile() if callable(profile) else None

    async def start(self) -> None:  # noqa: B027 - optional hook
        """Open connections (called once when the gateway starts)."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections (called once when the gateway stops)."""

    @abc.abstractmethod
    async def submit(self, order: PaymentOrder) -> SubmitResult:
        """Send the payment to the partner with ``order.id`` as idempotency key.

        Raise ``TransientPartnerError`` when a retry may succeed (timeouts,
        5xx, 429), ``PermanentPartnerError`` when it cannot; a business
        rejection by the partner is a ``SubmitResult`` with status ``rejected``.
        """

    def render(self, order: PaymentOrder) -> RenderedMessage | None:
        """The payment as this partner would receive it, checked against the partner's contract; sends nothing.

        Used by shadow mode (docs/go-live.md). Raise ``PermanentPartnerError`` (with its reason
        code) when the order cannot be expressed in the partner's format or breaks its contract;
        return ``None`` (the default) when the adapter cannot render without sending.
        """
        return None

    async def submit_many(self, orders: Sequence[PaymentOrder]) -> list[SubmitResult | Exception]:
        """Send several payments; one answer per order, in order: its ``SubmitResult`` or the error
        ``submit`` would have raised for it (``TransientPartnerError``, ``OutcomeUnknownError``, …).

        The dispatcher hands each batch's payments for this adapter to one call. The default sends
        them one ``submit`` each, at most ``submit_concurrency`` at a time. A partner that takes bulk
        messages (a pain.001 with many transactions, a NACHA file with many entries) overrides it to send one message,
        keeping each ``order.id`` as that payment's idempotency key inside it, so a payment sent again
        in another bulk message is recognised and never paid twice. An error of the whole message
        (a timeout, a 503) is that error for every order in it.
        """
        gate = asyncio.Semaphore(self.submit_concurrency)

        async def one(order: PaymentOrder) -> SubmitResult:
            async with gate:
                with narrow(order.id):  # its partner messages are about this payment only
                    return await self.submit(order)

        answers = await asyncio.gather(*(one(order) for order in orders), return_exceptions=True)
        out: list[SubmitResult | Exception] = []
        for answer in answers:
            if isinstance(answer, BaseException) and not isinstance(answer, Exception):
                raise answer  # cancelled: never hidden as an answer
            out.append(answer)
        return out

    @abc.abstractmethod
    async def poll(self, order: PaymentOrder) -> StatusUpdate | None:
        """Ask the partner for the payment's current status; ``None`` if it has none yet."""

    # -- collections (money in): implemented by adapters that declare ``collection_kinds`` --------------

    async def collect(self, order: CollectionOrder) -> CollectionResult:
        """Ask the partner to collect ``order`` with ``order.id`` as idempotency key.

        Same error contract as ``submit``: ``TransientPartnerError`` when a retry may succeed,
        ``PermanentPartnerError`` when it cannot; a refusal by the payer's side is a result
        with status ``rejected``.
        """
        raise PermanentPartnerError(f"{self.name} does not collect {order.kind}", reason_code="NO_ROUTE")

    async def capture(self, order: CollectionOrder) -> CollectionResult:
        """Capture an authorised manual-capture charge (idempotent at the partner)."""
        raise PermanentPartnerError(f"{self.name} cannot capture", reason_code="NOT_SUPPORTED")

    async def refund_collection(self, order: CollectionOrder, refund_id: str, money: Money) -> RefundResult:
        """Pay ``money`` of a collected charge back to the payer, ``refund_id`` as idempotency key."""
        raise PermanentPartnerError(f"{self.name} cannot refund a collection", reason_code="NOT_SUPPORTED")

    async def poll_collection(self, order: CollectionOrder) -> CollectionUpdate | None:
        """Ask the partner for the collection's current status; ``None`` if it has none (the default)."""
        return None

    def parse_collection_callback(self, headers: Mapping[str, str], body: bytes) -> list[CollectionUpdate] | None:
        """Verify (signature first) and parse a partner callback about collections; ``None`` when the body
        is not about collections (the default), so ``parse_callback`` reads it."""
        return None

    # -- statements: implemented by adapters that declare ``statement_sources`` ------------------------

    async def fetch_statements(self, request: StatementFetch) -> list[FetchedFile]:
        """Fetch the statement files ``request`` asks for from the partner, each as the partner sent it.

        Called by the gateway's scheduled statement fetch (``reconciliation.fetch_seconds``), once per
        run across processes; every file goes through the same import as an upload (format named by
        ``FetchedFile.format``, one of ``statement_sources``), so a file fetched twice adds nothing.
        Return only what the partner has (no file for a day without a statement). Raise
        ``TransientPartnerError`` / ``PermanentPartnerError`` when the partner cannot be asked; the
        run logs it and tries again at its next interval. Default: nothing.
        """
        return []

    @abc.abstractmethod
    def parse_callback(self, headers: Mapping[str, str], body: bytes) -> list[StatusUpdate]:
        """Verify (signature first) and parse a partner callback into status updates.

        Raise ``SignatureError`` for a missing, stale or wrong signature and
        ``ContractError`` for a body the partner contract rejects.
        """


_SECRET = {"type": "string", "minLength": 8}


def http_settings_schema(
    secrets: Sequence[str],
    *,
    currencies: Sequence[str] | None = None,
    max_amount: str | None = None,
    timeout_seconds: float = 10,
    timeout_maximum: float | None = None,
    properties: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The ``settings_schema`` of an HTTP adapter: what every one takes, and its own ``properties``.

    ``base_url`` and the named ``secrets`` are required; ``timeout_seconds`` and
    ``signature_tolerance_seconds`` have defaults; ``currencies`` and ``max_amount``
    are settings (with these defaults) when given. ``properties`` adds or replaces
    entries (a secret with its own pattern, say).
    """
    timeout: dict[str, Any] = {"type": "number", "exclusiveMinimum": 0, "default": timeout_seconds}
    if timeout_maximum is not None:
        timeout["maximum"] = timeout_maximum
    props: dict[str, Any] = {
        "base_url": {"type": "string", "pattern": "^https?://", "minLength": 8},
        **{name: dict(_SECRET) for name in secrets},
        "timeout_seconds": timeout,
        "signature_tolerance_seconds": {"type": "number", "minimum": 1, "default": 300},
    }
    if currencies is not None:
        props["currencies"] = {
            "type": "array",
            "items": {"type": "string", "pattern": "^[A-Z]{3}$"},
            "minItems": 1,
            "uniqueItems": True,
            "default": list(currencies),
        }
    if max_amount is not None:
        props["max_amount"] = {
            "type": ["string", "integer"],
            "pattern": "^[0-9]{1,18}(\\.[0-9]{1,6})?$",
            "default": max_amount,
        }
    props.update(properties or {})
    return {"type": "object", "additionalProperties": False, "required": ["base_url", *secrets], "properties": props}


class HttpAdapter(Adapter):
    """An adapter whose partner speaks HTTP: what every such adapter would otherwise repeat.

    Settings with their ``settings_schema`` defaults filled in (``self.settings``);
    ``base_url``, ``timeout_seconds`` and ``signature_tolerance_seconds`` read from
    them; one ``PartnerHttp`` session with the gateway's failure semantics
    (``self.http``, opened by ``start``, closed by ``close``); capabilities from the
    ``currencies`` and ``max_amount`` settings and the class's ``account_kinds``,
    ``payment_types`` and ``instant``; ``from_settings``; and a ``repr`` that names
    the partner's URL and never a secret. A subclass reads its own settings (its
    secrets) in ``__init__`` after calling ``super().__init__``.
    """

    #: how messages name the partner ("the bank did not answer …")
    partner_label: ClassVar[str] = "the partner"
    #: the fixed part of ``capabilities``
    account_kinds: ClassVar[frozenset[str]] = frozenset()
    payment_types: ClassVar[frozenset[str]] = frozenset()
    instant: ClassVar[bool] = False

    def __init__(self, settings: Mapping[str, Any], context: AdapterContext) -> None:
        self.settings: Mapping[str, Any] = {**schema_defaults(self.settings_schema), **settings}
        self.context = context
        self.base_url = str(self.settings["base_url"]).rstrip("/")
        self.timeout_seconds = float(self.settings.get("timeout_seconds", 10))
        self.signature_tolerance = float(self.settings.get("signature_tolerance_seconds", 300))
        self.capabilities = self.capabilities_from(self.settings)
        self.http = PartnerHttp(self.partner_label, self.timeout_seconds)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "settings_schema" in cls.__dict__:  # the class default: what the settings' defaults allow
            cls.capabilities = cls.capabilities_from(schema_defaults(cls.settings_schema))

    @classmethod
    def capabilities_from(cls, settings: Mapping[str, Any]) -> Capabilities:
        """What an instance with these settings can carry: currencies and the amount limit are settings."""
        return Capabilities(
            currencies=frozenset(settings["currencies"]),
            account_kinds=cls.account_kinds,
            types=cls.payment_types,
            max_amount=Decimal(str(settings["max_amount"])) if settings.get("max_amount") is not None else None,
            instant=cls.instant,
        )

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any], context: AdapterContext) -> Self:
        return cls(settings, context)

    def __repr__(self) -> str:  # secrets stay out of reprs and therefore logs
        return f"{type(self).__name__}(base_url={self.base_url!r})"

    def verify_signed(self, secret: bytes, body: bytes, headers: Mapping[str, str], header_name: str) -> int:
        """Check the partner's HMAC signature on ``body`` (in ``header_name``) at the adapter's clock and
        tolerance; returns its timestamp, or raises ``SignatureError`` (missing, malformed, stale or wrong)."""
        return verify_signature(
            secret,
            body,
            header(headers, header_name),
            tolerance=self.signature_tolerance,
            now=self.context.clock().timestamp(),
        )

    async def start(self) -> None:
        self.http.session()

    async def close(self) -> None:
        await self.http.close()
