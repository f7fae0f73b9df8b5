"""The composition root: builds the objects one gateway process works with and wires them together.

No module of the core imports this one. Each worker gets the narrow services it
uses (``DispatchServices``, ``SchedulerServices``, ``WebhookServices``, ``ApiServices``,
``HoldDesk``, ``StatusUpdates``, ``Orders``), built here once; nothing reaches back through the
runtime. Opened once (by ``create_app``'s cleanup context, the CLI, or a test),
closed once.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import AsyncIterator, Callable, Iterable

from aiohttp import web
from jsonschema import Draft202012Validator
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from gateway.api.app import build_app
from gateway.api.appkeys import ApiServices
from gateway.config import Settings, WebhookSettings
from gateway.contracts.registry import ContractRegistry, contracts
from gateway.dispatch.dispatcher import Dispatcher, DispatchServices
from gateway.dispatch.routing import load_routing
from gateway.dispatch.scheduler import Scheduler, SchedulerServices
from gateway.dispatch.updates import StatusUpdates
from gateway.domain.clock import Clock, system_clock
from gateway.domain.events import StatusChange
from gateway.errors import ConfigError
from gateway.ledger.rules import load_ledger
from gateway.metrics import Metrics
from gateway.partners.adapter import Adapter, AdapterContext
from gateway.plugins.hookspecs import hookimpl
from gateway.plugins.manager import Plugins
from gateway.risk.credit import sync_config_limits
from gateway.risk.engine import fingerprint_key, load_risk
from gateway.risk.holds import HoldDesk
from gateway.risk.screening import Screener
from gateway.store.codec import InstructionCodec
from gateway.store.db import create_engine
from gateway.store.encryption import FieldCipher, parse_key_ring
from gateway.store.intake import IntakeWriter
from gateway.store.journal import bind as bind_ledger
from gateway.store.orders import Orders
from gateway.store.processes import Heartbeat, share_circuits
from gateway.webhooks.worker import WebhookServices, WebhookWorker

__all__ = ["DEV_KEY_ID", "Runtime", "create_app"]

log = logging.getLogger(__name__)
DEV_KEY_ID = "dev"


def _build_adapters(classes: dict[str, type[Adapter]], settings: Settings, clock: Clock) -> dict[str, Adapter]:
    partners = settings.section("partners")
    unknown = sorted(set(partners) - set(classes))
    if unknown:
        raise ConfigError(
            f"partners.{unknown[0]}: no adapter of that name is installed (installed: {', '.join(classes) or 'none'})"
        )
    built: dict[str, Adapter] = {}
    for name, cls in classes.items():
        if name not in partners:
            continue  # installed but not configured: not enabled
        block = dict(partners[name] or {})
        errors = sorted(
            Draft202012Validator(dict(cls.settings_schema)).iter_errors(block),
            key=lambda e: list(e.absolute_path),
        )
        if errors:
            where = ".".join(["partners", name, *(str(p) for p in errors[0].absolute_path)])
            raise ConfigError(f"{where}: {errors[0].message}")
        context = AdapterContext(callback_url=f"{settings.public_url}/v1/partners/{name}/callbacks", clock=clock)
        built[name] = cls.from_settings(block, context)
    return built


class _WebhookWaker:
    """A plugin that wakes the webhook worker after each committed status change (its deliveries are due)."""

    def __init__(self, wake: Callable[[], None]) -> None:
        self._wake = wake

    @hookimpl
    def gateway_status_changed(self, change: StatusChange) -> None:
        self._wake()


class Runtime:
    """Everything a gateway process shares; see module docstring."""

    def __init__(
        self,
        settings: Settings,
        *,
        engine: AsyncEngine | None = None,
        plugins: Plugins | None = None,
        clock: Clock = system_clock,
        extra_plugins: Iterable[object] = (),
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.engine = engine or create_engine(settings.database_url, echo=bool(settings.section("database")["echo"]))
        self._owns_engine = engine is None
        keys = parse_key_ring(settings.encryption_keys)
        if DEV_KEY_ID in keys and "sqlite" not in self.engine.dialect.name:
            log.warning("the development encryption key is configured on a shared database")
        self.cipher = FieldCipher(keys)
        self.codec = InstructionCodec(self.cipher)
        self.contracts: ContractRegistry = contracts()
        self.metrics = Metrics()
        self.plugins = plugins or Plugins(extra=extra_plugins)
        self.plugins.register(self.metrics, name=f"gateway.metrics.{id(self.metrics)}")
        self._waker = _WebhookWaker(self._wake_webhooks)
        self.plugins.register(self._waker, name=f"gateway.webhooks.waker.{id(self._waker)}")
        classes = self.plugins.adapter_classes()
        self.adapters: dict[str, Adapter] = _build_adapters(classes, settings, clock)
        self.router = load_routing(settings.routing_file, installed=classes)
        self.risk = load_risk(
            settings.risk_file,
            self.plugins.risk_rule_classes(),
            fingerprint_key(settings.section("security").get("fingerprint_key"), keys),
        )
        self.screener = Screener(self.risk)
        self.ledger = load_ledger(settings, self.plugins.ledger_rules())
        bind_ledger(self.engine, self.ledger)
        self.statement_formats = self.plugins.statement_formats()
        self.owner = f"{os.uname().nodename}:{os.getpid()}:{id(self):x}"
        self.writer = IntakeWriter(self.engine, batch_max=settings.intake.batch_max, on_committed=self._on_committed)
        self.orders = Orders(self.engine, self.codec)
        self.updates = StatusUpdates(self.engine, clock, self.plugins.announce)
        self.holds = HoldDesk(
            self.engine, clock, self.orders, self.screener, self.risk, self.plugins.announce, self._wake_dispatcher
        )
        self.dispatcher: Dispatcher | None = None
        self.scheduler: Scheduler | None = None
        self.webhooks: WebhookWorker | None = None
        self.heartbeat = Heartbeat(
            self.engine,
            clock,
            self.owner,
            interval=settings.dispatch.heartbeat_seconds,
            dead_after=settings.dispatch.dead_after_seconds,
            on_beat=self._share_circuits,
        )

    async def _share_circuits(self, conn: AsyncConnection) -> None:
        await share_circuits(conn, self.router.breaker.share)

    def _on_committed(self, count: int) -> None:
        self._wake_dispatcher()
        self._wake_webhooks()

    def _wake_dispatcher(self) -> None:
        if self.dispatcher is not None:
            self.dispatcher.wake()

    @property
    def api_services(self) -> ApiServices:
        """What the API's handlers use."""
        return ApiServices(
            engine=self.engine,
            clock=self.clock,
            contracts=self.contracts,
            codec=self.codec,
            writer=self.writer,
            metrics=self.metrics,
            adapters=self.adapters,
            updates=self.updates,
            holds=self.holds,
            announce=self.plugins.announce,
            cipher=self.cipher,
            wake_webhooks=self._wake_webhooks,
            statement_formats=self.statement_formats,
        )

    def _wake_webhooks(self) -> None:
        if self.webhooks is not None:
            self.webhooks.wake()

    def new_webhook_worker(self, owner: str | None = None, settings: WebhookSettings | None = None) -> WebhookWorker:
        """The webhook delivery worker over this process's services (``owner`` names its leases)."""
        services = WebhookServices(
            engine=self.engine,
            clock=self.clock,
            cipher=self.cipher,
            contracts=self.contracts,
            metrics=self.metrics,
        )
        return WebhookWorker(services, settings or self.settings.webhooks, owner or self.owner)

    def new_dispatcher(self, owner: str | None = None) -> Dispatcher:
        """A dispatcher over this process's services (``owner`` names its leases; default: this process)."""
        services = DispatchServices(
            engine=self.engine,
            clock=self.clock,
            orders=self.orders,
            router=self.router,
            adapters=self.adapters,
            screener=self.screener,
            metrics=self.metrics,
            announce=self.plugins.announce,
            intake_busy=self.writer.under_pressure,
        )
        return Dispatcher(services, self.settings.dispatch, owner or self.owner)

    def new_scheduler(self) -> Scheduler:
        """The scheduled jobs (status poll, hold expiry, risk pruning) over this process's services."""
        services = SchedulerServices(
            engine=self.engine,
            clock=self.clock,
            orders=self.orders,
            adapters=self.adapters,
            updates=self.updates,
            holds=self.holds,
            risk=self.risk,
        )
        return Scheduler(services, self.settings.dispatch, self.settings.risk_jobs, owner=self.owner)

    async def start(self, *, dispatch: bool = True, poll: bool = True, webhooks: bool | None = None) -> None:
        """Start adapters, the intake writer and (optionally) the dispatcher, the scheduler and the webhook worker.

        ``webhooks`` defaults to ``webhooks.enabled``.
        """
        for adapter in self.adapters.values():
            await adapter.start()
        if self.risk.credit_limits:
            async with self.engine.begin() as conn:
                await sync_config_limits(conn, self.risk.credit_limits, self.clock())
        await self.writer.start()
        # before claiming anything: take over what dead processes (e.g. this one before a kill -9) held
        await self.heartbeat.start()
        self.dispatcher = self.new_dispatcher()
        if dispatch:
            await self.dispatcher.start()
        self.scheduler = self.new_scheduler()
        if poll:
            self.scheduler.start()
        self.webhooks = self.new_webhook_worker()
        if self.settings.webhooks.enabled if webhooks is None else webhooks:
            await self.webhooks.start()

    async def close(self) -> None:
        if self.webhooks is not None:
            await self.webhooks.stop()
        if self.scheduler is not None:
            await self.scheduler.stop()
        if self.dispatcher is not None:
            await self.dispatcher.stop()
        await self.heartbeat.stop()
        await self.writer.stop()
        for adapter in self.adapters.values():
            await adapter.close()
        self.plugins.unregister(self.metrics)
        self.plugins.unregister(self._waker)
        if self._owns_engine:
            await self.engine.dispose()


def create_app(
    settings: Settings, *, runtime: Runtime | None = None, dispatch: bool = True, poll: bool = True
) -> web.Application:
    """The API app over ``runtime``; without one, it opens (and closes) its own in ``cleanup_ctx``."""
    if runtime is not None:
        return build_app(settings, services=runtime.api_services)

    @contextlib.asynccontextmanager
    async def opened() -> AsyncIterator[ApiServices]:
        rt = Runtime(settings)
        await rt.start(dispatch=dispatch, poll=poll)
        try:
            yield rt.api_services
        finally:
            await rt.close()

    return build_app(settings, open_services=opened)
