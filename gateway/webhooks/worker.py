"""The delivery worker: sends due webhook deliveries, signed, and retries them with backoff.

Each round claims due deliveries under a lease (``gateway.store.webhooks.claim_deliveries``,
which takes an instruction's next event for an endpoint only once the earlier ones are
done), sends them (up to ``webhooks.concurrency`` at a time) and records each outcome.
A 2xx answer delivers; anything else (another status, a timeout, a refused
connection, a URL the SSRF rule refuses) is a failed attempt,
retried after an exponentially growing wait with jitter until ``retry_for_seconds``
after the event, then marked ``failed``. ``disable_after_failures`` failed attempts
in a row disable the endpoint and raise an alert: a WARNING log record
(``webhook endpoint … disabled``) and the ``gateway_webhook_endpoints_disabled``
counter. A worker that dies mid-delivery leaves its lease to expire: another worker
sends the delivery again, with the same event id and body.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import aiohttp
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.config import WebhookSettings
from gateway.contracts.registry import ContractRegistry
from gateway.domain.clock import Clock
from gateway.errors import ContractError
from gateway.metrics import Metrics
from gateway.partners.signing import sign_payload
from gateway.store.encryption import FieldCipher
from gateway.store.webhooks import ClaimedDelivery, claim_deliveries, record_attempt_failure, record_delivered
from gateway.webhooks.urls import PublicOnlyResolver, UrlRefused, check_url

__all__ = [
    "CONTRACT_VERSION",
    "EVENT_ID_HEADER",
    "SIGNATURE_HEADER",
    "WebhookServices",
    "WebhookWorker",
    "backoff",
    "signature_header",
]

log = logging.getLogger(__name__)

#: how long the worker lets wakes gather before a round, once it found nothing to send
_COALESCE_SECONDS = 0.05

SIGNATURE_HEADER = "Gateway-Signature"
EVENT_ID_HEADER = "Gateway-Event-Id"
DELIVERY_ID_HEADER = "Gateway-Delivery-Id"
CONTRACT_HEADER = "Gateway-Contract"
#: the version of the ``status-event`` contract the bodies follow
CONTRACT_VERSION = "1.0"
#: the contract of a collection's events (bodies with ``"subject": "collection"``)
COLLECTION_CONTRACT = ("collection-event", "1.0")
USER_AGENT = "partner-gateway-webhooks/1"


def signature_header(secrets: tuple[bytes, ...], body: bytes, timestamp: int) -> str:
    """``t=<unix>,v1=<hex>[,v1=<hex>]``: one ``v1`` per secret (two during a rotation's overlap)."""
    first, *others = secrets
    header = sign_payload(first, body, timestamp)
    for secret in others:
        header += "," + sign_payload(secret, body, timestamp).split(",", 1)[1]
    return header


def backoff(attempts: int, base: float, ceiling: float, rand: Callable[[], float] = random.random) -> float:
    """Seconds before attempt ``attempts + 1``: ``base * 2^(attempts-1)`` up to ``ceiling``, with "equal jitter".

    The wait is drawn between half and all of that, so receivers coming back are not hit all at once.
    """
    delay = min(ceiling, base * 2 ** max(0, attempts - 1))
    return delay / 2 + rand() * delay / 2


@dataclass(frozen=True)
class WebhookServices:
    """What the delivery worker works with; the composition root (``gateway.runtime``) builds it."""

    engine: AsyncEngine
    clock: Clock
    #: decrypts the endpoints' signing secrets
    cipher: FieldCipher
    #: every body is validated against the ``status-event`` contract before it is sent
    contracts: ContractRegistry
    metrics: Metrics


class WebhookWorker:
    """Claims due deliveries and sends them; see the module docstring."""

    def __init__(self, services: WebhookServices, settings: WebhookSettings, owner: str) -> None:
        self.services = services
        self.settings = settings
        self.owner = owner
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None
        self._stopping = False

    def wake(self) -> None:
        self._wake.set()

    async def start(self) -> None:
        self._stopping = False
        self._task = asyncio.create_task(self._loop(), name="webhooks")

    async def stop(self, grace: float = 5.0) -> None:
        """Stop claiming and let the round in flight finish (up to ``grace`` seconds); then cancel it.

        A delivery cut short keeps its lease until it expires, and is then sent again.
        """
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), grace)
            except (TimeoutError, asyncio.CancelledError):
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
            self._task = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            resolver = None if self.settings.allow_private_addresses else PublicOnlyResolver()
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(resolver=resolver, limit=self.settings.concurrency * 2),
                timeout=aiohttp.ClientTimeout(total=self.settings.timeout_seconds),
                headers={"User-Agent": USER_AGENT},
            )
        return self._session

    async def _loop(self) -> None:
        while not self._stopping:
            try:
                sent = await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("webhook delivery round failed; retrying")
                sent = 0
            if sent == 0:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.settings.idle_poll_seconds)
                # every committed status change wakes the worker: under load, let the wakes of a moment
                # make one round (one look-up on SQLite's one connection), not one each
                await asyncio.sleep(_COALESCE_SECONDS)

    async def run_once(self) -> int:
        """One round: claim due deliveries, send them, record the outcomes; returns how many were claimed."""
        now = self.services.clock()
        async with self.services.engine.begin() as conn:
            claimed = await claim_deliveries(
                conn,
                self.services.cipher,
                self.owner,
                now,
                now + timedelta(seconds=self.settings.lease_seconds),
                self.settings.batch,
            )
        if not claimed:
            return 0
        limit = asyncio.Semaphore(self.settings.concurrency)

        async def send(delivery: ClaimedDelivery) -> None:
            async with limit:
                await self._deliver(delivery)

        # at most one event per instruction and endpoint is claimed at a time (the claim waits for the earlier
        # ones), so sending them side by side keeps each instruction's events in order
        await asyncio.gather(*(send(d) for d in claimed))
        return len(claimed)

    async def _deliver(self, delivery: ClaimedDelivery) -> bool:
        """Send one delivery and record what happened; whether it was delivered."""
        body = delivery.body.encode()
        status_code: int | None = None
        permanent = False
        try:
            doc = json.loads(delivery.body)
        except ValueError:
            doc = None  # the contract check below refuses it for good
        is_collection = isinstance(doc, dict) and doc.get("subject") == "collection"
        message, version = COLLECTION_CONTRACT if is_collection else ("status-event", CONTRACT_VERSION)
        try:
            self.services.contracts.validate(message, doc, version)
            check_url(delivery.url, allow_private=self.settings.allow_private_addresses)
            headers = {
                "Content-Type": "application/json",
                SIGNATURE_HEADER: signature_header(delivery.secrets, body, int(time.time())),
                EVENT_ID_HEADER: delivery.event_id,
                DELIVERY_ID_HEADER: delivery.id,
                CONTRACT_HEADER: f"{message}/{version}",
            }
            async with self._http().post(delivery.url, data=body, headers=headers, allow_redirects=False) as resp:
                status_code = resp.status
                await resp.read()
            error = None if 200 <= status_code < 300 else f"the endpoint answered {status_code}"
        except ContractError as exc:  # never sent, and never will be: no retry helps
            error = f"the event does not fit the {message} contract: {exc}"
            permanent = True
        except UrlRefused as exc:
            error = str(exc)
        except TimeoutError:
            error = f"no answer within {self.settings.timeout_seconds:g} s"
        except (aiohttp.ClientError, OSError) as exc:
            error = f"could not reach the endpoint: {type(exc).__name__}: {exc}"[:300]
        now = self.services.clock()
        if error is None:
            async with self.services.engine.begin() as conn:
                await record_delivered(conn, delivery.id, delivery.endpoint_id, self.owner, now, status_code or 0)
            self.services.metrics.webhook_deliveries.labels("delivered").inc()
            return True
        retry_at = None if permanent else self._retry_at(delivery, now)
        async with self.services.engine.begin() as conn:
            disabled = await record_attempt_failure(
                conn,
                delivery.id,
                delivery.endpoint_id,
                self.owner,
                now,
                retry_at=retry_at,
                error=error,
                status_code=status_code,
                disable_after=self.settings.disable_after_failures,
            )
        self.services.metrics.webhook_deliveries.labels("retry" if retry_at else "failed").inc()
        log.info(
            "webhook delivery %s (event %s) to endpoint %s failed: %s; %s",
            delivery.id,
            delivery.event_id,
            delivery.endpoint_id,
            error,
            f"next attempt at {retry_at.isoformat()}" if retry_at else "giving up",
            extra={"delivery_id": delivery.id, "endpoint_id": delivery.endpoint_id, "event_id": delivery.event_id},
        )
        if disabled:
            self.services.metrics.webhook_endpoints_disabled.inc()
            log.warning(
                "ALERT: webhook endpoint %s disabled after %d failed deliveries in a row (last: %s); "
                "its deliveries wait until it is enabled again",
                delivery.endpoint_id,
                self.settings.disable_after_failures,
                error,
                extra={"endpoint_id": delivery.endpoint_id, "alert": "webhook_endpoint_disabled"},
            )
        return False

    def _retry_at(self, delivery: ClaimedDelivery, now: datetime) -> datetime | None:
        """When to try again, or ``None`` when the retry window after the event is over."""
        wait = backoff(delivery.attempts + 1, self.settings.backoff_base_seconds, self.settings.backoff_max_seconds)
        at = now + timedelta(seconds=wait)
        if at > delivery.created_at + timedelta(seconds=self.settings.retry_for_seconds):
            return None
        return at
