"""Prometheus metrics (prometheus-client), one registry per gateway runtime.

A gateway of several processes (``gateway serve --workers N``, ``--dispatch-process``) keeps
its metrics in prometheus-client's multiprocess mode: each process writes its values to files
in one directory (``PROMETHEUS_MULTIPROC_DIR``, made by ``gateway serve`` and inherited by the
processes it starts), and whichever process answers ``/metrics`` renders the sum of them all,
those of a process that ended included (a counter never goes back when a worker is replaced).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, multiprocess, values

from gateway.domain.events import StatusChange
from gateway.plugins.hookspecs import hookimpl
from gateway.store.processes import pid_exists

__all__ = ["SHARED_DIR_ENV", "Metrics", "new_shared_directory", "share_with_children", "shared_directory"]

#: prometheus-client's variable: the directory the processes of one gateway keep their metrics in
SHARED_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"


def shared_directory() -> str | None:
    """The directory this process keeps its metrics in with others' (``None``: its metrics are its own)."""
    return os.environ.get(SHARED_DIR_ENV) or None


#: the directories ``new_shared_directory`` makes: ``gateway-metrics-<pid of the gateway>-<random>``
_DIR_PREFIX = "gateway-metrics-"


def new_shared_directory() -> Path:
    """A fresh directory for the metrics of this process and its children, in the temporary directory.

    A gateway stopped by SIGKILL cannot remove its own: each new one removes those of the
    gateways that are no longer running (the pid in the name), so they do not pile up.
    """
    base = Path(tempfile.gettempdir())
    for old in base.glob(f"{_DIR_PREFIX}*-*"):
        pid = old.name.removeprefix(_DIR_PREFIX).split("-", 1)[0]
        if pid.isdigit() and not pid_exists(int(pid)):
            shutil.rmtree(old, ignore_errors=True)
    return Path(tempfile.mkdtemp(prefix=f"{_DIR_PREFIX}{os.getpid()}-", dir=base))


def share_with_children() -> Path | None:
    """Keep the metrics made from now on in a fresh directory, with those of the processes started from now on.

    The directory made (``new_shared_directory``; the caller removes it when the processes are done), or
    ``None`` when the metrics are shared already (``PROMETHEUS_MULTIPROC_DIR`` set by whoever started this
    process: that directory is theirs). The children inherit the variable, and prometheus-client reads it
    when they import it; this process, which imported it already, switches its value class for the metrics
    it makes next (call it before the runtime's ``Metrics``).
    """
    if shared_directory() is not None:
        return None
    directory = new_shared_directory()
    os.environ[SHARED_DIR_ENV] = str(directory)
    values.ValueClass = values.MultiProcessValue()
    return directory


class Metrics:
    """The gateway's metrics; also a plugin that counts committed status changes."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.http_requests = Counter(
            "gateway_http_requests", "HTTP requests served", ["method", "route", "status"], registry=r
        )
        self.http_latency = Histogram(
            "gateway_http_request_seconds",
            "HTTP request latency",
            ["route"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=r,
        )
        self.intake = Counter("gateway_intake", "Instruction intake outcomes", ["outcome"], registry=r)
        self.transitions = Counter("gateway_status_transitions", "Applied status transitions", ["status"], registry=r)
        self.dispatch = Counter(
            "gateway_dispatch_attempts", "Partner submit attempts", ["adapter", "result"], registry=r
        )
        self.callbacks = Counter(
            "gateway_partner_callbacks", "Partner callbacks received", ["adapter", "result"], registry=r
        )
        self.risk = Counter("gateway_risk_screened", "Risk screening outcomes", ["outcome"], registry=r)
        self.webhook_deliveries = Counter(
            "gateway_webhook_deliveries", "Webhook delivery attempts by outcome", ["outcome"], registry=r
        )
        self.webhook_endpoints_disabled = Counter(
            "gateway_webhook_endpoints_disabled", "Webhook endpoints disabled after failing in a row", registry=r
        )
        # set from the database by whichever process answers /metrics: with several, the latest reading counts
        self.outbox_depth = Gauge(
            "gateway_outbox_depth", "Jobs waiting in the outbox", registry=r, multiprocess_mode="mostrecent"
        )

    @hookimpl
    def gateway_status_changed(self, change: StatusChange) -> None:
        self.transitions.labels(change.current.value).inc()

    def render(self) -> bytes:
        """The text exposition: this process's metrics, or every process's summed (``shared_directory``)."""
        directory = shared_directory()
        if directory is None:
            return generate_latest(self.registry)
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=directory)
        return generate_latest(registry)
