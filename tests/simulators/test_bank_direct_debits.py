"""The bank simulator's direct debit desk on loopback: pain.008 → pain.002, then camt.054 with R-transactions."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from aiohttp.test_utils import TestClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.partners.signing import verify_signature
from gateway.plugins.manager import Plugins
from gateway.recon.imports import import_file
from gateway.store.tables import statement_lines
from gateway_adapters.iso20022_bank.camt054 import collected_debits, r_transactions, read_camt054
from gateway_adapters.iso20022_bank.pain002 import parse_pain002
from gateway_adapters.iso20022_bank.pain008 import Creditor, DirectDebit, build_pain008, collection_statuses
from gateway_adapters.iso20022_bank.statements import read_camt054_statements
from gateway_simulators.iso20022_bank.direct_debits import DESK

from .conftest import signed

BankClient = Callable[..., Awaitable[TestClient]]
NOW = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)
ACME = Creditor("ACME Appliances GmbH", "DE89370400440532013000", "DE98ZZZ09999999999")
# debtor name → what the dd-returns scenario does with the collection
DEBTORS = [
    ("Paying Debtor GmbH", "settle"),
    ("Closed Account GmbH", "reject at submit AC04"),
    ("Refusing Debtor SARL", "refusal MS02"),
    ("Empty Account BV", "return AM04"),
    ("Refund Claimant SpA", "refund MD06"),
    ("No Mandate Oy", "refund MD01"),
]


def pain008(*names: str, message_id: str = "MSG-DD-1") -> bytes:
    debits = [
        DirectDebit(
            collection_id=f"col_{n:04d}",
            reference=f"INV-{n}",
            amount=Decimal("25.00") + n,
            currency="EUR",
            due_on=date(2026, 12, 21),
            sequence_type="FRST" if n % 2 else "RCUR",
            mandate_id=f"MANDATE-{n}",
            mandate_signed_on=date(2026, 11, 2),
            debtor_name=name,
            debtor_iban="NL91ABNA0417164300",
            creditor=ACME,
        )
        for n, name in enumerate(names, start=1)
    ]
    return build_pain008(debits, message_id=message_id, created_at=NOW)


async def answer(resp: Any) -> bytes:
    body: bytes = await resp.read()
    verify_signature(b"bank-callback-secret", body, resp.headers.get("X-Signature"))
    return body


async def test_round_trip_pain008_pain002_then_camt054_with_every_r_transaction(bank_client: BankClient) -> None:
    client = await bank_client(scenario="dd-returns", return_delay=0.01)
    body = pain008(*(name for name, _ in DEBTORS))

    resp = await client.post("/pain008", data=body, headers=signed(body, key="batch-1"))
    report = parse_pain002(await answer(resp))

    assert resp.status == 202
    assert report.original_message_id == "MSG-DD-1" and report.original_message_name == "pain.008.001.08"
    assert sorted((t.end_to_end_id, t.status, t.reason_code) for t in report.transactions) == [  # type: ignore[type-var]
        ("INV-1", "ACCP", None),
        ("INV-2", "RJCT", "AC04"),
        ("INV-3", "ACCP", None),
        ("INV-4", "ACCP", None),
        ("INV-5", "ACCP", None),
        ("INV-6", "ACCP", None),
    ]

    rejected = [(s.instruction_id, s.outcome) for s in collection_statuses(report) if s.status == "rejected"]
    assert [(i, o.kind if o else None) for i, o in rejected] == [("col_0002", "reject")]

    await client.app[DESK].idle()
    notification = await client.get("/_sim/camt054")
    reports = read_camt054(await notification.read())

    assert sorted(c.end_to_end_id or "" for c in collected_debits(reports)) == ["INV-1", "INV-4", "INV-5", "INV-6"]
    r = {
        x.end_to_end_id: (x.settled, x.outcome.kind, x.outcome.status, x.outcome.reason_code)
        for x in r_transactions(reports)
    }
    assert r == {
        "INV-3": (False, "refusal", "rejected", "MS02"),
        "INV-4": (True, "return", "returned", "AM04"),
        "INV-5": (True, "refund", "returned", "MD06"),
        "INV-6": (True, "refund", "returned", "MD01"),
    }
    (statement,) = read_camt054_statements(await (await client.get("/_sim/camt054")).read())
    assert statement.declared_count == len(statement.lines) == 7  # 4 collected + 3 returned; the refusal booked nothing
    assert {x.booked_on for x in statement.lines} == {date(2026, 12, 21)}

    listed = await (await client.get("/_sim/direct-debits")).json()
    assert sorted((c["end_to_end_id"], c["step"], c["reason_code"] or "") for c in listed) == [
        ("INV-1", "collected", ""),
        ("INV-2", "rejected", "AC04"),
        ("INV-3", "rejected", "MS02"),
        ("INV-4", "returned", "AM04"),
        ("INV-5", "returned", "MD06"),
        ("INV-6", "returned", "MD01"),
    ]
    assert all(c["debtor_iban"].startswith("*") for c in listed)


async def test_notifications_come_later_and_since_skips_what_was_seen(bank_client: BankClient) -> None:
    slow = {
        "name": "dd-slow-returns",
        "defaults": {"delays": {"settle": 0.5, "return": 0.5}},
        "rules": [
            {"name": "return-am04", "match": {"creditor_name": "Empty "}, "outcome": "return", "reason_code": "AM04"}
        ],
    }
    client = await bank_client(scenario=slow)
    body = pain008("Empty Account BV")
    await client.post("/pain008", data=body, headers=signed(body, key="batch-2"))

    nothing_yet = read_camt054(await (await client.get("/_sim/camt054")).read())
    assert nothing_yet[0].entries == ()
    for _ in range(300):
        if client.app[DESK].movements:
            break
        await asyncio.sleep(0.01)
    collected = read_camt054(await (await client.get("/_sim/camt054")).read())
    await client.app[DESK].idle()
    after = read_camt054(await (await client.get("/_sim/camt054?since=1")).read())

    assert [e.credit for e in collected[0].entries] == [True]
    assert [(e.credit, e.return_reason) for e in after[0].entries] == [(False, "AM04")]
    assert after[0].sequence == 2


async def test_the_same_batch_again_replays_the_answer_and_another_body_is_409(bank_client: BankClient) -> None:
    client = await bank_client(scenario="dd-returns")
    body = pain008("Paying Debtor GmbH")

    first = await client.post("/pain008", data=body, headers=signed(body, key="batch-3"))
    again = await client.post("/pain008", data=body, headers=signed(body, key="batch-3"))
    other = pain008("Paying Debtor GmbH", "Empty Account BV")
    conflict = await client.post("/pain008", data=other, headers=signed(other, key="batch-3"))
    reused = await client.post("/pain008", data=body, headers=signed(body, key="batch-4"))

    assert (first.status, again.status, conflict.status, reused.status) == (202, 202, 409, 409)
    assert await first.read() == await again.read()
    assert "IDEMPOTENCY_CONFLICT" in await conflict.text() and "col_0001" in await reused.text()
    assert len(client.app[DESK].collections) == 1


async def test_what_the_contract_rejects_the_simulator_rejects_with_ff01(bank_client: BankClient) -> None:
    client = await bank_client(scenario="dd-returns")
    broken = pain008("Paying Debtor GmbH").replace(b"<MndtId>MANDATE-1</MndtId>", b"<MndtId>MANDATE_1</MndtId>")

    resp = await client.post("/pain008", data=broken, headers=signed(broken, key="batch-5"))
    report = parse_pain002(await answer(resp))

    assert resp.status == 400
    assert (report.group_status, report.group_reason_code) == ("RJCT", "FF01")
    assert report.group_reason is not None and "MndtId" in report.group_reason
    assert client.app[DESK].collections == {}


async def test_unsigned_or_keyless_submissions_are_refused_and_journalled(bank_client: BankClient) -> None:
    client = await bank_client(scenario="dd-returns")
    body = pain008("Paying Debtor GmbH")

    unsigned = await client.post("/pain008", data=body, headers={"Idempotency-Key": "k"})
    keyless = await client.post("/pain008", data=body, headers=signed(body, key=None))
    ok = await client.post("/pain008", data=body, headers=signed(body, key="batch-6"))
    await client.app[DESK].idle()
    await client.get("/_sim/camt054")
    journal = (await (await client.get("/_sim/journal")).json())["entries"]

    assert (unsigned.status, keyless.status, ok.status) == (401, 400, 202)
    assert [(e["kind"], e["outcome"]) for e in journal if e["kind"] == "submit-pain008"] == [
        ("submit-pain008", "refused"),
        ("submit-pain008", "refused"),
        ("submit-pain008", "created"),
    ]
    assert {"answer-pain002", "camt054"} <= {e["kind"] for e in journal}
    assert all("NL91ABNA0417164300" not in (e.get("body") or "") for e in journal)  # IBANs masked in the journal


async def test_an_answer_lost_after_the_bank_took_the_file_is_replayed_on_resend(bank_client: BankClient) -> None:
    flaky = {
        "name": "dd-lost-answer",
        "faults": [
            {"kind": "http_error", "status": 503, "after": True, "times": 1},
            {"kind": "latency", "delay": 0.01},
        ],
    }
    client = await bank_client(scenario=flaky)
    body = pain008("Paying Debtor GmbH", "Another Debtor AG")

    lost = await client.post("/pain008", data=body, headers=signed(body, key="batch-7"))
    resent = await client.post("/pain008", data=body, headers=signed(body, key="batch-7"))
    report = parse_pain002(await answer(resent))
    journal = (await (await client.get("/_sim/journal?kind=submit-pain008")).json())["entries"]

    assert (lost.status, lost.headers.get("Retry-After"), resent.status) == (503, "1", 202)
    assert sorted(t.status for t in report.transactions) == ["ACCP", "ACCP"]
    assert len(client.app[DESK].collections) == 2  # taken once, not twice
    assert [(e["outcome"], e["http_status"], e["faults"]) for e in journal] == [
        ("created", 503, ["latency", "http_error"]),
        ("replayed", 202, ["latency"]),
    ]


async def test_the_simulators_camt054_imports_as_a_statement_once(bank_client: BankClient, engine: AsyncEngine) -> None:
    client = await bank_client(scenario="dd-returns", return_delay=0.01)
    body = pain008("Paying Debtor GmbH", "Empty Account BV", "Refund Claimant SpA")
    await client.post("/pain008", data=body, headers=signed(body, key="batch-8"))
    await client.app[DESK].idle()
    notification = await (await client.get("/_sim/camt054")).read()
    formats = Plugins().statement_formats()

    first = await import_file(engine, formats, notification, now=NOW)
    again = await import_file(engine, formats, notification, now=NOW)

    assert (first.format, first.as_dict()["lines"], [s.stored for s in again.statements]) == ("camt.054", 5, [False])
    async with engine.connect() as conn:
        kinds = sorted(
            (r.kind, r.reason_code or "", r.end_to_end_id) for r in (await conn.execute(select(statement_lines))).all()
        )
    assert kinds == [
        ("booked", "", "INV-1"),
        ("booked", "", "INV-2"),
        ("booked", "", "INV-3"),
        ("return", "AM04", "INV-2"),
        ("return", "MD06", "INV-3"),
    ]
