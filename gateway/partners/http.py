"""HTTP plumbing every HTTP partner adapter needs, in one place.

One ``aiohttp`` session per adapter, a hard deadline per call, and the mapping
of transport failures onto what they mean for the payment:

- never connected (connection refused, DNS) → ``PartnerUnreachableError``: the
  partner cannot have seen the request, so it may go elsewhere;
- no answer in time, or the connection lost after sending → ``lost``
  (``OutcomeUnknownError`` by default): the partner may have executed it, so the
  gateway must ask before doing anything else.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import aiohttp

from gateway.errors import OutcomeUnknownError, PartnerUnreachableError, TransientPartnerError
from gateway.partners.capture import record_exchange

__all__ = [
    "CALLBACK_URL_HEADER",
    "IDEMPOTENCY_HEADER",
    "TRANSIENT_HTTP_STATUSES",
    "PartnerHttp",
    "header",
    "retry_after",
]

#: the gateway's instruction id, sent so that a retry never pays twice
IDEMPOTENCY_HEADER = "Idempotency-Key"
#: where the partner should send its status callbacks
CALLBACK_URL_HEADER = "X-Callback-Url"
#: HTTP statuses after which a retry with the same idempotency key may succeed
TRANSIENT_HTTP_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})


def header(headers: Mapping[str, str], name: str) -> str | None:
    """Case-insensitive header look-up over any mapping (dict, CIMultiDict, ...)."""
    value = headers.get(name)
    if value is not None:
        return value
    lowered = name.lower()
    return next((v for k, v in headers.items() if k.lower() == lowered), None)


def retry_after(headers: Mapping[str, str], now: datetime) -> float | None:
    """Seconds the partner asked us to wait (``Retry-After``: delta-seconds or an HTTP date after ``now``)."""
    value = (header(headers, "Retry-After") or "").strip()
    if not value:
        return None
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


class PartnerHttp:
    """A partner's HTTP session with the gateway's failure semantics."""

    def __init__(self, partner: str, timeout_seconds: float) -> None:
        self.partner = partner
        self.timeout_seconds = timeout_seconds
        self._session: aiohttp.ClientSession | None = None

    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout_seconds))
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()

    async def request(
        self,
        method: str,
        url: str,
        body: bytes | None,
        headers: Mapping[str, str],
        *,
        lost: type[TransientPartnerError] = OutcomeUnknownError,
    ) -> tuple[int, Mapping[str, str], bytes]:
        """One call under the deadline: ``(status, headers, body)`` or the failure's meaning.

        Inside a ``capture.capturing`` log, the request and its answer are recorded there, masked
        (``gateway.partners.capture``); a request that never connected is not.
        """
        sent_at = datetime.now(UTC)
        try:
            async with asyncio.timeout(self.timeout_seconds):
                async with self.session().request(method, url, data=body, headers=dict(headers)) as resp:
                    answer = resp.status, resp.headers, await resp.read()
        except aiohttp.ClientConnectorError as exc:  # never connected: the partner cannot have seen it
            raise PartnerUnreachableError(f"{self.partner} unreachable: {type(exc).__name__}") from None
        except TimeoutError:
            record_exchange(method, url, headers, body, None, None, None, sent_at)
            raise lost(f"{self.partner} did not answer {method} within {self.timeout_seconds:g}s") from None
        except aiohttp.ClientError as exc:
            record_exchange(method, url, headers, body, None, None, None, sent_at)
            raise lost(f"connection to {self.partner} lost during {method}: {type(exc).__name__}") from None
        record_exchange(method, url, headers, body, *answer, sent_at)
        return answer
