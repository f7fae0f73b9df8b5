"""Prometheus metrics (prometheus-client), one registry per gateway runtime."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from gateway.domain.events import StatusChange
from gateway.plugins.hookspecs import hookimpl

__all__ = ["Metrics"]


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
        self.outbox_depth = Gauge("gateway_outbox_depth", "Jobs waiting in the outbox", registry=r)

    @hookimpl
    def gateway_status_changed(self, change: StatusChange) -> None:
        self.transitions.labels(change.current.value).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
