"""Issue 11, one test per reproduction: hostile input gets a 4xx problem, never a 500 or a traceback.

Each test runs against a live gateway on loopback (SQLite, and PostgreSQL when configured)
and checks the answer, that nothing was written, and that the log holds no ERROR record.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import pytest

from tests.hostile.signing import CALLBACK_SIGNING
from tests.support import LiveGateway, example_instruction


async def _problem(resp: Any, status: int) -> dict[str, Any]:
    text = await resp.text()
    assert resp.status == status, text
    assert resp.content_type == "application/problem+json", text
    body = json.loads(text)
    assert body["status"] == status
    return body


async def _count_instructions(gw: LiveGateway) -> int:
    async with gw.session.get(f"{gw.url}/v1/instructions", headers=gw.headers()) as resp:
        return len((await resp.json())["items"])


async def _post_raw(gw: LiveGateway, path: str, data: bytes, key: str | None = None) -> Any:
    headers = gw.headers(key, **{"Content-Type": "application/json", "Idempotency-Key": uuid.uuid4().hex})
    return await gw.session.post(f"{gw.url}{path}", data=data, headers=headers)


# -- 1. unauthenticated 500s from signature headers ---------------------------------------------------

BAD_SIGNATURE_HEADERS = [
    pytest.param("t=1" + "0" * 400 + ",v1=00", id="timestamp-of-400-digits"),
    pytest.param(f"t={int(time.time())},v1=\u00e9", id="non-ascii-signature"),
    pytest.param(f"t={int(time.time())},v1=" + "a" * 63, id="short-signature"),
    pytest.param(f"t={int(time.time())},v1=" + "g" * 64, id="non-hex-signature"),
    pytest.param("t=-5,v1=" + "a" * 64, id="negative-timestamp"),
    pytest.param("t=\u0661\u0662,v1=" + "a" * 64, id="non-ascii-digits"),
    pytest.param("t=1,t=2,v1=" + "a" * 64, id="two-timestamps"),
    pytest.param("x" * 5000, id="huge-header"),
    pytest.param("garbage", id="no-equals"),
]


@pytest.mark.parametrize("adapter", sorted(CALLBACK_SIGNING))
@pytest.mark.parametrize("header", BAD_SIGNATURE_HEADERS)
async def test_malformed_signature_header_is_401_on_every_callback(
    gateway: LiveGateway, no_errors_logged: pytest.LogCaptureFixture, adapter: str, header: str
) -> None:
    name, _ = CALLBACK_SIGNING[adapter]
    resp = await gateway.session.post(
        f"{gateway.url}/v1/partners/{adapter}/callbacks",
        data=b"x",
        headers={name: header.encode("utf-8").decode("latin-1")},
    )
    problem = await _problem(resp, 401)
    assert problem["type"].endswith("/invalid-signature")


# -- 3. authenticated 500s on intake and hold decisions ---------------------------------------------

HOSTILE_BODIES = [
    pytest.param(b"[" * 1000 + b"]" * 1000, 400, "", id="nested-1000-deep"),
    pytest.param(b'{"reference": ' + b"1" * 4301 + b"}", 400, "/reference", id="integer-of-4301-digits"),
    pytest.param(b'{"reference": 1e999}', 400, "/reference", id="float-overflow"),
    pytest.param(b'{"reference": NaN}', 400, "/reference", id="nan"),
    pytest.param(b'{"reference": "Nordic \\ud800 AB"}', 422, "/reference", id="escaped-lone-surrogate"),
    pytest.param(b'{"reference": "Nordic \xed\xb2\x80 AB"}', 400, "", id="raw-surrogate-bytes"),
    pytest.param(b'{"a": {"b": 1, "b": 2}}', 400, "/a/b", id="duplicate-key"),
]


@pytest.mark.parametrize(("raw", "status", "pointer"), HOSTILE_BODIES)
async def test_hostile_instruction_body_is_a_4xx_with_pointer_and_writes_nothing(
    intake_gateway: LiveGateway, no_errors_logged: pytest.LogCaptureFixture, raw: bytes, status: int, pointer: str
) -> None:
    problem = await _problem(await _post_raw(intake_gateway, "/v1/instructions", raw), status)
    assert problem["errors"][0]["pointer"] == pointer
    assert await _count_instructions(intake_gateway) == 0


@pytest.mark.parametrize(("raw", "status", "pointer"), HOSTILE_BODIES)
async def test_hostile_hold_decision_body_is_a_4xx_with_pointer(
    intake_gateway: LiveGateway, no_errors_logged: pytest.LogCaptureFixture, raw: bytes, status: int, pointer: str
) -> None:
    finance = await intake_gateway.new_key("finance", ("finance",))
    path = "/v1/holds/ins_00000000000000000000000000/reject"
    problem = await _problem(await _post_raw(intake_gateway, path, raw, key=finance), status)
    assert problem["errors"][0]["pointer"] == pointer


async def test_lone_surrogate_in_a_real_instruction_is_refused_with_its_pointer(
    intake_gateway: LiveGateway, no_errors_logged: pytest.LogCaptureFixture
) -> None:
    body = example_instruction()
    body["creditor"]["name"] = "Nordic \ud800 AB"
    raw = json.dumps(body).encode()  # json.dumps escapes it as \ud800
    problem = await _problem(await _post_raw(intake_gateway, "/v1/instructions", raw), 422)
    assert problem["errors"][0]["pointer"] == "/creditor/name"
    assert await _count_instructions(intake_gateway) == 0


# -- 6. lesser: text rules, patterns, echoes ---------------------------------------------------------


@pytest.mark.parametrize("char", ["\u202e", "\u2066", "\x00", "\x1b"])
async def test_control_and_bidi_characters_in_a_name_are_refused(
    intake_gateway: LiveGateway, no_errors_logged: pytest.LogCaptureFixture, char: str
) -> None:
    body = example_instruction()
    body["creditor"]["name"] = f"Nordic {char}BA strap"
    problem = await _problem(await intake_gateway.post_instruction(body), 422)
    assert problem["errors"][0]["pointer"] == "/creditor/name"
    assert await _count_instructions(intake_gateway) == 0


async def test_nul_in_a_hold_comment_is_refused(
    intake_gateway: LiveGateway, no_errors_logged: pytest.LogCaptureFixture
) -> None:
    finance = await intake_gateway.new_key("finance", ("finance",))
    path = "/v1/holds/ins_00000000000000000000000000/approve"
    raw = json.dumps({"comment": "ok\x00"}).encode()
    problem = await _problem(await _post_raw(intake_gateway, path, raw, key=finance), 422)
    assert problem["errors"][0]["pointer"] == "/comment"


@pytest.mark.parametrize(
    ("counterparty", "currency", "limit"),
    [
        ("acme%0A", "EUR", "100"),  # a trailing newline used to make a second limit for "acme\n"
        ("acme", "EUR%0A", "100"),
    ],
)
async def test_trailing_newline_in_a_path_parameter_is_refused(
    intake_gateway: LiveGateway,
    no_errors_logged: pytest.LogCaptureFixture,
    counterparty: str,
    currency: str,
    limit: str,
) -> None:
    admin = await intake_gateway.new_key("ops", ("admin", "finance"))
    url = f"{intake_gateway.url}/v1/credit-limits/{counterparty}/{currency}"
    resp = await intake_gateway.session.put(url, json={"limit": limit}, headers=intake_gateway.headers(admin))
    await _problem(resp, 400)
    async with intake_gateway.session.get(
        f"{intake_gateway.url}/v1/credit-limits", headers=intake_gateway.headers(admin)
    ) as listed:
        assert (await listed.json())["items"] == []


async def test_non_ascii_digits_in_a_credit_limit_are_refused(
    intake_gateway: LiveGateway, no_errors_logged: pytest.LogCaptureFixture
) -> None:
    admin = await intake_gateway.new_key("ops", ("admin",))
    url = f"{intake_gateway.url}/v1/credit-limits/acme/EUR"
    resp = await intake_gateway.session.put(url, json={"limit": "\u0661\u0662"}, headers=intake_gateway.headers(admin))
    problem = await _problem(resp, 422)
    assert problem["errors"][0]["pointer"] == "/limit"


async def test_a_huge_invalid_value_is_not_echoed_back(
    intake_gateway: LiveGateway, no_errors_logged: pytest.LogCaptureFixture
) -> None:
    body = example_instruction(reference="R" * 60_000)
    resp = await intake_gateway.post_instruction(body)
    problem = await _problem(resp, 422)
    assert problem["errors"][0]["pointer"] == "/reference"
    assert len(json.dumps(problem)) < 2_000


# -- 5. unbounded history ---------------------------------------------------------------------------


async def test_refused_cancels_do_not_grow_the_history(
    intake_gateway: LiveGateway, no_errors_logged: pytest.LogCaptureFixture
) -> None:
    resp = await intake_gateway.post_instruction(example_instruction())
    instruction_id = (await resp.json())["id"]
    url = f"{intake_gateway.url}/v1/instructions/{instruction_id}/cancel"
    async with intake_gateway.session.post(url, headers=intake_gateway.headers()) as first:
        assert first.status == 200
    for _ in range(30):
        async with intake_gateway.session.post(url, headers=intake_gateway.headers()) as again:
            await _problem(again, 409)
    view = await intake_gateway.get_instruction(instruction_id)
    assert [(e["status"], e["outcome"]) for e in view["events"]] == [
        ("received", "applied"),
        ("cancelled", "applied"),
        ("cancelled", "duplicate"),
    ]
    assert view["events_next_cursor"] is None


async def test_events_are_paged(intake_gateway: LiveGateway) -> None:
    resp = await intake_gateway.post_instruction(example_instruction())
    instruction_id = (await resp.json())["id"]
    url = f"{intake_gateway.url}/v1/instructions/{instruction_id}/cancel"
    async with intake_gateway.session.post(url, headers=intake_gateway.headers()) as cancelled:
        assert cancelled.status == 200
    events_url = f"{intake_gateway.url}/v1/instructions/{instruction_id}/events"
    seen: list[int] = []
    cursor: str | None = None
    while True:
        params = {"limit": "1", **({"cursor": cursor} if cursor else {})}
        async with intake_gateway.session.get(events_url, params=params, headers=intake_gateway.headers()) as page:
            assert page.status == 200
            body = await page.json()
        seen += [e["sequence"] for e in body["items"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == [1, 2]
    async with intake_gateway.session.get(
        events_url, params={"cursor": "1\n"}, headers=intake_gateway.headers()
    ) as bad:
        await _problem(bad, 400)
