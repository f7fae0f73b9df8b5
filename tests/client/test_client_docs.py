"""docs/client.md's examples run: the session against a live gateway, the receiver against the gateway's signer."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import re
import time
from typing import Any

import pytest

from gateway.webhooks.worker import signature_header
from tests.support import REPO, Database, stop_gateway
from tests.webhooks.support import start

DOC = REPO / "docs" / "client.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.DOTALL)


def run(code: str, namespace: dict[str, Any] | None = None) -> tuple[dict[str, Any], str]:
    namespace = dict(namespace or {})
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, str(DOC), "exec"), namespace)
    return namespace, out.getvalue()


async def test_the_session_example_runs_against_a_live_gateway(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    session, _ = python_blocks()
    gw = await start(database, dispatch=False, poll=False, simulators=False, partners={})
    monkeypatch.setenv("GATEWAY_URL", gw.url)
    monkeypatch.setenv("GATEWAY_API_KEY", gw.key)
    try:
        namespace, printed = await asyncio.to_thread(run, session)
    finally:
        await stop_gateway(gw)
    lines = printed.splitlines()
    assert lines[0] == f"accepted {namespace['accepted']['id']} received"
    assert lines[1].startswith("now received ['received'")
    assert lines[2].startswith("refused: 422 /currency ")
    assert lines[3] == "refused: 409 idempotency-conflict"


def test_the_receiver_example_accepts_the_gateways_signature_and_refuses_anything_else() -> None:
    _, receiver = python_blocks()
    taken: list[tuple[dict[str, Any], str]] = []
    namespace, _ = run(
        receiver,
        {
            "CURRENT_SECRET": "whsec_new_for_docs",
            "PREVIOUS_SECRET": "whsec_old_for_docs",
            "remember": lambda *a: taken.append(a),
        },
    )
    body = json.dumps({"instruction_id": "ins_1", "sequence": 2, "status": "accepted"}).encode()
    signed = signature_header((b"whsec_old_for_docs",), body, int(time.time()))
    headers = {"Gateway-Signature": signed, "Gateway-Event-Id": "evt_1_2"}

    assert namespace["handle"](headers, body) == 200
    assert namespace["handle"](headers, body.replace(b"accepted", b"settled")) == 401
    assert taken == [({"instruction_id": "ins_1", "sequence": 2, "status": "accepted"}, "evt_1_2")]
