"""The gateway runtime: the shared objects one gateway process works with.

Opened once (by ``create_app``'s cleanup context, the CLI, or a test), closed
once. Holds the engine, cipher, contracts, plugins, enabled adapters, the intake
writer, the dispatcher and the status poller.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from jsonschema import Draft202012Validator
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from gateway.adapter import Adapter, AdapterContext
from gateway.clock import Clock, system_clock
from gateway.config import Settings
from gateway.contracts import ContractRegistry, contracts
from gateway.crypto import FieldCipher, parse_key_ring
from gateway.errors import ConfigError, NotFoundError
from gateway.events import StatusChange
from gateway.ledger.journal import bind as bind_ledger
from gateway.ledger.rules import load_ledger
from gateway.metrics import Metrics
from gateway.plugins import Plugins
from gateway.risk.credit import sync_config_limits
from gateway.risk.engine import fingerprint_key, load_risk
from gateway.risk.screening import Screener
from gateway.routing import load_routing
from gateway.store.codec import InstructionCodec
from gateway.store.db import create_engine
from gateway.store.intake import IntakeWriter
from gateway.store.tables import business_units, instructions

if TYPE_CHECKING:
    from gateway.adapter import PaymentOrder
    from gateway.dispatch import Dispatcher
    from gateway.poller import StatusPoller

__all__ = ["DEV_KEY_ID", "Runtime", "fetch_orders"]

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


async def fetch_orders(
    conn: AsyncConnection, codec: InstructionCodec, instruction_ids: Sequence[str]
) -> dict[str, tuple[dict[str, Any], PaymentOrder]]:
    """``Runtime.load_orders`` on a given connection (one query, rows decrypted into orders)."""
    rows = (
        (
            await conn.execute(
                select(instructions, business_units.c.name.label("business_unit_name"))
                .join(business_units, business_units.c.id == instructions.c.business_unit_id)
                .where(instructions.c.id.in_(list(instruction_ids)))
            )
        )
        .mappings()
        .all()
    )
    return {row["id"]: (dict(row), codec.payment_order(row, row["business_unit_name"])) for row in rows}


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
        self.engine = engine or create_engine(
            settings.database_url, echo=bool(settings.section("database").get("echo"))
        )
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
        self.owner = f"{os.uname().nodename}:{os.getpid()}:{id(self):x}"
        self.writer = IntakeWriter(
            self.engine,
            batch_max=int(settings.section("intake").get("batch_max", 256)),
            on_committed=self._on_intake_committed,
        )
        self.dispatcher: Dispatcher | None = None
        self.poller: StatusPoller | None = None

    def _on_intake_committed(self, count: int) -> None:
        if self.dispatcher is not None:
            self.dispatcher.wake()

    async def start(self, *, dispatch: bool = True, poll: bool = True) -> None:
        """Start adapters, the intake writer and (optionally) dispatcher and poller."""
        from gateway.dispatch import Dispatcher
        from gateway.poller import StatusPoller

        for adapter in self.adapters.values():
            await adapter.start()
        if self.risk.credit_limits:
            async with self.engine.begin() as conn:
                await sync_config_limits(conn, self.risk.credit_limits, self.clock())
        await self.writer.start()
        self.dispatcher = Dispatcher(self)
        if dispatch:
            await self.dispatcher.start()
        self.poller = StatusPoller(self)
        if poll:
            self.poller.start()

    async def close(self) -> None:
        if self.poller is not None:
            await self.poller.stop()
        if self.dispatcher is not None:
            await self.dispatcher.stop()
        await self.writer.stop()
        for adapter in self.adapters.values():
            await adapter.close()
        self.plugins.unregister(self.metrics)
        if self._owns_engine:
            await self.engine.dispose()

    def announce(self, changes: Iterable[StatusChange | None]) -> None:
        """Tell plugins about committed transitions (call after commit only)."""
        for change in changes:
            if change is not None:
                self.plugins.status_changed(change)

    def adapter(self, name: str) -> Adapter:
        try:
            return self.adapters[name]
        except KeyError:
            from gateway.errors import UnknownAdapterError

            raise UnknownAdapterError(f"no enabled adapter named {name!r}") from None

    async def load_orders(self, instruction_ids: Sequence[str]) -> dict[str, tuple[dict[str, Any], PaymentOrder]]:
        """Rows and decrypted ``PaymentOrder``s for the ids that exist, in one query."""
        if not instruction_ids:
            return {}
        async with self.engine.connect() as conn:
            return await fetch_orders(conn, self.codec, instruction_ids)

    async def load_order(self, instruction_id: str) -> tuple[dict[str, Any], PaymentOrder]:
        """The instruction row and its decrypted ``PaymentOrder``."""
        found = await self.load_orders([instruction_id])
        if instruction_id not in found:
            raise NotFoundError(f"instruction {instruction_id} not found")
        return found[instruction_id]
