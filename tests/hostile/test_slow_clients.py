"""Issue 11, reproductions 2 and 6: slow, stalled and broken HTTP clients are cut off cleanly.

Raw sockets against a live gateway with short timeouts: a request head that never
finishes, a body that stops arriving and an idle keep-alive connection are all
closed by the server; malformed HTTP gets a problem+json 400; a client hanging up
is an INFO line, never an ERROR with a traceback.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator

import pytest

from tests.support import Database, LiveGateway, start_gateway, stop_gateway

TIMEOUT = 0.5
#: how long a test waits for the server to close before calling it a failure
PATIENCE = 5.0


@pytest.fixture
async def guarded(database: Database) -> AsyncIterator[LiveGateway]:
    gw = await start_gateway(
        database,
        dispatch=False,
        poll=False,
        server__header_timeout_seconds=TIMEOUT,
        server__body_timeout_seconds=TIMEOUT,
        server__keepalive_timeout_seconds=2 * TIMEOUT,
    )
    try:
        yield gw
    finally:
        await stop_gateway(gw)


async def _connect(gw: LiveGateway) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    host, port = gw.url.removeprefix("http://").split(":")
    return await asyncio.open_connection(host, int(port))


async def _read_until_closed(reader: asyncio.StreamReader) -> tuple[bytes, float]:
    """Everything the server sends until it closes, and how long that took (fails after PATIENCE)."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    async with asyncio.timeout(PATIENCE):
        data = await reader.read()  # returns at EOF: the server closed the connection
    return data, loop.time() - start


@pytest.mark.parametrize(
    "head",
    [
        pytest.param(b"", id="connects-and-sends-nothing"),
        pytest.param(b"GET /healthz HTTP/1.1\r\nHost: x\r\n", id="headers-never-finish"),
        pytest.param(b"GET /heal", id="request-line-never-finishes"),
    ],
)
async def test_a_request_head_that_never_finishes_is_closed(guarded: LiveGateway, head: bytes) -> None:
    reader, writer = await _connect(guarded)
    try:
        writer.write(head)
        await writer.drain()
        data, waited = await _read_until_closed(reader)
        assert data == b""
        assert TIMEOUT * 0.8 <= waited < PATIENCE
    finally:
        writer.close()


async def test_headers_trickling_in_are_closed_at_the_deadline(guarded: LiveGateway) -> None:
    reader, writer = await _connect(guarded)
    try:
        closed = asyncio.ensure_future(_read_until_closed(reader))
        for byte in b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 40:
            if closed.done():
                break
            writer.write(bytes([byte]))
            await asyncio.sleep(0.05)  # one byte every 50 ms: ~4 s for the whole head
        data, waited = await closed
        assert data == b""
        assert waited < 4 * TIMEOUT
    finally:
        writer.close()


async def test_a_body_that_stops_arriving_gets_408_and_the_connection_closed(
    guarded: LiveGateway, no_errors_logged: pytest.LogCaptureFixture
) -> None:
    reader, writer = await _connect(guarded)
    try:
        writer.write(
            b"POST /v1/partners/card_acquirer/callbacks HTTP/1.1\r\nHost: x\r\n"
            b'Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"a'
        )
        await writer.drain()
        data, waited = await _read_until_closed(reader)
        head, _, body = data.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 408"), data
        assert b"application/problem+json" in head
        assert json.loads(body)["status"] == 408
        assert waited < PATIENCE
    finally:
        writer.close()


async def test_an_idle_keep_alive_connection_is_closed(guarded: LiveGateway) -> None:
    reader, writer = await _connect(guarded)
    try:
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        await writer.drain()
        data, waited = await _read_until_closed(reader)
        assert data.startswith(b"HTTP/1.1 200"), data
        assert 2 * TIMEOUT * 0.8 <= waited < PATIENCE
    finally:
        writer.close()


@pytest.mark.parametrize(
    "request_bytes",
    [
        pytest.param(b"GARBAGE\r\n\r\n", id="not-http"),
        pytest.param(b"GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n", id="header-without-colon"),
        pytest.param(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n", id="header-too-long"),
        pytest.param(
            b"POST /v1/instructions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", id="bad-chunk"
        ),
    ],
)
async def test_malformed_http_is_a_problem_json_400_logged_at_info(
    guarded: LiveGateway, no_errors_logged: pytest.LogCaptureFixture, request_bytes: bytes
) -> None:
    reader, writer = await _connect(guarded)
    try:
        writer.write(request_bytes)
        await writer.drain()
        data, _ = await _read_until_closed(reader)
        head, _, body = data.partition(b"\r\n\r\n")
        assert head.split(b"\r\n")[0].split(b" ")[1] == b"400", data
        assert b"application/problem+json" in head, data
        assert json.loads(body)["status"] == 400
    finally:
        writer.close()


async def test_a_client_that_hangs_up_mid_body_is_logged_at_info(
    guarded: LiveGateway, no_errors_logged: pytest.LogCaptureFixture
) -> None:
    _, writer = await _connect(guarded)
    writer.write(
        b"POST /v1/partners/card_acquirer/callbacks HTTP/1.1\r\nHost: x\r\n"
        b'Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"a'
    )
    await writer.drain()
    await asyncio.sleep(0.1)
    writer.close()
    await writer.wait_closed()
    await asyncio.sleep(0.2)
    infos = [r for r in no_errors_logged.records if r.levelno == logging.INFO and "closed the connection" in r.message]
    assert infos, [r.getMessage() for r in no_errors_logged.records]
