"""``GatewayClient``: the gateway's HTTP API for a business unit, over ``requests``.

Every call has a timeout (connect, read). A call is tried again, after a growing wait
with jitter (or the ``Retry-After`` the gateway sent), when the gateway could not be
reached, timed out, or answered 429, 502, 503 or 504 — but only where trying again
cannot do a thing twice: reads, updates, deletes, and the POSTs the gateway
de-duplicates by ``Idempotency-Key`` (instructions, batches, files), which keep the
same key on every attempt. Other POSTs (register an endpoint, rotate a secret, cancel,
decide a hold) are tried again only when the request never left (connection refused)
or the gateway refused it unread (429, 503). Errors are typed (``gateway_client.errors``).
"""

from __future__ import annotations

import email.utils
import json
import os
import random
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import quote

import requests
from urllib3.exceptions import NewConnectionError

from gateway_client.errors import ProblemError, TransportError, problem_error

__all__ = ["DEFAULT_TIMEOUT", "GatewayClient", "RetryPolicy"]

#: seconds to connect, seconds to wait for the answer
DEFAULT_TIMEOUT: tuple[float, float] = (3.05, 30.0)
#: answers worth waiting out: the gateway (or its proxy) is overloaded or restarting
_RETRY_STATUSES = frozenset({429, 502, 503, 504})
#: answers the gateway gives before it reads the request: safe to repeat any request
_REFUSED_UNREAD = frozenset({429, 503})


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a call is tried."""

    #: tries in all (the first included); 1 turns retries off
    attempts: int = 4
    #: the first wait; each further wait doubles, drawn between half and all of it (jitter)
    backoff: float = 0.5
    max_backoff: float = 8.0
    #: a longer ``Retry-After`` is cut to this (the caller would rather hear an error)
    max_retry_after: float = 60.0

    def wait(self, attempt: int, rand: Callable[[], float] = random.random) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        delay = min(self.max_backoff, self.backoff * 2 ** (attempt - 1))
        return delay / 2 + rand() * delay / 2


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)  # amounts travel as decimal strings, never floats
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _retry_after(response: requests.Response) -> float | None:
    """``Retry-After`` in seconds (delta-seconds or an HTTP date), if the answer has one."""
    value = (response.headers.get("Retry-After") or "").strip()
    if not value:
        return None
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _never_sent(exc: requests.RequestException) -> bool:
    """Whether the request certainly never reached the gateway (no connection was made)."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    reason = exc.args[0] if exc.args else None
    return isinstance(getattr(reason, "reason", reason), NewConnectionError)


def _id(value: str) -> str:
    return quote(str(value), safe="")


def _comma(value: str | Iterable[str] | None) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return ",".join(value)


class GatewayClient:
    """One business unit's view of one gateway (one per thread: a ``requests.Session`` inside).

    ``GatewayClient("https://gateway.example", api_key)``; use as a context manager, or
    ``close()`` it, to release its connections.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float | tuple[float, float] = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = None,
        session: requests.Session | None = None,
        user_agent: str = "gateway-client-python/0.1",
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not api_key:
            raise ValueError("api_key is required")
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.retry = retry or RetryPolicy()
        self._session = session or requests.Session()
        self._owns_session = session is None
        self._api_key = api_key
        self._user_agent = user_agent
        self._sleep = sleep

    def __repr__(self) -> str:
        return f"GatewayClient(base_url={self.base_url!r})"

    def __enter__(self) -> GatewayClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._owns_session:
            self._session.close()

    # -- the one way out ------------------------------------------------------------------

    def _request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
        data: bytes | None = None,
        content_type: str | None = None,
        idempotency_key: str | None = None,
        repeatable: bool = True,
        accept: str = "application/json",
    ) -> requests.Response:
        """Send one logical call (several attempts, one body, one key); a 2xx answer or a typed error."""
        headers = {"Authorization": f"Bearer {self._api_key}", "Accept": accept, "User-Agent": self._user_agent}
        if json_body is not None:
            data = json.dumps(json_body, default=_json_default, separators=(",", ":")).encode()
            content_type = "application/json"
        if content_type:
            headers["Content-Type"] = content_type
        if idempotency_key is not None:
            headers["Idempotency-Key"] = idempotency_key
        query = {k: v for k, v in (params or {}).items() if v is not None}
        url = self.base_url + path
        attempt = 0
        while True:
            attempt += 1
            last = attempt >= self.retry.attempts
            try:
                response = self._session.request(
                    method, url, params=query, data=data, headers=headers, timeout=self.timeout, allow_redirects=False
                )
            except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError) as exc:
                if last or not (repeatable or _never_sent(exc)):
                    raise TransportError(method, path, attempt, exc) from None
                self._sleep(self.retry.wait(attempt))
                continue
            status = response.status_code
            if 200 <= status < 300:
                return response
            retry_after = _retry_after(response)
            if not last and status in _RETRY_STATUSES and (repeatable or status in _REFUSED_UNREAD):
                wait = retry_after if retry_after is not None else self.retry.wait(attempt)
                response.close()
                self._sleep(min(wait, self.retry.max_retry_after))
                continue
            raise problem_error(status, _document(response), response.reason or "", retry_after)

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._request(method, path, **kwargs)
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError:  # a proxy's page, say: not the gateway's answer
            raise ProblemError(
                response.status_code, "Unexpected answer", detail=f"{method} {path}: the answer is not JSON"
            ) from None

    def _pages(self, path: str, params: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
        """Every item of a cursor-paged list, fetching the next page when the last one is used up."""
        query = dict(params)
        while True:
            page = self._json("GET", path, params=query)
            yield from page["items"]
            cursor = page.get("next_cursor")
            if not cursor:
                return
            query["cursor"] = cursor

    # -- instructions ---------------------------------------------------------------------

    def submit_instruction(
        self, instruction: Mapping[str, Any], *, idempotency_key: str | None = None
    ) -> dict[str, Any]:
        """``POST /v1/instructions``: 202 ``{id, reference, status, created_at}``, durable.

        Without ``idempotency_key`` one is made for this call and kept across its retries;
        give your own (stored with the payment) to stay safe across restarts of your process.
        """
        key = idempotency_key or str(uuid.uuid4())
        return self._json("POST", "/v1/instructions", json_body=instruction, idempotency_key=key)  # type: ignore[no-any-return]

    def get_instruction(self, instruction_id: str) -> dict[str, Any]:
        """``GET /v1/instructions/{id}``: the instruction with its events (accounts masked)."""
        return self._json("GET", f"/v1/instructions/{_id(instruction_id)}")  # type: ignore[no-any-return]

    def list_instructions(
        self,
        *,
        reference: str | None = None,
        status: str | Iterable[str] | None = None,
        adapter: str | None = None,
        created_from: str | None = None,
        created_to: str | None = None,
        page_size: int | None = None,
    ) -> Iterator[dict[str, Any]]:
        """``GET /v1/instructions``, newest first, every page: a generator fetching pages as it goes."""
        params = {
            "reference": reference,
            "status": _comma(status),
            "adapter": adapter,
            "created_from": created_from,
            "created_to": created_to,
            "limit": page_size,
        }
        return self._pages("/v1/instructions", params)

    def list_instruction_events(self, instruction_id: str, *, page_size: int | None = None) -> Iterator[dict[str, Any]]:
        """``GET /v1/instructions/{id}/events``, oldest first, every page."""
        return self._pages(f"/v1/instructions/{_id(instruction_id)}/events", {"limit": page_size})

    def cancel_instruction(self, instruction_id: str) -> dict[str, Any]:
        """``POST /v1/instructions/{id}/cancel``: the cancelled instruction (``ConflictError`` once it was sent)."""
        path = f"/v1/instructions/{_id(instruction_id)}/cancel"
        return self._json("POST", path, repeatable=False)  # type: ignore[no-any-return]

    # -- batches --------------------------------------------------------------------------

    def submit_batch(
        self,
        instructions: Iterable[Mapping[str, Any]],
        *,
        all_or_nothing: bool = False,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """``POST /v1/instruction-batches``: ``{id, accepted, refused, items: [{index, id} | {index, problem}]}``."""
        key = idempotency_key or str(uuid.uuid4())
        body = {"instructions": list(instructions), "all_or_nothing": all_or_nothing}
        return self._json("POST", "/v1/instruction-batches", json_body=body, idempotency_key=key)  # type: ignore[no-any-return]

    def get_batch(self, batch_id: str) -> dict[str, Any]:
        """``GET /v1/instruction-batches/{id}``: ``{id, created_at, count, by_status}``."""
        return self._json("GET", f"/v1/instruction-batches/{_id(batch_id)}")  # type: ignore[no-any-return]

    # -- pain.001 files -------------------------------------------------------------------

    def submit_file(
        self, document: bytes | str | os.PathLike[str], *, idempotency_key: str | None = None
    ) -> dict[str, Any]:
        """``POST /v1/files`` (a pain.001 XML document, its bytes or a path): ``{id, message_id, payments, status}``."""
        if isinstance(document, os.PathLike):
            data = Path(document).read_bytes()
        else:
            data = document.encode() if isinstance(document, str) else document
        key = idempotency_key or str(uuid.uuid4())
        return self._json(  # type: ignore[no-any-return]
            "POST", "/v1/files", data=data, content_type="application/xml", idempotency_key=key
        )

    def get_file(self, file_id: str) -> dict[str, Any]:
        """``GET /v1/files/{id}``."""
        return self._json("GET", f"/v1/files/{_id(file_id)}")  # type: ignore[no-any-return]

    def get_file_status_report(self, file_id: str) -> bytes:
        """``GET /v1/files/{id}/status-report``: the pain.002 document (XML bytes)."""
        path = f"/v1/files/{_id(file_id)}/status-report"
        return self._request("GET", path, accept="application/xml").content

    # -- holds (scope finance) --------------------------------------------------------------

    def list_holds(
        self, *, state: str | None = None, business_unit: str | None = None, page_size: int | None = None
    ) -> Iterator[dict[str, Any]]:
        """``GET /v1/holds`` (``state`` pending, decided or all), oldest first, every page."""
        return self._pages("/v1/holds", {"state": state, "business_unit": business_unit, "limit": page_size})

    def get_hold(self, instruction_id: str) -> dict[str, Any]:
        """``GET /v1/holds/{id}``."""
        return self._json("GET", f"/v1/holds/{_id(instruction_id)}")  # type: ignore[no-any-return]

    def approve_hold(self, instruction_id: str, comment: str) -> dict[str, Any]:
        """``POST /v1/holds/{id}/approve``: release a held payment (another key than the submitter's)."""
        return self._decide(instruction_id, "approve", comment)

    def reject_hold(self, instruction_id: str, comment: str) -> dict[str, Any]:
        """``POST /v1/holds/{id}/reject``: reject a held payment (final)."""
        return self._decide(instruction_id, "reject", comment)

    def _decide(self, instruction_id: str, verb: str, comment: str) -> dict[str, Any]:
        path = f"/v1/holds/{_id(instruction_id)}/{verb}"
        return self._json("POST", path, json_body={"comment": comment}, repeatable=False)  # type: ignore[no-any-return]

    # -- webhook endpoints and deliveries -----------------------------------------------------

    def create_webhook_endpoint(
        self, url: str, *, events: Iterable[str] | None = None, enabled: bool | None = None
    ) -> dict[str, Any]:
        """``POST /v1/webhook-endpoints``: the endpoint and its signing ``secret``, shown this once."""
        body: dict[str, Any] = {"url": url}
        if events is not None:
            body["events"] = list(events)
        if enabled is not None:
            body["enabled"] = enabled
        return self._json("POST", "/v1/webhook-endpoints", json_body=body, repeatable=False)  # type: ignore[no-any-return]

    def list_webhook_endpoints(self, *, page_size: int | None = None) -> Iterator[dict[str, Any]]:
        """``GET /v1/webhook-endpoints``, newest first, every page."""
        return self._pages("/v1/webhook-endpoints", {"limit": page_size})

    def get_webhook_endpoint(self, endpoint_id: str) -> dict[str, Any]:
        """``GET /v1/webhook-endpoints/{id}`` (never the secret)."""
        return self._json("GET", f"/v1/webhook-endpoints/{_id(endpoint_id)}")  # type: ignore[no-any-return]

    def update_webhook_endpoint(
        self,
        endpoint_id: str,
        *,
        url: str | None = None,
        events: Iterable[str] | None = None,
        enabled: bool | None = None,
    ) -> dict[str, Any]:
        """``PATCH /v1/webhook-endpoints/{id}``: change what is given (enabling clears the failure count)."""
        body: dict[str, Any] = {}
        if url is not None:
            body["url"] = url
        if events is not None:
            body["events"] = list(events)
        if enabled is not None:
            body["enabled"] = enabled
        return self._json("PATCH", f"/v1/webhook-endpoints/{_id(endpoint_id)}", json_body=body)  # type: ignore[no-any-return]

    def rotate_webhook_secret(self, endpoint_id: str, *, overlap_seconds: int | None = None) -> dict[str, Any]:
        """``POST /v1/webhook-endpoints/{id}/rotate-secret``: the new ``secret``, shown this once."""
        body = {} if overlap_seconds is None else {"overlap_seconds": overlap_seconds}
        path = f"/v1/webhook-endpoints/{_id(endpoint_id)}/rotate-secret"
        return self._json("POST", path, json_body=body, repeatable=False)  # type: ignore[no-any-return]

    def delete_webhook_endpoint(self, endpoint_id: str) -> None:
        """``DELETE /v1/webhook-endpoints/{id}``: the endpoint and its delivery history."""
        self._request("DELETE", f"/v1/webhook-endpoints/{_id(endpoint_id)}")

    def list_webhook_deliveries(
        self,
        *,
        status: str | None = None,
        endpoint_id: str | None = None,
        instruction_id: str | None = None,
        page_size: int | None = None,
    ) -> Iterator[dict[str, Any]]:
        """``GET /v1/webhook-deliveries`` (``status`` pending, delivered or failed), newest first, every page."""
        params = {"status": status, "endpoint_id": endpoint_id, "instruction_id": instruction_id, "limit": page_size}
        return self._pages("/v1/webhook-deliveries", params)

    def redeliver(self, delivery_id: str) -> dict[str, Any]:
        """``POST /v1/webhook-deliveries/{id}/redeliver``: send it again now (same event id and body)."""
        # repeating it only sends the same event again, which receivers de-duplicate
        return self._json("POST", f"/v1/webhook-deliveries/{_id(delivery_id)}/redeliver")  # type: ignore[no-any-return]


def _document(response: requests.Response) -> Any:
    """The error answer's JSON (problem+json, or JSON from a proxy), or ``None``."""
    try:
        return response.json()
    except ValueError:
        return None
