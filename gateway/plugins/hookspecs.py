"""Hook specifications: every way a plugin can extend the gateway.

Grouped by lifecycle phase. Each hook's docstring says when it is called,
what it may return, and how the answers of several plugins combine. Every hook
here must be documented in ``docs/hooks.md`` (a test enforces it).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from gateway.plugins.markers import PROJECT, hookimpl, hookspec

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from typing import Any

    from aiohttp import web

    from gateway.domain.events import StatusChange
    from gateway.domain.statements import StatementFormat
    from gateway.partners.adapter import Adapter
    from gateway.plugins.sinks import EventSink
    from gateway.risk.rules import Rule

__all__ = [
    "PROJECT",
    "gateway_adapter_classes",
    "gateway_event_sinks",
    "gateway_ledger_rules",
    "gateway_risk_rules",
    "gateway_simulators",
    "gateway_statement_formats",
    "gateway_status_changed",
    "hookimpl",
    "hookspec",
]


# -- registration (start-up) ----------------------------------------------------


@hookspec
def gateway_adapter_classes() -> Sequence[type[Adapter]]:
    """Return the ``Adapter`` subclasses this plugin provides.

    Called once at start-up, after plugins are loaded. Every plugin's answer is
    collected and the lists are concatenated; two adapters with the same
    ``name`` are a start-up error. Return an empty list to contribute none.
    """


@hookspec
def gateway_simulators() -> Mapping[str, Callable[[Mapping[str, Any]], web.Application]]:
    """Return partner simulators this plugin ships: name → app factory.

    Called by ``gateway simulate NAME``, ``gateway demo`` and the test kit. The
    factory takes the simulator's settings mapping and returns an aiohttp
    application. Every plugin's mapping is merged; a duplicate name is an error.
    By convention a simulator has the name of the adapter it imitates.
    """


@hookspec
def gateway_risk_rules() -> Sequence[type[Rule]]:
    """Return the risk rule classes (``gateway.risk.rules.Rule`` subclasses) this plugin provides.

    Called once at start-up, before ``config/risk.yaml`` is checked: each rule's
    ``options_schema`` becomes part of that file's schema, so a rule is usable by
    its ``name`` under ``rules:``. Every plugin's answer is concatenated (the
    built-in rules come through this hook too); two rules with the same name are
    a start-up error.
    """


@hookspec
def gateway_ledger_rules() -> Mapping[str, Any]:
    """Return ledger accounts and posting rules for event kinds this plugin introduces.

    Called once at start-up, when ``config/ledger.yaml`` is loaded. The mapping
    has the shape of that file's ``accounts`` and ``events`` sections
    (``{"accounts": {pattern: type}, "events": {kind: {"amounts": [...],
    "legs": [...]}}}``). Every plugin's answer is merged with the file's; an
    event kind defined twice, or an account pattern given two types, is a
    start-up error, and so is a rule whose debits and credits could differ.
    Return an empty mapping to contribute none.
    """


@hookspec
def gateway_statement_formats() -> Sequence[StatementFormat]:
    """Return the statement formats this plugin reads (``gateway.domain.statements.StatementFormat``).

    Called when statements are imported (``POST /v1/statements``, ``gateway recon
    import``, the scheduled fetch and the statement inbox). Each format has a
    ``name`` (``camt.053``, ``mt940``, ``nacha``), the
    ``source`` (adapter) whose statements it carries, ``sniff(head)`` to recognise
    a file for ``--format auto`` and ``read(body)`` returning its statements.
    Every plugin's list is concatenated; two plugins offering the same name is an
    error. Return an empty list to offer none. Files the gateway fetches itself
    (``Adapter.fetch_statements``, the ``statement-fetch`` job) and files dropped in
    the statement inbox are read with these formats too.
    """


# -- instruction lifecycle (runtime) --------------------------------------------


@hookspec
def gateway_status_changed(change: StatusChange) -> None:
    """Observe a status transition after it has been committed.

    Called once per applied transition (never for ignored ones), after the
    transaction that recorded it has committed, in the process that made it.
    Every plugin is called; return values are ignored. Must not block: hand
    slow work to a task. An exception is logged and does not undo the change.
    """


# -- publishing beyond the gateway (start-up of the event relay) ------------------


@hookspec
def gateway_event_sinks(config: Mapping[str, Any]) -> Sequence[EventSink] | None:
    """Offer sinks that status-change events are published to (``event_sinks.enabled``).

    Called once when the event relay starts, with the ``event_sinks`` section
    of the configuration. Return sink objects (``gateway.plugins.sinks.EventSink``:
    ``name``, ``open``, ``publish``, ``close``), or None to offer none. Every
    plugin's sinks are used; two sinks with one ``name`` are an error. Each sink
    has its own cursor over the event history, moved only after ``publish``
    returns: events arrive in commit order, at least once, each with a
    ``dedup_id`` that is the same on every delivery (docs/data-export.md).
    """
