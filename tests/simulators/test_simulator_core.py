"""The simulator core through the ISO 20022 bank: seeded replay, the journal, statements (camt.053) and breaks."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from gateway.partners.signing import sign_payload
from gateway_adapters.iso20022_bank.camt053 import read_camt053
from gateway_simulators.iso20022_bank import BANK, create_app

SECRETS = {"request_secret": "bank-request-secret", "callback_secret": "bank-callback-secret"}
FAST = {"callback_delay": 0.0, "settle_delay": 0.0, "return_delay": 0.0, "callback_backoff": 0.0}
Pain001 = Callable[..., bytes]
Sign = Callable[..., dict[str, str]]

REPLAY = {
    "name": "replay",
    "seed": 21,
    "rules": [
        {"match": {"probability": 0.4}, "outcome": "reject", "reason_code": "AM04"},
        {"match": {"reference": "-3$"}, "outcome": "return", "reason_code": "AC04"},
    ],
    "faults": [
        {
            "kind": "latency",
            "exchange": "any",
            "probability": 0.5,
            "delay": {"distribution": "uniform", "low": 0, "high": 0.01},
        },
        {"kind": "http_error", "status": 503, "retry_after": 0, "probability": 0.5},
        {"kind": "wrong_amount", "probability": 0.5},
        {"kind": "callback_duplicate", "probability": 0.5},
        {"kind": "callback_missing", "probability": 0.3},
        {"kind": "callback_out_of_order", "probability": 0.3, "times": 2},
    ],
}
_TIMES = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?([+-]\d{2}:\d{2}|Z)?")


async def _run(
    aiohttp_client: Any, aiohttp_server: Any, pain001: Pain001, sign: Sign, seed: int
) -> list[dict[str, Any]]:
    from aiohttp import web

    receiver = web.Application()

    async def ok(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(status=204)

    receiver.router.add_post("/callbacks", ok)
    server = await aiohttp_server(receiver)
    client: TestClient = await aiohttp_client(create_app({**SECRETS, **FAST, "scenario": REPLAY, "seed": seed}))
    for i in range(8):
        body = pain001(id=f"ins_replay_{i}", reference=f"REF-{i}")
        headers = sign(body, key=f"ins_replay_{i}", callback_url=str(server.make_url("/callbacks")))
        for _ in range(3):  # a client that retries 503s
            resp = await client.post("/pain001", data=body, headers=headers)
            if resp.status != 503:
                break
        await client.app[BANK].idle()
        status = await client.get(
            f"/payments/ins_replay_{i}/status", headers={"X-Signature": sign_payload(b"bank-request-secret", b"")}
        )
        assert status.status == 200
    journal = (await (await client.get("/_sim/journal")).json())["entries"]
    for entry in journal:
        entry.pop("at")
        entry["path"] = re.sub(r":\d+/", ":PORT/", entry["path"])
        entry["body"] = _TIMES.sub("T", entry["body"] or "")
    return journal


async def test_same_seed_replays_the_same_journal(
    aiohttp_client: Any, aiohttp_server: Any, pain001: Pain001, sign: Sign
) -> None:
    first = await _run(aiohttp_client, aiohttp_server, pain001, sign, seed=21)
    again = await _run(aiohttp_client, aiohttp_server, pain001, sign, seed=21)
    other = await _run(aiohttp_client, aiohttp_server, pain001, sign, seed=22)

    assert first == again
    assert first != other
    faults = {f for e in first for f in e["faults"]}
    assert {"http_error", "wrong_amount", "callback_duplicate"} <= faults


async def test_journal_masks_ibans_and_filters_by_correlation_id(
    bank_client: Any, pain001: Pain001, sign: Sign
) -> None:
    client = await bank_client()
    for i in (1, 2):
        body = pain001(id=f"ins_j{i}", reference=f"INV-{i}")
        await client.post("/pain001", data=body, headers=sign(body, key=f"ins_j{i}"))

    text = await (await client.get("/_sim/journal")).text()
    one = (await (await client.get("/_sim/journal", params={"instruction_id": "ins_j2"})).json())["entries"]
    by_ref = await (await client.get("/_sim/journal", params={"end_to_end_id": "INV-1", "kind": "submit"})).json()
    bad = await client.get("/_sim/journal", params={"colour": "red"})

    assert "FR1420041010050500013M02606" not in text and "DE89370400440532013000" not in text
    assert "******************2606" in text
    assert [(e["kind"], e["outcome"], e["instruction_id"]) for e in one] == [("submit", "created", "ins_j2")]
    assert one[0]["partner_reference"].startswith("SIMB") and one[0]["message_id"] == "ins_j2"
    assert [e["instruction_id"] for e in by_ref["entries"]] == ["ins_j1"]
    assert bad.status == 400


def _settle(outcome: str, reason: str | None = None) -> dict[str, Any]:
    return {"outcome": outcome, **({"reason_code": reason} if reason else {})}


async def _statement_of_today(client: TestClient) -> tuple[bytes, list[dict[str, Any]]]:
    today = datetime.now(UTC).date().isoformat()
    resp = await client.get(f"/_sim/statements/{today}")
    assert resp.status == 200
    import json

    return await resp.read(), json.loads(resp.headers["X-Sim-Breaks"])


async def test_statement_is_a_camt053_of_what_was_settled_and_returned(
    bank_client: Any, pain001: Pain001, sign: Sign
) -> None:
    scenario = {
        "name": "statement",
        "rules": [
            {"match": {"reference": "^RET-"}, **_settle("return", "AC04")},
            {"match": {"reference": "^REJ-"}, **_settle("reject", "AM04")},
        ],
    }
    client = await bank_client(**FAST, scenario=scenario)
    for i, (ref, amount) in enumerate(
        [("SET-1", "100.00"), ("SET-2", "250.50"), ("RET-1", "40.00"), ("REJ-1", "9.99")]
    ):
        body = pain001(id=f"ins_s{i}", reference=ref, amount=amount)
        await client.post("/pain001", data=body, headers=sign(body, key=f"ins_s{i}"))
    await client.app[BANK].idle()

    body, injected = await _statement_of_today(client)
    (statement,) = read_camt053(body)

    assert injected == []
    assert b"camt.053.001.08" in body
    assert statement.account == "DE89370400440532013000" and statement.currency == "EUR"
    rows = sorted((e.end_to_end_ids, e.amount, e.credit, e.return_reason) for e in statement.entries)
    assert rows == [
        (("RET-1",), Decimal("40.00"), False, None),
        (("RET-1",), Decimal("40.00"), True, "AC04"),
        (("SET-1",), Decimal("100.00"), False, None),
        (("SET-2",), Decimal("250.50"), False, None),
    ]
    balances = {b.code: b.amount for b in statement.balances}
    assert balances == {"OPBD": Decimal("1000000.00"), "CLBD": Decimal("1000000.00") - Decimal("350.50")}
    assert all(e.status == "BOOK" and e.instruction_ids for e in statement.entries)
    other_day = await client.get("/_sim/statements", params={"date": "2001-01-01"})
    assert read_camt053(await other_day.read()) == []
    assert (await client.get("/_sim/statements/yesterday")).status == 400


@pytest.mark.parametrize(
    ("kind", "check"),
    [
        ("missing_entry", lambda refs, amounts: "BRK-1" not in refs and "OK-1" in refs),
        ("wrong_amount", lambda refs, amounts: amounts["BRK-1"] == [Decimal("100.01")]),
        ("duplicate_entry", lambda refs, amounts: amounts["BRK-1"] == [Decimal("100.00")] * 2),
        ("unknown_entry", lambda refs, amounts: len([r for r in refs if r.startswith("UNKNOWN-")]) == 2),
    ],
)
async def test_statement_breaks_are_injected_as_the_scenario_says(
    bank_client: Any, pain001: Pain001, sign: Sign, kind: str, check: Callable[..., bool]
) -> None:
    brk: dict[str, Any] = {"kind": kind}
    if kind == "unknown_entry":
        brk["count"] = 2
    else:
        brk["match"] = {"reference": "^BRK-"}
    client = await bank_client(**FAST, scenario={"name": "breaks", "statement": {"breaks": [brk]}})
    for i, ref in enumerate(("BRK-1", "OK-1")):
        body = pain001(id=f"ins_b{i}", reference=ref, amount="100.00")
        await client.post("/pain001", data=body, headers=sign(body, key=f"ins_b{i}"))
    await client.app[BANK].idle()

    body, injected = await _statement_of_today(client)
    (statement,) = read_camt053(body)
    refs = [r for e in statement.entries for r in e.end_to_end_ids]
    amounts: dict[str, list[Decimal]] = {}
    for e in statement.entries:
        amounts.setdefault(e.end_to_end_ids[0], []).append(e.amount)

    assert check(refs, amounts), (refs, amounts)
    assert {b["kind"] for b in injected} == {kind}
    (entry,) = (await (await client.get("/_sim/journal", params={"kind": "statement"})).json())["entries"]
    assert entry["faults"] == [kind]


@pytest.mark.parametrize("name", ["camt053.v2.minimal.xml", "camt053.v4.xml", "camt053.v8.xml"])
def test_the_statement_reader_reads_real_camt053_files(partner_files: Path, name: str) -> None:
    (statement,) = read_camt053((partner_files / "camt053" / name).read_bytes())

    assert statement.statement_id == "253EURNL26VAYB8060476890"
    assert {b.code for b in statement.balances} >= {"OPBD", "CLBD"}
    (entry,) = statement.entries
    assert entry.amount > 0 and entry.credit and entry.currency
    assert entry.status == "BOOK"
