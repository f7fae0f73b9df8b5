"""The ODFI file-drop simulator: NACHA files in, entry statuses and return files out.

A standalone aiohttp app, not a plug-in of ``gateway_simulators.core``: the core's
``Partner`` is built around one payment per submission, keyed by the instruction
id, answered with a per-payment status report and followed by per-payment
callbacks. A file drop takes a *file* of many entries keyed by trace number,
answers accepted/rejected for the whole file, and reports back in *return
files*; none of the core's submission, report or callback hooks fit that.

Routes (``X-Api-Key`` on all but ``/_sim``):

- ``POST /files``: a NACHA file, ``Idempotency-Key: <file id>``, optional ``X-Callback-Url``.
  Read with the adapter's own strict reader; ``200 {"status": "accepted", ...}`` or
  ``422 {"status": "rejected", "errors": [{"pointer", "detail"}]}``. A resent file id gets
  the first answer; an entry whose trace number was booked before is not booked again.
- ``GET /entries/{trace}``: ``{"trace", "status": accepted|settled|returned, "return_code", ...}``.
- ``GET /returns?since=<seq>``: ``{"files": [{"seq", "text", "created_at"}]}``.
- ``GET /_sim/entries`` (booked entries, ``received`` counts every copy), ``GET /_sim/files``,
  ``GET /_sim/journal``, ``POST /_sim/advance``, ``POST /_sim/reset``.

Timeline (measured on the simulator's clock, settings ``clock``): an accepted entry settles
``settle_delay`` seconds after its file arrived; an entry whose receiver name holds
``RETURN-Rnn`` is returned with ``Rnn`` ``return_delay`` seconds after settling, in a
return file posted (signed with ``callback_secret``) to the file's callback URL.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import aiohttp
from aiohttp import web

from gateway.domain.clock import system_clock
from gateway.errors import ConfigError
from gateway.partners.signing import sign_payload
from gateway_adapters.ach_nacha.adapter import (
    API_KEY_HEADER,
    CALLBACK_URL_HEADER,
    IDEMPOTENCY_HEADER,
    SIGNATURE_HEADER,
)
from gateway_adapters.ach_nacha.nacha import (
    RETURN_REASONS,
    EntryInput,
    NachaError,
    Originator,
    build_return_file,
    read_file,
    render,
)

__all__ = ["ODFI", "FileDrop", "create_app"]

log = logging.getLogger(__name__)

_RETURN_RULE = re.compile(r"RETURN-(R[0-9]{2})")


@dataclass
class _Booked:
    entry: EntryInput
    file_id: str
    callback_url: str | None
    accepted_at: datetime
    status: str = "accepted"
    return_code: str | None = None
    settled_at: datetime | None = None
    returned_at: datetime | None = None
    received: int = 1

    def describe(self) -> dict[str, Any]:
        return {
            "trace": self.entry.trace_number,
            "file_id": self.file_id,
            "status": self.status,
            "amount_cents": self.entry.amount_cents,
            "name": self.entry.name,
            "return_code": self.return_code if self.status == "returned" else None,
            "return_reason": RETURN_REASONS.get(self.return_code or "") if self.status == "returned" else None,
            "settled_at": self.settled_at.isoformat() if self.settled_at else None,
            "received": self.received,
        }


@dataclass
class FileDrop:
    """The simulator's state and behaviour (the app holds one under ``ODFI``)."""

    api_key: str
    callback_secret: bytes
    clock: Callable[[], datetime] = system_clock
    settle_delay: float = 0.2
    return_delay: float = 0.2
    send_callbacks: bool = True
    callback_attempts: int = 4
    rdfi_routing: str = "091000019"
    files: dict[str, tuple[int, dict[str, Any]]] = field(default_factory=dict)
    entries: dict[str, _Booked] = field(default_factory=dict)
    returns: list[dict[str, Any]] = field(default_factory=list)
    journal: list[dict[str, Any]] = field(default_factory=list)
    _pushes: set[asyncio.Task[None]] = field(default_factory=set)
    _session: aiohttp.ClientSession | None = None

    def record(self, **entry: Any) -> None:
        self.journal.append({"seq": len(self.journal) + 1, "at": self.clock().isoformat(), **entry})

    def receive(self, file_id: str, text: bytes, callback_url: str | None) -> tuple[int, dict[str, Any]]:
        """Book a file once: (HTTP status, answer); a known file id replays its first answer."""
        if file_id in self.files:
            self.record(kind="file", file_id=file_id, outcome="replayed")
            return self.files[file_id]
        try:
            ach = read_file(text)
        except NachaError as exc:
            answer = {"status": "rejected", "file_id": file_id, "errors": [e.as_dict() for e in exc.errors]}
            self.files[file_id] = (422, answer)
            self.record(kind="file", file_id=file_id, outcome="rejected", detail=exc.message)
            return self.files[file_id]
        now = self.clock()
        booked, duplicates = 0, []
        for batch, item in ach.entries():
            d = item.detail
            if d.trace_number in self.entries:
                self.entries[d.trace_number].received += 1
                duplicates.append(d.trace_number)
                continue
            entry = EntryInput(
                company_id=batch.header.get("company_id"),
                company_name=batch.header.get("company_name"),
                transaction_code=d.number("transaction_code"),
                routing=d.routing,
                account=d.get("account"),
                amount_cents=d.amount_cents,
                individual_id=d.get("individual_id"),
                name=d.get("name"),
                trace_number=d.trace_number,
            )
            rule = _RETURN_RULE.search(entry.name)
            self.entries[d.trace_number] = _Booked(entry, file_id, callback_url, now, return_code=rule and rule[1])
            booked += 1
        answer = {"status": "accepted", "file_id": file_id, "entries": booked, "duplicates": duplicates}
        self.files[file_id] = (200, answer)
        self.record(kind="file", file_id=file_id, outcome="accepted", entries=booked, duplicates=duplicates)
        return self.files[file_id]

    def advance(self) -> list[dict[str, Any]]:
        """Move every entry along its timeline to the clock's now; the return files this made."""
        now = self.clock()
        returned: dict[str | None, list[_Booked]] = {}
        for b in self.entries.values():
            if b.status == "accepted" and now >= b.accepted_at + timedelta(seconds=self.settle_delay):
                b.status, b.settled_at = "settled", now
            due = b.settled_at is not None and now >= b.settled_at + timedelta(seconds=self.return_delay)
            if b.status == "settled" and b.return_code and due:
                b.status, b.returned_at = "returned", now
                returned.setdefault(b.callback_url, []).append(b)
        made = []
        for callback_url, items in returned.items():
            seq = len(self.returns) + 1
            rdfi = self.rdfi_routing
            ach = build_return_file(
                Originator(rdfi, " " + rdfi, "ODFI", "RDFI SIMULATOR", rdfi),
                [
                    (b.entry, b.return_code or "R01", f"{rdfi[:8]}{seq % 1000:03d}{i % 10000:04d}")
                    for i, b in enumerate(items, 1)
                ],
                created_at=now,
                effective_date=now.date(),
            )
            made.append({"seq": seq, "text": render(ach), "created_at": now.isoformat(), "callback_url": callback_url})
            self.returns.append(made[-1])
            self.record(kind="return_file", seq=seq, traces=[b.entry.trace_number for b in items])
        return made

    async def push(self, item: dict[str, Any]) -> None:
        """Post a return file to the callback URL, signed; a few attempts with backoff."""
        url = item["callback_url"]
        if not url or not self.send_callbacks:
            return
        body = item["text"].encode()
        session = self._session or aiohttp.ClientSession()
        self._session = session
        for attempt in range(self.callback_attempts):
            headers = {
                SIGNATURE_HEADER: sign_payload(self.callback_secret, body, int(self.clock().timestamp())),
                "Content-Type": "text/plain",
            }
            try:
                async with session.post(url, data=body, headers=headers) as resp:
                    self.record(kind="callback", seq=item["seq"], http_status=resp.status)
                    if resp.status < 500:
                        return
            except aiohttp.ClientError as exc:
                self.record(kind="callback", seq=item["seq"], outcome="failed", detail=type(exc).__name__)
            await asyncio.sleep(0.05 * 2**attempt)

    def tick(self) -> None:
        for item in self.advance():
            task = asyncio.get_running_loop().create_task(self.push(item))
            self._pushes.add(task)
            task.add_done_callback(self._pushes.discard)

    async def close(self) -> None:
        for task in list(self._pushes):
            task.cancel()
        if self._session is not None:
            await self._session.close()


ODFI = web.AppKey("ach_odfi", FileDrop)


@web.middleware
async def _auth(request: web.Request, handler: Callable[[web.Request], Any]) -> web.StreamResponse:
    if not request.path.startswith("/_sim") and request.headers.get(API_KEY_HEADER) != request.app[ODFI].api_key:
        return web.json_response({"error": "missing or invalid API key"}, status=401)
    return await handler(request)


async def _post_file(request: web.Request) -> web.Response:
    drop = request.app[ODFI]
    file_id = request.headers.get(IDEMPOTENCY_HEADER)
    if not file_id:
        return web.json_response({"error": f"{IDEMPOTENCY_HEADER} header required"}, status=400)
    status, answer = drop.receive(file_id, await request.read(), request.headers.get(CALLBACK_URL_HEADER))
    return web.json_response(answer, status=status)


async def _get_entry(request: web.Request) -> web.Response:
    drop = request.app[ODFI]
    drop.tick()
    booked = drop.entries.get(request.match_info["trace"])
    if booked is None:
        return web.json_response({"error": "unknown trace number"}, status=404)
    return web.json_response(booked.describe())


async def _get_returns(request: web.Request) -> web.Response:
    drop = request.app[ODFI]
    drop.tick()
    try:
        since = int(request.query.get("since", "0"))
    except ValueError:
        return web.json_response({"error": "since must be an integer"}, status=400)
    files = [{k: r[k] for k in ("seq", "text", "created_at")} for r in drop.returns if r["seq"] > since]
    return web.json_response({"files": files})


async def _sim_entries(request: web.Request) -> web.Response:
    return web.json_response([b.describe() for b in request.app[ODFI].entries.values()])


async def _sim_files(request: web.Request) -> web.Response:
    return web.json_response([{"file_id": k, "http_status": s, **a} for k, (s, a) in request.app[ODFI].files.items()])


async def _sim_journal(request: web.Request) -> web.Response:
    return web.json_response(request.app[ODFI].journal)


async def _sim_advance(request: web.Request) -> web.Response:
    request.app[ODFI].tick()
    return web.json_response({"returns": len(request.app[ODFI].returns)})


async def _sim_reset(request: web.Request) -> web.Response:
    drop = request.app[ODFI]
    drop.files.clear()
    drop.entries.clear()
    drop.returns.clear()
    drop.journal.clear()
    return web.json_response({"reset": True})


def create_app(settings: Mapping[str, Any]) -> web.Application:
    """The file drop. Settings: ``api_key``, ``callback_secret`` (required, the adapter's values);
    ``settle_delay`` (0.2 s), ``return_delay`` (0.2 s), ``send_callbacks`` (true), ``tick`` (0.05 s),
    ``callback_attempts`` (4), ``rdfi_routing``, ``clock`` (a callable, for tests)."""
    for name in ("api_key", "callback_secret"):
        if not isinstance(settings.get(name), str) or len(settings[name]) < 8:
            raise ConfigError(f"simulators.ach_nacha.{name}: a string of at least 8 characters is required")
    drop = FileDrop(
        api_key=settings["api_key"],
        callback_secret=settings["callback_secret"].encode(),
        clock=settings.get("clock") or system_clock,
        settle_delay=float(settings.get("settle_delay", 0.2)),
        return_delay=float(settings.get("return_delay", 0.2)),
        send_callbacks=bool(settings.get("send_callbacks", True)),
        callback_attempts=int(settings.get("callback_attempts", 4)),
        rdfi_routing=str(settings.get("rdfi_routing", "091000019")),
    )
    tick = float(settings.get("tick", 0.05))
    app = web.Application(middlewares=[_auth])
    app[ODFI] = drop

    async def ticker(app: web.Application) -> AsyncIterator[None]:
        async def loop() -> None:
            while True:
                await asyncio.sleep(tick)
                try:
                    drop.tick()
                except Exception:  # a bug in one tick must not stop the timeline
                    log.exception("ACH simulator tick failed")

        task = asyncio.get_running_loop().create_task(loop())
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await drop.close()

    app.cleanup_ctx.append(ticker)
    app.router.add_post("/files", _post_file)
    app.router.add_get("/entries/{trace}", _get_entry)
    app.router.add_get("/returns", _get_returns)
    app.router.add_get("/_sim/entries", _sim_entries)
    app.router.add_get("/_sim/files", _sim_files)
    app.router.add_get("/_sim/journal", _sim_journal)
    app.router.add_post("/_sim/advance", _sim_advance)
    app.router.add_post("/_sim/reset", _sim_reset)
    return app
