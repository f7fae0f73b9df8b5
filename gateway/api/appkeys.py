"""Every object an aiohttp handler shares, behind one ``web.AppKey`` each."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.api.ratelimit import RateLimiter
from gateway.config import Settings
from gateway.contracts.registry import ContractRegistry
from gateway.dispatch.collections import CollectionUpdates
from gateway.dispatch.updates import StatusUpdates
from gateway.domain.clock import Clock
from gateway.domain.events import Announce
from gateway.domain.rebates import Program
from gateway.domain.statements import StatementFormat
from gateway.errors import UnknownAdapterError
from gateway.intake.files import FileDesk
from gateway.metrics import Metrics
from gateway.partners.adapter import Adapter
from gateway.recon.csvformat import CsvMapping
from gateway.recon.rules import ReconRules
from gateway.risk.holds import HoldDesk
from gateway.store.codec import InstructionCodec
from gateway.store.encryption import FieldCipher
from gateway.store.intake import IntakeWriter
from gateway.store.repo import Principal

__all__ = ["AUTH_CACHE", "PRINCIPAL", "SERVICES", "SETTINGS", "SIMULATORS", "ApiServices"]


@dataclass(frozen=True)
class ApiServices:
    """What the API's handlers work with; the composition root (``gateway.runtime``) builds it."""

    engine: AsyncEngine
    clock: Clock
    contracts: ContractRegistry
    codec: InstructionCodec
    writer: IntakeWriter
    metrics: Metrics
    adapters: Mapping[str, Adapter]
    updates: StatusUpdates
    holds: HoldDesk
    #: tells plugins about committed transitions (e.g. a cancellation)
    announce: Announce
    #: encrypts webhook signing secrets at rest
    cipher: FieldCipher
    #: tells the webhook worker a delivery is due now (a redelivery)
    wake_webhooks: Callable[[], None]
    #: every statement format the installed adapters read, by name (``gateway_statement_formats``)
    statement_formats: Mapping[str, StatementFormat]
    #: CSV statement column mappings by name (``reconciliation.csv_mappings``), for ``?mapping=NAME``
    csv_mappings: Mapping[str, CsvMapping]
    #: ERP payment files: pain.001 in, pain.002 status reports out
    files: FileDesk
    #: applies partner reports about collections (``None``: this process does not take collections)
    collection_updates: CollectionUpdates | None = None
    #: tells the collection dispatcher a job is due now
    wake_collections: Callable[[], None] = lambda: None
    #: the reconciliation rules checked at start (``config/reconciliation.yaml``); None: the shipped file
    recon_rules: ReconRules | None = None
    #: each partner's circuit breaker that is not plainly closed, by name: "open" or "half-open" (the console)
    partner_health: Callable[[], Mapping[str, str]] = dict
    #: the rebate programs checked at start (``rebates.file``); none: nothing accrues
    rebate_programs: Mapping[str, Program] = field(default_factory=dict)

    def adapter(self, name: str) -> Adapter:
        """The enabled adapter of that name; ``UnknownAdapterError`` (404) otherwise."""
        try:
            return self.adapters[name]
        except KeyError:
            raise UnknownAdapterError(f"no enabled adapter named {name!r}") from None


SETTINGS = web.AppKey("settings", Settings)
SERVICES = web.AppKey("services", ApiServices)
#: key hash → (expires at, the look-up of its principal or None: one at a time per key); see gateway.api.auth
AUTH_CACHE = web.AppKey("auth_cache", dict)
#: the partner simulators this process started, name → base URL (``gateway serve --with-simulators``,
#: ``gateway demo``, the harness): the mark of development. Empty otherwise, and the console's QA page is then 404
SIMULATORS = web.AppKey("simulators", dict)
#: per business unit token buckets of intake (gateway.api.ratelimit)
RATE_LIMITER = web.AppKey("rate_limiter", RateLimiter)
#: per request: who called, once ``gateway.api.auth.authenticate`` has checked the key (the access log reads it)
PRINCIPAL = web.RequestKey("principal", Principal)
