"""A typed facade over pluggy's PluginManager.

Built-in adapters are found through the ``gateway.adapters`` entry-point group,
exactly as third-party packages are. ``GATEWAY_DISABLE_PLUGINS`` (comma-separated
entry-point names) blocks plugins; ``GATEWAY_TRACE_PLUGINS=1`` logs every hook call.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import pluggy
from aiohttp import web

from gateway import hookspecs
from gateway.adapter import Adapter
from gateway.errors import ConfigError
from gateway.events import StatusChange
from gateway.risk.rules import Rule

__all__ = ["ENTRY_POINT_GROUP", "Plugins"]

ENTRY_POINT_GROUP = "gateway.adapters"
log = logging.getLogger(__name__)


class Plugins:
    """The gateway's plugins; the core calls hooks only through this class."""

    def __init__(self, *, load_entry_points: bool = True, extra: Iterable[object] = ()) -> None:
        self.pm = pluggy.PluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)
        if load_entry_points:
            blocked = {n.strip() for n in os.environ.get("GATEWAY_DISABLE_PLUGINS", "").split(",") if n.strip()}
            for name in blocked:
                self.pm.set_blocked(name)
            self.pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
        from gateway.risk import rules as builtin_rules

        self.pm.register(builtin_rules, name="gateway.risk.builtin")
        for plugin in extra:
            self.register(plugin)
        if os.environ.get("GATEWAY_TRACE_PLUGINS"):
            self.pm.trace.root.setwriter(log.debug)
            self.pm.enable_tracing()
        # A misspelt hookimpl (no matching spec) fails loudly here.
        self.pm.check_pending()

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

    def ledger_rules(self) -> list[Mapping[str, Any]]:
        """Every plugin's ledger accounts and event rules (merged and checked by ``gateway.ledger.rules``)."""
        return [dict(found) for found in reversed(self.pm.hook.gateway_ledger_rules()) if found]

    def status_changed(self, change: StatusChange) -> None:
        """Tell observers about a committed transition; their errors are logged, not raised."""
        try:
            self.pm.hook.gateway_status_changed(change=change)
        except Exception:
            log.exception("a gateway_status_changed hook failed for %s", change.instruction_id)
