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
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from pathlib import Path

from aiohttp import web
from jsonschema import Draft202012Validator
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from gateway.api.app import build_app
from gateway.api.appkeys import ApiServices
from gateway.config import Settings, WebhookSettings, schema_defaults
from gateway.console.app import mount as mount_console
from gateway.contracts.registry import ContractRegistry, contracts
from gateway.dispatch.collections import CollectionDispatcher, CollectionServices, CollectionUpdates
from gateway.dispatch.dispatcher import Dispatcher, DispatchServices
from gateway.dispatch.routing import load_routing
from gateway.dispatch.scheduler import Job, Scheduler, SchedulerServices
from gateway.dispatch.shadow import ShadowRunner
from gateway.dispatch.updates import StatusUpdates
from gateway.domain.clock import Clock, system_clock
from gateway.domain.events import StatusChange
from gateway.errors import ConfigError
from gateway.finance.offload import export_in_child
from gateway.finance.stream import EventRelay
from gateway.intake.files import FileDesk
from gateway.intake.jobs import FileJobs
from gateway.ledger.rules import load_ledger
from gateway.metrics import Metrics
from gateway.partners.adapter import Adapter, AdapterContext
from gateway.plugins.hookspecs import hookimpl
from gateway.plugins.manager import Plugins
from gateway.recon.csvformat import mappings_by_name
from gateway.recon.fetch import StatementFetcher, StatementInbox
from gateway.recon.realtime import RealtimeRecon
from gateway.recon.rules import load_recon_rules
from gateway.reports.folder import ReportFolder
from gateway.reports.model import Context as ReportContext
from gateway.reports.schedule import ReportScheduler, load_schedules
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
from gateway.store.rebates import bind_programs, load_programs
from gateway.webhooks.worker import WebhookServices, WebhookWorker

__all__ = ["DEV_KEY_ID", "Runtime", "build_adapters", "create_app"]

log = logging.getLogger(__name__)
DEV_KEY_ID = "dev"


def build_adapters(classes: dict[str, type[Adapter]], settings: Settings, clock: Clock) -> dict[str, Adapter]:
    """The configured adapters (``partners.<name>``), each checked against its settings schema; not started."""
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


def _build_sandboxes(
    classes: dict[str, type[Adapter]], settings: Settings, adapters: dict[str, Adapter], clock: Clock
) -> dict[str, Adapter]:
    """The shadow sandboxes (``rollout.shadow_sandboxes``): a second instance of a partner's adapter, never live.

    Refused at start-up (``ConfigError``) when the partner is not enabled, when the sandbox's
    settings break the adapter's schema, or when its ``base_url`` or any ``*_dir`` setting is
    the live adapter's (a shared spool would let the live cut-off send shadow payments).
    """
    partners = settings.section("partners")
    built: dict[str, Adapter] = {}
    for name, block in (settings.section("rollout").get("shadow_sandboxes") or {}).items():
        where = f"rollout.shadow_sandboxes.{name}"
        if name not in adapters:
            raise ConfigError(f"{where}: {name} is not an enabled adapter (configure partners.{name} first)")
        cls = classes[name]
        errors = sorted(
            Draft202012Validator(dict(cls.settings_schema)).iter_errors(dict(block)),
            key=lambda e: list(e.absolute_path),
        )
        if errors:
            raise ConfigError(".".join([where, *(str(p) for p in errors[0].absolute_path)]) + f": {errors[0].message}")
        defaults = schema_defaults(cls.settings_schema)
        live = {**defaults, **dict(partners[name] or {})}
        sandbox = {**defaults, **dict(block)}
        for key in sorted(k for k in sandbox if k == "base_url" or k.endswith("_dir")):
            if sandbox.get(key) == live.get(key):
                raise ConfigError(
                    f"{where}.{key}: the same as partners.{name}.{key}: a sandbox must not be the live one"
                )
        context = AdapterContext(callback_url=f"{settings.public_url}/v1/partners/{name}/callbacks", clock=clock)
        built[name] = cls.from_settings(dict(block), context)
    return built


class _WebhookWaker:
    """A plugin that wakes the webhook worker after each committed status change (its deliveries are due)."""

    def __init__(self, wake: Callable[[], None]) -> None:
        self._wake = wake

    @hookimpl
    def gateway_status_changed(self, change: StatusChange) -> None:
        self._wake()


class _FileReportWaker:
    """A plugin that asks for a round of file status reports soon after status changes (debounced by the jobs)."""

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
        wake_elsewhere: Callable[[], None] | None = None,
    ) -> None:
        self.settings = settings
        #: also wakes a dispatcher in another process (``gateway serve --dispatch-process``) when jobs are queued here
        self.wake_elsewhere = wake_elsewhere
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
        self.adapters: dict[str, Adapter] = build_adapters(classes, settings, clock)
        rollout = settings.section("rollout")
        handoff = rollout.get("handoff_adapter")
        self.router = load_routing(settings.routing_file, installed=classes, handoff=handoff)
        if handoff is not None and handoff not in self.adapters:
            raise ConfigError(f"rollout.handoff_adapter: {handoff} is not enabled (configure partners.{handoff})")
        self.sandboxes = _build_sandboxes(classes, settings, self.adapters, clock)
        self.shadow = ShadowRunner(self.adapters, self.sandboxes, clock)
        self.risk = load_risk(
            settings.risk_file,
            self.plugins.risk_rule_classes(),
            fingerprint_key(settings.section("security").get("fingerprint_key"), keys),
        )
        self.screener = Screener(self.risk)
        self.ledger = load_ledger(settings, self.plugins.ledger_rules())
        bind_ledger(self.engine, self.ledger)
        self.rebate_programs = load_programs(settings.rebates_file)
        bind_programs(self.engine, self.rebate_programs)
        self.statement_formats = self.plugins.statement_formats()
        self.statement_fetcher = StatementFetcher(
            self.engine, clock, self.adapters, self.statement_formats, days=settings.reconciliation.fetch_days
        )
        inbox = settings.reconciliation.inbox_dir
        self.statement_inbox = (
            StatementInbox(self.engine, clock, self.statement_formats, Path(inbox)) if inbox else None
        )
        self.csv_mappings = mappings_by_name(settings.csv_mapping_files)  # checked at start: one line naming the key
        self.recon_rules = load_recon_rules(settings)
        self.realtime_recon: RealtimeRecon | None = None
        if settings.reconciliation.realtime:
            self.realtime_recon = RealtimeRecon(self.engine, self.recon_rules, clock)
            self.plugins.register(self.realtime_recon, name=f"gateway.recon.realtime.{id(self):x}")
        self.owner = f"{os.uname().nodename}:{os.getpid()}:{id(self):x}"
        self.writer = IntakeWriter(self.engine, batch_max=settings.intake.batch_max, on_committed=self._on_committed)
        self.orders = Orders(self.engine, self.codec)
        self.updates = StatusUpdates(self.engine, clock, self.plugins.announce)
        self.holds = HoldDesk(
            self.engine, clock, self.orders, self.screener, self.risk, self.plugins.announce, self._wake_dispatcher
        )
        self.collection_services = CollectionServices(
            engine=self.engine,
            clock=clock,
            cipher=self.cipher,
            adapters=self.adapters,
            wake_webhooks=self._wake_webhooks,
        )
        self.collection_updates = CollectionUpdates(self.collection_services)
        self.collection_dispatcher: CollectionDispatcher | None = None
        self.files = FileDesk(self.engine, clock, self.contracts, self.codec, self.writer, settings.files)
        self.file_jobs: FileJobs | None = None
        self._file_waker = _FileReportWaker(self._wake_file_reports)
        self.plugins.register(self._file_waker, name=f"gateway.files.waker.{id(self._file_waker)}")
        self.dispatcher: Dispatcher | None = None
        self.scheduler: Scheduler | None = None
        self.webhooks: WebhookWorker | None = None
        self.report_schedules = load_schedules(settings.reports_file)  # checked at start: one line naming the key
        self.report_folder = ReportFolder(settings.reports_folder)
        self.report_context = ReportContext(settings.reconciliation, self.rebate_programs)
        self.reports: ReportScheduler | None = None
        self.relay: EventRelay | None = None
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
        if self.wake_elsewhere is not None:
            self.wake_elsewhere()

    def wake_dispatchers(self) -> None:
        """New jobs may be due: wake the dispatcher and the collection dispatcher (e.g. told by another process)."""
        if self.dispatcher is not None:
            self.dispatcher.wake()
        if self.collection_dispatcher is not None:
            self.collection_dispatcher.wake()

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
            csv_mappings=self.csv_mappings,
            collection_updates=self.collection_updates,
            wake_collections=self._wake_collections,
            files=self.files,
            recon_rules=self.recon_rules,
            partner_health=self.router.breaker.snapshot,
            rebate_programs=self.rebate_programs,
        )

    def _wake_collections(self) -> None:
        if self.collection_dispatcher is not None:
            self.collection_dispatcher.wake()
        if self.wake_elsewhere is not None:
            self.wake_elsewhere()

    def new_collection_dispatcher(self, owner: str | None = None) -> CollectionDispatcher:
        """The collection dispatcher over this process's services (``owner`` names its leases)."""
        return CollectionDispatcher(self.collection_services, self.settings.dispatch, owner or self.owner)

    def _wake_file_reports(self) -> None:
        if self.file_jobs is not None:
            self.file_jobs.wake()

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
            shadow=self.shadow,
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
        return Scheduler(
            services,
            self.settings.dispatch,
            self.settings.risk_jobs,
            self.settings.credit_lines,
            self._scheduled_jobs(),
            owner=self.owner,
        )

    def new_report_scheduler(self) -> ReportScheduler:
        """Scheduled reports (``reports.file``) and the operational anomaly check (``anomaly.*``)."""
        return ReportScheduler(
            self.engine,
            self.clock,
            self.report_schedules,
            self.report_folder,
            self.report_context,
            self.settings.anomaly,
        )

    def _scheduled_jobs(self) -> list[Job]:
        """The data-lake export (``export.scheduled``), the statement fetch (``reconciliation.fetch_seconds``)
        and the event relay (``event_sinks.enabled``), if on."""
        jobs = []
        export = self.settings.export
        if export.scheduled:

            async def run_export() -> int:
                return await export_in_child(self.engine, self.settings)  # Arrow stays out of this process

            jobs.append(Job("data-export", run_export, export.interval_seconds))
        recon = self.settings.reconciliation
        if recon.fetch_seconds > 0 and self.statement_fetcher.sources():
            jobs.append(Job("statement-fetch", self.statement_fetcher.run, recon.fetch_seconds))
        if self.statement_inbox is not None:
            jobs.append(Job("statement-inbox", self.statement_inbox.run, recon.inbox_scan_seconds))
        sinks = self.settings.event_sinks
        if sinks.enabled:
            found = self.plugins.event_sinks(self.settings.section("event_sinks"))
            if not found:
                raise ConfigError("event_sinks.enabled is true but no sink is configured (set event_sinks.nats_url)")
            self.relay = EventRelay(self.engine, found, self.clock, batch=sinks.batch)
            jobs.append(Job("event-sinks", self.relay.publish_due, sinks.interval_seconds))
        return jobs

    async def start(self, *, dispatch: bool = True, poll: bool = True, webhooks: bool | None = None) -> None:
        """Start adapters, the intake writer and (optionally) the dispatcher, the scheduler and the webhook worker.

        ``webhooks`` defaults to ``webhooks.enabled``.
        """
        for adapter in [*self.adapters.values(), *self.sandboxes.values()]:
            await adapter.start()
        if self.risk.credit_limits:
            async with self.engine.begin() as conn:
                await sync_config_limits(conn, self.risk.credit_limits, self.clock())
        await self.writer.start()
        # before claiming anything: take over what dead processes (e.g. this one before a kill -9) held
        await self.heartbeat.start()
        self.dispatcher = self.new_dispatcher()
        self.collection_dispatcher = self.new_collection_dispatcher()
        if dispatch:
            await self.dispatcher.start()
            await self.collection_dispatcher.start()
        self.scheduler = self.new_scheduler()
        self.reports = self.new_report_scheduler()
        if poll:
            self.scheduler.start()
            self.reports.start()
        if poll and self.settings.files.enabled:
            self.file_jobs = FileJobs(self.files, self.settings.files)
            self.file_jobs.start()
        self.webhooks = self.new_webhook_worker()
        if self.settings.webhooks.enabled if webhooks is None else webhooks:
            await self.webhooks.start()

    async def close(self) -> None:
        if self.webhooks is not None:
            await self.webhooks.stop()
        if self.file_jobs is not None:
            await self.file_jobs.stop()
        if self.scheduler is not None:
            await self.scheduler.stop()
        if self.collection_dispatcher is not None:
            await self.collection_dispatcher.stop()
        if self.reports is not None:
            await self.reports.stop()
        if self.relay is not None:
            await self.relay.close()
        if self.dispatcher is not None:
            await self.dispatcher.stop()
        await self.heartbeat.stop()
        await self.writer.stop()
        for adapter in [*self.adapters.values(), *self.sandboxes.values()]:
            await adapter.close()
        self.plugins.unregister(self.metrics)
        self.plugins.unregister(self._waker)
        self.plugins.unregister(self._file_waker)
        if self.realtime_recon is not None:
            self.plugins.unregister(self.realtime_recon)
            await self.realtime_recon.close()
        if self._owns_engine:
            await self.engine.dispose()


def create_app(
    settings: Settings,
    *,
    runtime: Runtime | None = None,
    dispatch: bool = True,
    poll: bool = True,
    simulators: Mapping[str, str] | None = None,
    wake_elsewhere: Callable[[], None] | None = None,
) -> web.Application:
    """The API app over ``runtime``; without one, it opens (and closes) its own in ``cleanup_ctx``.

    ``simulators``: the partner simulators this process started, name → base URL (development:
    the console's QA page drives them). ``wake_elsewhere``: tells a dispatcher in another process
    that jobs were queued here (``gateway serve --dispatch-process``).
    """
    if runtime is not None:
        app = build_app(settings, services=runtime.api_services, simulators=simulators)
        mount_console(app)
        return app

    @contextlib.asynccontextmanager
    async def opened() -> AsyncIterator[ApiServices]:
        rt = Runtime(settings, wake_elsewhere=wake_elsewhere)
        await rt.start(dispatch=dispatch, poll=poll)
        try:
            yield rt.api_services
        finally:
            await rt.close()

    app = build_app(settings, open_services=opened, simulators=simulators)
    mount_console(app)
    return app
