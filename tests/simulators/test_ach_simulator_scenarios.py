"""The ACH file-drop simulator plays scenarios: rules per entry, late returns, faults on the upload, journal, reset."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web
from aiohttp.test_utils import TestClient

from gateway.domain.clock import ManualClock
from gateway.errors import SignatureError
from gateway.partners.signing import verify_signature
from gateway_adapters.ach_nacha.adapter import API_KEY_HEADER, IDEMPOTENCY_HEADER
from gateway_adapters.ach_nacha.contracts import ENTRY_STATUS, FILE_ACKNOWLEDGEMENT, RETURN_FILES, errors
from gateway_adapters.ach_nacha.nacha import EntryInput, Originator, build_file, read_file, render, returns_in
from gateway_adapters.ach_nacha.statements import read_ach_settlement, read_nacha_statements
from gateway_simulators.ach_nacha import ODFI, create_app

API_KEY = "ach-api-key-for-tests"
SECRETS = {"api_key": API_KEY, "callback_secret": "ach-callback-secret-for-tests", "send_callbacks": False}
ORIGINATOR = Originator("021000021", "1234567890", "ODFI", "PARTNER GATEWAY", "021000021")

SCENARIO = """\
name: ach-test
partner: ach_nacha
seed: 4
defaults:
  delays: {settle: 10}
rules:
  - {name: late, match: {creditor_name: "(?i)closed"}, outcome: return, reason_code: R02, delays: {return: 172800}}
  - {name: held, match: {reference: "^HOLD"}, outcome: accept}
faults:
  - {kind: truncated_body, times: 1}
"""


def nacha_file(*entries: tuple[int, str, str]) -> bytes:
    items = [
        EntryInput("1234567890", "ACME", 22, "021000021", "12345678", 100 * n, ref, name, f"02100002{n:07d}")
        for n, ref, name in entries
    ]
    ach = build_file(ORIGINATOR, items, created_at=datetime(2026, 11, 25, 10, 30), effective_date=date(2026, 11, 27))
    return render(ach).encode()


async def upload(client: TestClient, file_id: str, body: bytes) -> tuple[int, str, str]:
    resp = await client.post("/files", data=body, headers={API_KEY_HEADER: API_KEY, IDEMPOTENCY_HEADER: file_id})
    return resp.status, resp.content_type, await resp.text()


async def test_entries_follow_the_rules_and_a_late_return_comes_days_later(aiohttp_client: Any, tmp_path: Path) -> None:
    clock = ManualClock(datetime(2026, 11, 25, 15, tzinfo=UTC))
    (tmp_path / "s.yaml").write_text(SCENARIO)
    settings = SECRETS | {"scenario": str(tmp_path / "s.yaml"), "clock": clock}
    client: TestClient = await aiohttp_client(create_app(settings))
    drop = client.app[ODFI]
    body = nacha_file((1, "INV-1", "Closed Account LLC"), (2, "HOLD-2", "Hudson Supply Co"), (3, "INV-3", "Acme Inc"))

    status, _, _ = await upload(client, "F1", body)  # the acknowledgement is malformed (truncated_body)...
    again = await upload(client, "F1", body)  # ...the resend with the same file id gets a readable one
    clock.advance(11)
    drop.tick()
    settled = {t: b.status for t, b in drop.entries.items()}
    clock.advance(172800)
    drop.tick()

    assert status == 200 and again[0] == 200 and '"status": "accepted"' in again[2]
    assert settled == {"021000020000001": "settled", "021000020000002": "accepted", "021000020000003": "settled"}
    assert drop.entries["021000020000001"].status == "returned"
    notices = returns_in(read_file(drop.returns[0]["text"]))
    assert [(n.original_trace, n.reason_code) for n in notices] == [("021000020000001", "R02")]
    created = [e for e in drop.journal.entries if e.kind == "submit" and e.outcome == "created"]
    assert sorted(e.end_to_end_id or "" for e in created) == ["HOLD-2", "INV-1", "INV-3"]
    files = [(e.outcome, e.faults) for e in drop.journal.entries if e.kind == "file"]
    assert files == [("accepted", []), ("answered", ["truncated_body"]), ("replayed", [])]


async def test_predict_reads_names_as_the_file_holds_them(aiohttp_client: Any) -> None:
    client: TestClient = await aiohttp_client(create_app(SECRETS))
    put = await client.put("/_sim/scenario", data=SCENARIO)
    asks = [
        {"reference": "INV-1", "amount": "10.00", "currency": "USD", "creditor_name": "Closed Account LLC"},
        {"reference": "hold-2", "amount": "10.00", "currency": "USD", "creditor_name": "Hudson"},
        {"reference": "INV-3", "amount": "10.00", "currency": "USD", "creditor_name": "Acme Inc"},
    ]

    predicted = await (await client.post("/_sim/predict", json=asks)).json()
    scenario = await (await client.get("/_sim/scenario")).json()

    assert put.status == 200
    assert predicted == ["returned", "submitted", "settled"]  # "hold-2" is "HOLD-2" in the file
    assert (scenario["name"], scenario["seed"]) == ("ach-test", 4)


async def test_a_bad_scenario_is_refused_with_its_line_and_changes_nothing(aiohttp_client: Any) -> None:
    client: TestClient = await aiohttp_client(create_app(SECRETS))
    await client.put("/_sim/scenario", data=SCENARIO)

    resp = await client.put("/_sim/scenario", data="name: x\nrules:\n  - {outcome: return}\n")

    error = (await resp.json())["error"]
    assert resp.status == 400
    assert (error["line"], error["errors"][0]["pointer"]) == (3, "/rules/0/reason_code")
    assert (await (await client.get("/_sim/scenario")).json())["name"] == "ach-test"


async def test_upload_faults_are_journaled_and_reset_forgets_everything(aiohttp_client: Any) -> None:
    scenario = (
        "name: down\nfaults:\n  - {kind: http_error, status: 503, retry_after: 2}\n  - {kind: reset, after: true}\n"
    )
    client: TestClient = await aiohttp_client(create_app(SECRETS))
    await client.put("/_sim/scenario", data=scenario)
    body = nacha_file((1, "INV-1", "Acme Inc"))

    first = await upload(client, "F9", body)
    try:
        await upload(client, "F9", body)
        dropped = False
    except Exception:  # the connection closes without an answer: the file is taken, the acknowledgement lost
        dropped = True
    third = await upload(client, "F9", body)
    journal = (await (await client.get("/_sim/journal", params={"kind": "file"})).json())["entries"]
    await client.post("/_sim/reset")
    after_reset = (await (await client.get("/_sim/journal")).json())["entries"]

    assert first[0] == 503 and dropped and third[0] == 200
    assert [(e["outcome"], e["faults"]) for e in journal] == [
        ("refused", ["http_error"]),
        ("accepted", []),
        ("dropped", ["reset"]),
        ("replayed", []),
    ]
    assert after_reset == [] and client.app[ODFI].entries == {}


async def test_a_settle_rule_with_a_c_code_sends_a_notification_of_change(aiohttp_client: Any) -> None:
    clock = ManualClock(datetime(2026, 11, 25, 15, tzinfo=UTC))
    client: TestClient = await aiohttp_client(create_app(SECRETS | {"clock": clock}))
    drop = client.app[ODFI]
    scenario = "name: noc\nrules:\n  - {match: {creditor_name: '(?i)moved'}, outcome: settle, reason_code: C01}\n"
    await client.put("/_sim/scenario", data=scenario)
    await upload(client, "F2", nacha_file((1, "INV-1", "Moved Account Inc"), (2, "INV-2", "Acme Inc")))

    clock.advance(1)
    drop.tick()
    clock.advance(1)
    drop.tick()  # notified once only

    notices = [n for r in drop.returns for n in returns_in(read_file(r["text"]))]
    assert [(n.original_trace, n.reason_code, n.kind, n.amount_cents) for n in notices] == [
        ("021000020000001", "C01", "change", 0)
    ]
    assert notices[0].information == "CORRECTED C01"
    assert {t: b.status for t, b in drop.entries.items()} == {
        "021000020000001": "settled",
        "021000020000002": "settled",
    }
    predicted = await client.post(
        "/_sim/predict", json=[{"reference": "X", "amount": "1", "currency": "USD", "creditor_name": "Moved"}]
    )
    assert await predicted.json() == ["settled"]


async def test_answers_fit_the_partner_contracts_and_statements_are_the_days_return_files(
    aiohttp_client: Any, tmp_path: Path
) -> None:
    clock = ManualClock(datetime(2026, 11, 25, 15, tzinfo=UTC))
    (tmp_path / "s.yaml").write_text(SCENARIO.replace("faults:\n  - {kind: truncated_body, times: 1}\n", ""))
    settings = SECRETS | {"scenario": str(tmp_path / "s.yaml"), "clock": clock}
    client: TestClient = await aiohttp_client(create_app(settings))
    drop = client.app[ODFI]
    auth = {API_KEY_HEADER: API_KEY}

    _, _, ack = await upload(client, "F1", nacha_file((1, "INV-1", "Closed Account LLC"), (2, "INV-2", "Acme Inc")))
    _, _, refused = await upload(client, "F2", b"not a nacha file")
    clock.advance(11)
    drop.tick()
    clock.advance(172800)
    entry = await (await client.get("/entries/021000020000001", headers=auth)).json()
    returns = await (await client.get("/returns?since=0", headers=auth)).json()
    day = clock().date().isoformat()
    statements = await (await client.get(f"/_sim/statements/{day}")).json()
    settled = await (await client.get("/_sim/statements/2026-11-25")).json()
    fetched = await client.get(f"/statements/{day}", headers=auth)
    unauthenticated = await client.get(f"/statements/{day}")
    bad = await client.get("/_sim/statements/yesterday")
    status = await (await client.get("/_sim/status")).json()

    assert errors(FILE_ACKNOWLEDGEMENT, json.loads(ack)) == [] and json.loads(ack)["status"] == "accepted"
    assert errors(FILE_ACKNOWLEDGEMENT, json.loads(refused)) == [] and json.loads(refused)["status"] == "rejected"
    assert errors(ENTRY_STATUS, entry) == [] and (entry["status"], entry["return_code"]) == ("returned", "R02")
    assert errors(RETURN_FILES, returns) == [] and len(returns["files"]) == 1
    assert [f["kind"] for f in statements["files"]] == ["returns"]
    # the adapter's fetch asks the same files behind the API key; the day's return file has one identity
    assert (await fetched.json())["files"] == statements["files"] and unauthenticated.status == 401
    # the day both entries settled: one batch, ONE debit line itemised by trace
    assert [f["kind"] for f in settled["files"]] == ["settlement"]
    (report,) = read_ach_settlement(settled["files"][0]["text"].encode())
    (batch,) = report.lines
    assert (report.statement_id, batch.amount_minor, batch.credit) == ("091000019/2026-11-25", 300, False)
    assert [(i.reference, i.amount_minor) for i in batch.items] == [
        ("021000020000001", -100),
        ("021000020000002", -200),
    ]
    assert statements["breaks"] == []
    # what `gateway recon import` reads: the return, with its code and the trace it returns
    (read,) = read_nacha_statements(statements["files"][0]["text"].encode())
    assert [(line.kind, line.reason_code, line.original_reference) for line in read.lines] == [
        ("return", "R02", "021000020000001")
    ]
    assert bad.status == 400 and (await bad.json())["error"]["code"] == "BAD_DATE"
    assert (status["payments"], status["files"], status["return_files"], status["scenario"]) == (2, 2, 1, "ach-test")
    assert any(e.kind == "statement" for e in drop.journal.entries)


LAYERS = """\
name: ach-layers
partner: ach_nacha
rules:
  - {match: {creditor_name: "(?i)closed"}, outcome: return, reason_code: R02}
faults:
  - {kind: http_error, exchange: status, status: 503, retry_after: 0}
  - {kind: truncated_body, exchange: status}
  - {kind: callback_wrong_key}
  - {kind: callback_replay, days: 3}
  - {kind: callback_duplicate, copies: 2}
"""


async def test_status_and_return_file_faults_strike_their_own_layer(aiohttp_client: Any, aiohttp_server: Any) -> None:
    received: list[tuple[str, bytes]] = []

    async def receiver(request: web.Request) -> web.Response:
        body = await request.read()
        try:  # the gateway's check, as the adapter makes it
            verify_signature(SECRETS["callback_secret"].encode(), body, request.headers.get("X-Signature"))
        except SignatureError:
            received.append(("refused", body))
            return web.Response(status=401)
        received.append(("taken", body))
        return web.Response(status=204)

    hook = web.Application()
    hook.router.add_post("/returns", receiver)
    gateway = await aiohttp_server(hook)
    settings = SECRETS | {"send_callbacks": True, "scenario": yaml.safe_load(LAYERS), "settle_delay": 0}
    client: TestClient = await aiohttp_client(create_app(settings | {"return_delay": 0}))
    drop = client.app[ODFI]
    auth = {API_KEY_HEADER: API_KEY}
    body = nacha_file((1, "INV-1", "Closed Account LLC"))
    await client.post(
        "/files",
        data=body,
        headers={**auth, IDEMPOTENCY_HEADER: "F1", "X-Callback-Url": str(gateway.make_url("/returns"))},
    )

    first = await client.get("/entries/021000020000001", headers=auth)  # 503 and cut short: one fault each, once
    second = await client.get("/entries/021000020000001", headers=auth)
    third = await client.get("/entries/021000020000001", headers=auth)
    drop.tick()
    await drop.idle()

    assert first.status == 503 and second.status == 200 and third.status == 200
    assert (await third.json())["status"] == "returned"
    assert [(e.http_status, e.faults) for e in drop.journal.select({"kind": "status", "direction": "in"})] == [
        (503, ["http_error"]),
        (200, ["truncated_body"]),
        (200, []),
    ]
    # a replayed and a forged copy first (refused), then the real file twice (duplicated)
    assert [what for what, _ in received] == ["refused", "refused", "taken", "taken"]
    assert len({b for _, b in received}) == 1
    pushes = [(e.outcome, e.faults) for e in drop.journal.select({"kind": "callback"})]
    assert pushes == [
        ("refused", ["callback_replay"]),
        ("refused", ["callback_wrong_key"]),
        ("delivered", ["callback_duplicate"]),
        ("delivered", ["callback_duplicate"]),
    ]


BREAKS = """\
name: ach-breaks
partner: ach_nacha
rules:
  - {match: {creditor_name: "(?i)closed"}, outcome: return, reason_code: R02}
statement:
  breaks:
    - {kind: missing_entry, match: {reference: "^INV-1$"}}
    - {kind: duplicate_entry, match: {reference: "^INV-2$"}}
    - {kind: wrong_amount, amount_delta: "0.50", match: {reference: "^INV-3$"}}
    - {kind: unknown_entry, count: 2}
"""


async def test_statement_breaks_strike_the_days_return_file_as_the_core_strikes_statements(
    aiohttp_client: Any,
) -> None:
    clock = ManualClock(datetime(2026, 11, 25, 15, tzinfo=UTC))
    settings = SECRETS | {"scenario": yaml.safe_load(BREAKS), "clock": clock, "settle_delay": 0, "return_delay": 0}
    client: TestClient = await aiohttp_client(create_app(settings))
    entries = [(1, "INV-1", "Closed A"), (2, "INV-2", "Closed B"), (3, "INV-3", "Closed C"), (4, "INV-4", "Closed D")]
    await upload(client, "F1", nacha_file(*entries))
    clock.advance(1)
    client.app[ODFI].tick()
    clock.advance(1)

    resp = await client.get(f"/_sim/statements/{clock().date().isoformat()}")

    answer = await resp.json()
    (statement,) = read_nacha_statements(answer["files"][0]["text"].encode())
    lines = sorted((line.original_reference or "", line.amount_minor) for line in statement.lines)
    strangers = [cents for trace, cents in lines if trace.startswith("091000019")]
    assert lines == [
        ("021000020000002", 200),
        ("021000020000002", 200),  # duplicate_entry
        ("021000020000003", 350),  # wrong_amount: 300 + 50 cents
        ("021000020000004", 400),
        ("091000019000000", strangers[0]),  # unknown_entry, twice: traces no payment explains
        ("091000019000001", strangers[1]),
    ]  # INV-1 is missing (missing_entry)
    kinds = sorted(b["kind"] for b in answer["breaks"])
    assert kinds == ["duplicate_entry", "missing_entry", "unknown_entry", "unknown_entry", "wrong_amount"]
    assert json.loads(resp.headers["X-Sim-Breaks"]) == answer["breaks"]
    (journaled,) = client.app[ODFI].journal.select({"kind": "statement"})
    assert journaled.faults == ["duplicate_entry", "missing_entry", "unknown_entry", "wrong_amount"]
