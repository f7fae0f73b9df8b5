"""An in-process gateway and its simulators on loopback, on a throw-away SQLite database.

What ``gateway demo`` and ``gateway qa run`` (and tools like them) stand on:
bind port-0 sockets, point the enabled partners at their simulators, migrate a
fresh database, create an API key, serve, and clean everything up afterwards.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

import aiohttp
from aiohttp import web

from gateway.api.server import RunningApp, bind, start_app
from gateway.config import Settings
from gateway.domain.clock import Clock, system_clock
from gateway.runtime import Runtime, create_app
from gateway.store import repo
from gateway.store.db import create_engine
from gateway.store.migrate import upgrade

__all__ = ["LocalGateway", "fetch_statuses", "list_views", "local_gateway", "post_all"]


@dataclass(frozen=True)
class LocalGateway:
    """Where the local gateway and its simulators answer, and a key to call it with."""

    url: str
    key: str
    simulator_urls: Mapping[str, str]
    settings: Settings
    #: the gateway's runtime (adapters, dispatcher): tools may drive it, e.g. run an ACH cut-off now
    runtime: Runtime


@asynccontextmanager
async def local_gateway(
    base: Settings,
    simulators: Mapping[str, web.Application],
    *,
    business_unit: str = "demo",
    clock: Clock = system_clock,
    **overrides: Any,
) -> AsyncIterator[LocalGateway]:
    """Serve ``simulators`` and a gateway wired to them until the block ends.

    ``overrides`` are dotted settings (``dispatch__idle_poll_seconds=0.05``) applied
    after the harness's own (database, server, partner base URLs).
    """
    with tempfile.TemporaryDirectory(prefix="gateway-local-") as tmp:
        sim_socks = {name: bind("127.0.0.1", 0) for name in simulators}
        gw_sock = bind("127.0.0.1", 0)
        port = gw_sock.getsockname()[1]
        sim_urls = {name: f"http://127.0.0.1:{sock.getsockname()[1]}" for name, sock in sim_socks.items()}
        wiring: dict[str, Any] = {
            "database__url": f"sqlite+aiosqlite:///{Path(tmp) / 'gateway.db'}",
            "server__host": "127.0.0.1",
            "server__port": port,
            "server__public_url": None,
            "reconciliation__inbox_dir": str(Path(tmp) / "statements"),  # never the repo's var/
        }
        for name, url in sim_urls.items():
            if name in base.section("partners"):
                wiring[f"partners__{name}__base_url"] = url
        settings = base.with_overrides(**{**wiring, **overrides})
        if "ach_nacha" in settings.section("partners"):  # a throw-away run gets a throw-away ACH spool
            settings = settings.with_overrides(partners__ach_nacha__spool_dir=str(Path(tmp) / "ach"))
        engine = create_engine(settings.database_url)
        try:
            await upgrade(engine)
            async with engine.begin() as conn:
                key = await repo.create_api_key(conn, business_unit, ["instructions"], system_clock())
        finally:
            await engine.dispose()
        running: list[RunningApp] = []
        runtime = Runtime(settings, clock=clock)
        try:
            for name, app in simulators.items():
                running.append(await start_app(app, sim_socks[name]))
            await runtime.start()
            running.append(await start_app(create_app(settings, runtime=runtime, simulators=sim_urls), gw_sock))
            yield LocalGateway(f"http://127.0.0.1:{port}", key, sim_urls, settings, runtime)
        finally:
            for app in reversed(running):  # the gateway first, then its partners
                await app.stop()
            await runtime.close()


class _HasBody(Protocol):
    @property
    def body(self) -> dict[str, Any]: ...


B = TypeVar("B", bound=_HasBody)


async def post_all(
    session: aiohttp.ClientSession,
    url: str,
    key: str,
    items: Sequence[B],
    on_sent: Callable[[], None] | None = None,
) -> dict[str, B]:
    """POST every item's ``body`` (its reference as Idempotency-Key, retrying 5xx); ids → items."""
    ids: dict[str, B] = {}
    sem = asyncio.Semaphore(32)

    async def post(item: B) -> None:
        async with sem:
            for attempt in range(5):
                async with session.post(
                    f"{url}/v1/instructions",
                    json=item.body,
                    headers={"Authorization": f"Bearer {key}", "Idempotency-Key": item.body["reference"]},
                ) as resp:
                    if resp.status == 202:
                        ids[(await resp.json())["id"]] = item
                        break
                    if resp.status < 500 or attempt == 4:
                        raise RuntimeError(
                            f"intake refused {item.body['reference']}: {resp.status} {await resp.text()}"
                        )
                await asyncio.sleep(0.1 * (attempt + 1))
            if on_sent is not None:
                on_sent()

    await asyncio.gather(*(post(i) for i in items))
    return ids


async def fetch_statuses(session: aiohttp.ClientSession, url: str, key: str) -> dict[str, str]:
    """Every instruction's status, by id."""
    return {i: v["status"] for i, v in (await list_views(session, url, key)).items()}


async def list_views(session: aiohttp.ClientSession, url: str, key: str) -> dict[str, dict[str, Any]]:
    """Every instruction of this business unit (list view), by id."""
    out: dict[str, dict[str, Any]] = {}
    cursor: str | None = None
    while True:
        params = {"limit": "200", **({"cursor": cursor} if cursor else {})}
        async with session.get(
            f"{url}/v1/instructions", params=params, headers={"Authorization": f"Bearer {key}"}
        ) as resp:
            page = await resp.json()
        out.update({i["id"]: i for i in page["items"]})
        cursor = page["next_cursor"]
        if not cursor:
            return out
