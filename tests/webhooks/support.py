"""The webhook tests' support: a business unit's receiver (a real aiohttp app on a loopback port) and API helpers.

It records every request (headers and body as received) and answers with the
statuses queued in ``answers`` (then 200); ``hang`` makes it hold requests until released.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from gateway.api.server import RunningApp, bind, start_app
from tests.support import Database, LiveGateway, example_instruction, start_gateway

__all__ = [
    "FAST",
    "Received",
    "Receiver",
    "create_endpoint",
    "deliveries",
    "start",
    "start_receiver",
    "submit",
    "wait_until",
]


@dataclass(frozen=True)
class Received:
    path_qs: str
    headers: dict[str, str]
    body: bytes

    @property
    def doc(self) -> dict[str, Any]:
        return json.loads(self.body)  # type: ignore[no-any-return]

    @property
    def event_id(self) -> str:
        return self.headers["Gateway-Event-Id"]


@dataclass
class Receiver:
    answers: list[int] = field(default_factory=list)
    received: list[Received] = field(default_factory=list)
    #: set: requests wait until it is cleared (``release``)
    hang: asyncio.Event = field(default_factory=asyncio.Event)
    released: asyncio.Event = field(default_factory=asyncio.Event)
    app: RunningApp | None = None

    @property
    def url(self) -> str:
        assert self.app is not None
        return f"{self.app.url}/hooks"

    async def handle(self, request: web.Request) -> web.Response:
        self.received.append(Received(request.path_qs, dict(request.headers), await request.read()))
        if self.hang.is_set():
            await self.released.wait()
        return web.Response(status=self.answers.pop(0) if self.answers else 200)

    async def wait_for(self, count: int, timeout: float = 15) -> list[Received]:
        """The first ``count`` requests, once they have arrived."""
        deadline = asyncio.get_running_loop().time() + timeout
        while len(self.received) < count:
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"{len(self.received)} of {count} webhook requests arrived")
            await asyncio.sleep(0.02)
        return self.received[:count]

    async def stop(self) -> None:
        self.released.set()
        if self.app is not None:
            await self.app.stop()


async def start_receiver() -> Receiver:
    receiver = Receiver()
    app = web.Application()
    app.router.add_post("/hooks", receiver.handle)
    receiver.app = await start_app(app, bind("127.0.0.1", 0))
    return receiver


#: fast retries so a test sees several attempts
FAST = {
    "webhooks__idle_poll_seconds": 0.05,
    "webhooks__backoff_base_seconds": 0.05,
    "webhooks__backoff_max_seconds": 0.2,
    "webhooks__timeout_seconds": 5,
}


async def start(database: Database, **overrides: Any) -> LiveGateway:
    return await start_gateway(database, **{**FAST, **overrides})


async def create_endpoint(gw: LiveGateway, url: str, **body: Any) -> dict[str, Any]:
    async with gw.session.post(
        f"{gw.url}/v1/webhook-endpoints", json={"url": url, **body}, headers=gw.headers()
    ) as resp:
        assert resp.status == 201, await resp.text()
        assert resp.headers["Cache-Control"] == "no-store"
        return await resp.json()  # type: ignore[no-any-return]


async def submit(gw: LiveGateway, **changes: Any) -> str:
    resp = await gw.post_instruction(example_instruction(**changes))
    assert resp.status == 202, await resp.text()
    return (await resp.json())["id"]  # type: ignore[no-any-return]


async def deliveries(gw: LiveGateway, **query: str) -> list[dict[str, Any]]:
    async with gw.session.get(f"{gw.url}/v1/webhook-deliveries", params=query, headers=gw.headers()) as resp:
        assert resp.status == 200, await resp.text()
        return (await resp.json())["items"]  # type: ignore[no-any-return]


async def wait_until(check: Any, timeout: float = 15) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await check()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)
