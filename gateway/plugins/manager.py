"""A typed facade over pluggy's PluginManager.

Built-in adapters are found through the ``gateway.adapters`` entry-point group,
exactly as third-party packages are. ``GATEWAY_DISABLE_PLUGINS`` (comma-separated
entry-point names) blocks plugins; ``GATEWAY_TRACE_PLUGINS=1`` logs every hook call.

An installed package whose entry point fails to import is named in one line (distribution,
entry point, error): ``Plugins()`` refuses to go on (a gateway without one of its adapters
would route wrongly), ``Plugins(strict=False)`` logs a warning and goes on without it, for
commands that only list or document what is installed (docs/design-notes.md).
"""

from __future__ import annotations

import importlib
import logging
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from importlib import metadata
from typing import Any

import pluggy
from aiohttp import web

from gateway.domain.events import StatusChange
from gateway.domain.statements import StatementFormat
from gateway.errors import ConfigError
from gateway.partners.adapter import Adapter
from gateway.plugins import hookspecs
from gateway.plugins.sinks import EventSink
from gateway.risk.rules import Rule

__all__ = ["DEFAULT_PLUGINS", "ENTRY_POINT_GROUP", "BrokenPlugin", "PluginLoadError", "Plugins"]

ENTRY_POINT_GROUP = "gateway.adapters"
#: the gateway's own plugins, registered like any other (built-in adapters come through the entry points)
DEFAULT_PLUGINS = ("gateway.plugins.builtins",)
log = logging.getLogger(__name__)
#: one INFO line per applied status transition (its own name, so operators can filter on it)
transitions_log = logging.getLogger("gateway.transitions")


def _one_line(exc: BaseException) -> str:
    return " ".join(f"{type(exc).__name__}: {exc}".split())


class PluginLoadError(ConfigError):
    """An installed plugin package's entry point failed to import."""

    default_message = "a plugin package failed to import"


@dataclass(frozen=True)
class BrokenPlugin:
    """An entry point in ``gateway.adapters`` that failed to import, and why."""

    distribution: str
    entry_point: str
    value: str
    error: str

    def __str__(self) -> str:
        return (
            f"adapter package {self.distribution} (entry point {self.entry_point} = {self.value}) "
            f"failed to import: {self.error}; fix or uninstall it, "
            f"or skip it with GATEWAY_DISABLE_PLUGINS={self.entry_point}"
        )


class Plugins:
    """The gateway's plugins; the core calls hooks only through this class."""

    def __init__(self, *, load_entry_points: bool = True, extra: Iterable[object] = (), strict: bool = True) -> None:
        self.pm = pluggy.PluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)
        #: entry points that failed to import (only when ``strict=False``; otherwise the first one raises)
        self.broken: list[BrokenPlugin] = []
        if load_entry_points:
            blocked = {n.strip() for n in os.environ.get("GATEWAY_DISABLE_PLUGINS", "").split(",") if n.strip()}
            for name in blocked:
                self.pm.set_blocked(name)
            self._load_entry_points(strict)
        for module in DEFAULT_PLUGINS:
            self.pm.register(importlib.import_module(module), name=module)
        for plugin in extra:
            self.register(plugin)
        if os.environ.get("GATEWAY_TRACE_PLUGINS"):
            self.pm.trace.root.setwriter(log.debug)
            self.pm.enable_tracing()
        # A misspelt hookimpl (no matching spec) fails loudly here.
        self.pm.check_pending()

    def _load_entry_points(self, strict: bool) -> None:
        # pluggy's load_setuptools_entrypoints, except that an import error names its package
        for dist in metadata.distributions():
            for ep in dist.entry_points:
                if ep.group != ENTRY_POINT_GROUP or self.pm.is_blocked(ep.name) or self.pm.get_plugin(ep.name):
                    continue
                try:
                    plugin = ep.load()
                except Exception as exc:  # whatever a third-party import raises
                    name = dist.metadata["Name"] or "?"
                    broken = BrokenPlugin(f"{name} {dist.version}", ep.name, ep.value, _one_line(exc))
                    if strict:
                        raise PluginLoadError(str(broken)) from None
                    log.warning("%s", broken)
                    self.broken.append(broken)
                    continue
                self.pm.register(plugin, name=ep.name)

    def register(self, plugin: object, name: str | None = None) -> None:
        self.pm.register(plugin, name=name)
        self.pm.check_pending()

    def unregister(self, plugin: object) -> None:
        self.pm.unregister(plugin)

    def names(self) -> list[str]:
        return sorted(n for n, _ in self.pm.list_name_plugin() if n)

    def adapter_classes(self) -> dict[str, type[Adapter]]:
        """Every registered adapter class by name; duplicate names are an error."""
        found: dict[str, type[Adapter]] = {}
        for batch in self.pm.hook.gateway_adapter_classes():
            for cls in batch or ():
                if not (isinstance(cls, type) and issubclass(cls, Adapter)):
                    raise ConfigError(f"plugin returned {cls!r}, which is not an Adapter subclass")
                if cls.name in found and found[cls.name] is not cls:
                    raise ConfigError(f"two adapters are named {cls.name!r}")
                found[cls.name] = cls
        return dict(sorted(found.items()))

    def simulator_factories(self) -> dict[str, Callable[[Mapping[str, Any]], web.Application]]:
        """Every registered simulator app factory by name; duplicate names are an error."""
        found: dict[str, Callable[[Mapping[str, Any]], web.Application]] = {}
        for mapping in self.pm.hook.gateway_simulators():
            for name, factory in (mapping or {}).items():
                if name in found and found[name] is not factory:
                    raise ConfigError(f"two simulators are named {name!r}")
                found[name] = factory
        return dict(sorted(found.items()))

    def risk_rule_classes(self) -> list[type[Rule]]:
        """Every registered risk rule class (built-ins first); duplicate names are an error."""
        found: dict[str, type[Rule]] = {}
        for batch in reversed(self.pm.hook.gateway_risk_rules()):
            for cls in batch or ():
                if not (isinstance(cls, type) and issubclass(cls, Rule)) or not cls.name:
                    raise ConfigError(f"plugin returned {cls!r}, which is not a named risk Rule subclass")
                if cls.name in found and found[cls.name] is not cls:
                    raise ConfigError(f"two risk rules are named {cls.name!r}")
                found[cls.name] = cls
        return list(found.values())

    def statement_formats(self) -> dict[str, StatementFormat]:
        """Every statement format adapters offer, by name; two plugins offering one name is an error."""
        found: dict[str, StatementFormat] = {}
        for batch in reversed(self.pm.hook.gateway_statement_formats()):
            for fmt in batch or ():
                if not isinstance(fmt, StatementFormat):
                    raise ConfigError(f"plugin returned {fmt!r}, which is not a StatementFormat")
                if fmt.name == "csv":  # read through a column mapping (gateway.recon.csvformat), never a plugin
                    raise ConfigError("a plugin offers the statement format 'csv', which is the gateway's own")
                if fmt.name in found and found[fmt.name] is not fmt:
                    raise ConfigError(f"two plugins offer the statement format {fmt.name!r}")
                found[fmt.name] = fmt
        return dict(sorted(found.items()))

    def event_sinks(self, config: Mapping[str, Any]) -> list[EventSink]:
        """Every plugin's event sinks (``event_sinks`` section in); two sinks with one name are an error."""
        found: dict[str, EventSink] = {}
        for batch in reversed(self.pm.hook.gateway_event_sinks(config=config)):
            for sink in batch or ():
                if not isinstance(sink, EventSink):
                    raise ConfigError(f"plugin returned {sink!r}, which is not an EventSink")
                if sink.name in found:
                    raise ConfigError(f"two event sinks are named {sink.name!r}")
                found[sink.name] = sink
        return list(found.values())

    def ledger_rules(self) -> list[Mapping[str, Any]]:
        """Every plugin's ledger accounts and event rules (merged and checked by ``gateway.ledger.rules``)."""
        return [dict(found) for found in reversed(self.pm.hook.gateway_ledger_rules()) if found]

    def announce(self, changes: Iterable[StatusChange | None]) -> None:
        """Log and tell observers about committed transitions (call after commit only): the one place both happen.

        ``None`` entries (transitions that were not applied) are skipped.
        """
        for change in changes:
            if change is not None:
                transitions_log.info(
                    "instruction %s %s -> %s%s",
                    change.instruction_id,
                    change.previous.value,
                    change.current.value,
                    f" ({change.reason_code})" if change.reason_code else "",
                    extra={
                        "instruction_id": change.instruction_id,
                        "previous_status": change.previous.value,
                        "status": change.current.value,
                        "reason_code": change.reason_code,
                        "source": change.source,
                    },
                )
                self.status_changed(change)

    def status_changed(self, change: StatusChange) -> None:
        """Tell observers about a committed transition; their errors are logged, not raised."""
        try:
            self.pm.hook.gateway_status_changed(change=change)
        except Exception:
            log.exception("a gateway_status_changed hook failed for %s", change.instruction_id)
