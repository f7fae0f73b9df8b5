"""pytest fixtures for testing against partner simulators (``pytest_plugins = ["gateway_simulators.pytest_plugin"]``).

- ``sim_probe`` — a factory: ``sim_probe(app)`` wraps a running simulator (an
  aiohttp app, a ``RunningApp`` or a test client) in a ``SimulatorProbe`` that
  reads its journal and asserts on it: ``probe.assert_submitted_once(id)``,
  ``probe.assert_callbacks_delivered()``, ``probe.assert_fault_injected(kind)``.
- ``scenario_file`` — a factory writing scenario YAML to a temporary file
  (``scenario_file(text) -> Path``), for ``settings["scenario"]`` or the CLI.
- ``partner_simulator`` — a factory starting any installed simulator by name on
  loopback (``await partner_simulator("ach_nacha", scenario="ach-file-chaos", seed=3)``)
  and returning its probe (``probe.url``, ``probe.journal()``); stopped after the test.
- ``simulator`` — the same for one simulator named by the test's marker::

      @pytest.mark.simulator("card_acquirer", scenario="card-webhook-chaos", seed=7)
      async def test_my_flow(simulator):
          ...  # point your system at simulator.url, then assert on simulator.journal(...)

The probe reads any simulator whose engine keeps a journal: those built on
``gateway_simulators.core`` and the ACH file drop alike.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from gateway_simulators.core import SIMULATOR, JournalEntry, Simulator

__all__ = ["SimulatorProbe", "pytest_configure"]

#: marks a test that wants the ``simulator`` fixture: ``@pytest.mark.simulator(name, **settings)``
MARKER = "simulator(name, **settings): the simulator the `simulator` fixture starts (settings: scenario, seed, …)"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", MARKER)


def _engine(app: web.Application) -> Any:
    """The simulator's engine: the core's ``Simulator``, else any app value with a journal (the ACH file drop)."""
    if SIMULATOR in app:
        return app[SIMULATOR]
    for key in app:
        if callable(getattr(getattr(app[key], "journal", None), "select", None)):
            return app[key]
    raise TypeError("not a simulator app: no engine with a journal in it")


class SimulatorProbe:
    """Read and assert on one simulator's journal (in-process)."""

    def __init__(self, simulator: Any, url: str | None = None) -> None:
        #: the engine (``gateway_simulators.core.Simulator``, or another simulator's state with a ``journal``)
        self.simulator = simulator
        #: where it listens, when started by ``partner_simulator`` or the ``simulator`` fixture
        self.url = url

    @classmethod
    def of(cls, target: Any) -> SimulatorProbe:
        """From an app, a ``gateway.serving.RunningApp``, a test client/server, or a ``Simulator``."""
        if isinstance(target, Simulator):
            return cls(target)
        app = target
        url = None
        if hasattr(target, "runner"):  # RunningApp
            app, url = target.runner.app, target.url
        elif hasattr(target, "app") and not isinstance(target, web.Application):  # TestClient / TestServer
            app = target.app
        return cls(_engine(app), url)

    @property
    def scenario(self) -> str | None:
        """The name of the scenario the simulator plays."""
        scenario = getattr(self.simulator, "scenario", None)
        return scenario.name if scenario is not None else None

    def journal(self, **filters: str) -> list[JournalEntry]:
        """Entries matching ``filters`` (as ``GET /_sim/journal``)."""
        return self.simulator.journal.select(filters)

    async def idle(self) -> None:
        """Wait until every scheduled step and callback is done."""
        idle = getattr(self.simulator, "idle", None)
        if idle is not None:
            await idle()

    def payments_created(self, instruction_id: str) -> int:
        """How many payments the partner booked for ``instruction_id`` (idempotent replays not counted, nor a
        bulk message that found it held already)."""
        created = self.journal(kind="submit", instruction_id=instruction_id, outcome="created")
        return sum(1 for e in created if instruction_id not in e.held_instruction_ids)

    def submissions(self, instruction_id: str) -> int:
        """How many times the instruction was sent (retries included)."""
        return len(self.journal(kind="submit", instruction_id=instruction_id))

    def assert_submitted_once(self, instruction_id: str) -> None:
        """Exactly one payment booked at the partner for ``instruction_id``."""
        created = self.payments_created(instruction_id)
        assert created == 1, f"{instruction_id}: {created} payments booked at the partner, expected exactly one"

    def assert_no_double_submission(self) -> None:
        """No instruction id and no business reference was booked twice."""
        created = self.journal(kind="submit", outcome="created")
        # every payment of a bulk message, but not one the partner held already (answered, not booked again)
        by_id = Counter(
            i for e in created for i in e.instruction_ids or [e.instruction_id] if i not in e.held_instruction_ids
        )
        by_ref = Counter(e.end_to_end_id for e in created if e.instruction_id not in e.held_instruction_ids)
        # a file partner knows entries by trace number and reference, not by the gateway's instruction id
        twice = sorted({k for k, n in (by_id + by_ref).items() if k and n > 1})
        assert not twice, f"booked more than once: {twice}"

    def assert_callbacks_delivered(self, instruction_ids: Iterable[str] | None = None) -> None:
        """Every callback the partner meant to send (not dropped or forged by a fault) was delivered."""
        wanted = set(instruction_ids) if instruction_ids is not None else None
        if not isinstance(self.simulator, Simulator):  # a file partner: its callbacks are return files
            failed = [e.message_id for e in self.journal(kind="callback") if e.outcome != "delivered"]
            assert not failed, f"return files not delivered: {failed}"
            return
        undelivered = [
            (p.tx.key, c.status)
            for p in self.simulator.payments.values()
            if wanted is None or p.tx.key in wanted
            for c in p.callbacks
            if not c.delivered
        ]
        assert not undelivered, f"callbacks not delivered: {undelivered}"

    def faults_injected(self) -> Counter[str]:
        """How many journal entries each fault kind marked."""
        return Counter(kind for e in self.simulator.journal.entries for kind in e.faults)

    def assert_fault_injected(self, *kinds: str) -> None:
        seen = self.faults_injected()
        missing = [k for k in kinds if not seen[k]]
        assert not missing, f"faults never injected: {missing} (seen: {dict(seen)})"


@pytest.fixture
def sim_probe() -> Callable[[Any], SimulatorProbe]:
    """Factory: ``sim_probe(app_or_running_app)`` → ``SimulatorProbe``."""
    return SimulatorProbe.of


@pytest.fixture
def scenario_file(tmp_path: Path) -> Callable[..., Path]:
    """Factory: write scenario YAML text to a temporary file and return its path."""
    counter = iter(range(1_000_000))

    def write(text: str, name: str | None = None) -> Path:
        path = tmp_path / (name or f"scenario-{next(counter)}.yaml")
        path.write_text(text, encoding="utf-8")
        return path

    return write


@pytest.fixture
async def partner_simulator() -> AsyncIterator[Callable[..., Awaitable[SimulatorProbe]]]:
    """Factory: start a simulator by name on a loopback port; its probe has ``url``. Stopped afterwards."""
    from gateway.api.server import RunningApp, bind, start_app
    from gateway.config import load_settings
    from gateway.plugins.manager import Plugins

    running: list[RunningApp] = []

    async def start(name: str = "iso20022_bank", **settings: Any) -> SimulatorProbe:
        factories = Plugins().simulator_factories()
        if name not in factories:
            raise pytest.UsageError(f"no simulator named {name!r} is installed ({', '.join(factories) or 'none'})")
        base = dict(load_settings(env={}).section("simulators").get(name, {}))
        cfg = {k: v for k, v in {**base, **settings}.items() if k not in ("host", "port")}
        app = await start_app(factories[name](cfg), bind("127.0.0.1", 0))
        running.append(app)
        return SimulatorProbe.of(app)

    yield start
    for app in running:
        await app.stop()


@pytest.fixture
async def simulator(
    request: pytest.FixtureRequest, partner_simulator: Callable[..., Awaitable[SimulatorProbe]]
) -> SimulatorProbe:
    """The simulator the test's ``@pytest.mark.simulator(name, scenario=..., seed=...)`` names, started on
    loopback with the gateway's configured secrets; its probe (``url``, ``journal()``). Stopped afterwards."""
    marker = request.node.get_closest_marker("simulator")
    if marker is None or not marker.args:
        raise pytest.UsageError("the simulator fixture needs @pytest.mark.simulator(NAME, scenario=..., seed=...)")
    return await partner_simulator(marker.args[0], **marker.kwargs)
