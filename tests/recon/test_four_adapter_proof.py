"""The reconciliation proof (issue 14): a day of mixed payments across the four adapters on their simulators,
each partner's statements fetched by the statement-fetch job's code with the simulators' injected breaks, bank
fees deducted, an ACH batch settled as ONE line, a card payout net of fees → every injected break is found,
nothing else is flagged, and the matched payments are neither in transit nor waiting for a statement.

What each partner serves and what is injected into it:

- the bank (``iso20022_bank``, EUR, camt.053): a missing entry, a wrong amount (40.00: beyond any fee), a
  duplicate entry, an unknown entry, a fee (2.50 more taken than the payment: the simulator's ``wrong_amount``
  within the fee tolerance), and a payment the bank settled while the gateway never heard (its callback and
  every status answer lost: submitted here, debited there);
- the ODFI (``ach_nacha``, USD): the day's settlement report (the five entries of the cut-off's file as ONE
  debit of their total plus 0.15 per entry), its return file (an entry returned there that the gateway still
  has as settled: return files are not pushed; one it saw returned by its poll, matched to that payment;
  plus an unknown return) and a notification of change;
- the card acquirer (``card_acquirer``, EUR): the day's payout batch, one line net of the payout's fee;
- the instant rail (``instant_rtp``, USD, its account's camt.053: each payment settled on its own): a
  missing entry, a wrong amount (40.00), a duplicate entry and an unknown entry;
- the business unit's control totals: USD says one payment more than it sent.

Runs on SQLite and (with GATEWAY_TEST_DATABASE_URL) PostgreSQL.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from gateway.recon.fetch import StatementFetcher
from gateway.recon.rules import DEFAULT_RECON_FILE
from gateway.store.tables import ledger_entries, ledger_postings
from gateway_adapters.ach_nacha.adapter import AchNachaAdapter
from gateway_simulators.ach_nacha import ODFI
from tests.support import FINAL, Database, LiveGateway, example_instruction, start_gateway, stop_gateway

ACH_FEE = 15  # cents the ODFI takes per settled entry

BANK_SCENARIO = {
    "name": "recon-proof-bank",
    "rules": [
        {
            "name": "silent",  # settled at the bank, and the gateway is never told
            "match": {"creditor_name": "(?i)^silent "},
            "outcome": "settle",
            "faults": [
                {"kind": "callback_missing", "times": 1000},
                {"kind": "http_error", "exchange": "status", "status": 503, "times": 1000},
            ],
        }
    ],
}

ACH_SCENARIO = {
    "name": "recon-proof-ach",
    "partner": "ach_nacha",
    "rules": [
        {"name": "noc", "match": {"creditor_name": "(?i)^new account "}, "outcome": "settle", "reason_code": "C01"},
        {"name": "late-return", "match": {"creditor_name": "(?i)^closed "}, "outcome": "return", "reason_code": "R02"},
        {
            "name": "early-return",  # returned as it settles: the gateway's poll sees it returned before the statement
            "match": {"creditor_name": "(?i)^early "},
            "outcome": "return",
            "reason_code": "R03",
            "delays": {"return": 0},
        },
    ],
    "statement": {"breaks": [{"kind": "unknown_entry", "count": 1}]},
}


@pytest.fixture
async def proof_gateway(database: Database, tmp_path: Path) -> AsyncIterator[LiveGateway]:
    """All four partners on their simulators; a bank fee up to 5.00 (or 1 %) is confirmed and posted as a fee,
    and a payment is missing as soon as its partner's statement of the day leaves it out."""
    rules = tmp_path / "reconciliation.yaml"
    text = DEFAULT_RECON_FILE.read_text(encoding="utf-8").replace("missing_after_days: 2", "missing_after_days: 0")
    fee_rule = (
        "    explains: fee                       # confirming it posts the difference as a fee\n    status: suggested\n"
    )
    assert fee_rule in text
    rules.write_text(text.replace(fee_rule, "    explains: fee\n"), encoding="utf-8")
    gw = await start_gateway(
        database,
        sim_overrides={
            "ach_nacha": {
                "settle_delay": 0.1,
                "return_delay": 3.0,  # the gateway has seen it settle long before
                "send_callbacks": False,  # returns and changes reach the gateway only on the statement
                "entry_fee_cents": ACH_FEE,
                "scenario": ACH_SCENARIO,
            }
        },
        reconciliation__file=str(rules),
        dispatch__status_poll_interval_seconds=0.2,
        dispatch__status_poll_after_seconds=0,
        dispatch__backoff_base_seconds=0.05,
        dispatch__backoff_max_seconds=0.2,
    )
    try:
        yield gw
    finally:
        await stop_gateway(gw)


async def _call(gw: LiveGateway, method: str, path: str, key: str, status: int = 200, **kw: Any) -> Any:
    async with gw.session.request(method, gw.url + path, headers=gw.headers(key), **kw) as resp:
        assert resp.status == status, await resp.text()
        return await resp.json(content_type=None)


async def _post(gw: LiveGateway, body: dict[str, Any]) -> str:
    resp = await gw.post_instruction(body)
    assert resp.status == 202, await resp.text()
    return str((await resp.json())["id"])


def _bank(name: str) -> dict[str, Any]:
    return example_instruction(creditor={**example_instruction()["creditor"], "name": name})


def _usd(name: str, amount: str, **changes: Any) -> dict[str, Any]:
    body = example_instruction(
        currency="USD",
        amount=amount,
        debtor={"name": "HE Appliances US LLC", "account": {"number": "123456789", "routing": "011000015"}},
        creditor={"name": name, "account": {"number": "987654321", "routing": "021000021"}},
        **changes,
    )
    del body["requested_execution_date"]
    return body


async def _balances(gw: LiveGateway, instruction_ids: list[str], accounts: list[str]) -> dict[str, int]:
    """Each account's balance from the ledger entries of these payments."""
    async with gw.runtime.engine.connect() as conn:
        rows = await conn.execute(
            select(ledger_postings.c.account, ledger_postings.c.amount)
            .join(ledger_entries, ledger_entries.c.id == ledger_postings.c.entry_id)
            .where(ledger_entries.c.instruction_id.in_(instruction_ids), ledger_postings.c.account.in_(accounts))
        )
        out = dict.fromkeys(accounts, 0)
        for account, amount in rows.all():
            out[account] += amount
        return out


async def _account(gw: LiveGateway, account: str) -> int:
    async with gw.runtime.engine.connect() as conn:
        return sum(
            (await conn.scalars(select(ledger_postings.c.amount).where(ledger_postings.c.account == account))).all()
        )


def _minor(amount: str) -> int:
    return int(amount.replace(".", "").replace("-", "")) * (-1 if amount.startswith("-") else 1)


async def test_a_day_across_four_adapters_finds_every_injected_break_and_nothing_else(
    proof_gateway: LiveGateway,
) -> None:
    gw = proof_gateway
    finance = await gw.new_key("treasury", ("finance",))
    bank_sim, ach_sim = gw.simulators["iso20022_bank"].url, gw.simulators["ach_nacha"].url
    async with gw.session.put(f"{bank_sim}/_sim/scenario", json=BANK_SCENARIO) as resp:
        assert resp.status == 200, await resp.text()

    # the day's payments
    bank = {n: await _post(gw, _bank(f"{n.title()} Payee GmbH")) for n in ("missing", "wrong", "dup", "fee", "plain")}
    bank["silent"] = await _post(gw, _bank("Silent Payee GmbH"))
    ach = {
        "plain1": await _post(gw, _usd("Hudson Supply Co", "1250.00")),
        "plain2": await _post(gw, _usd("Acme Supplies Inc", "310.25")),
        "noc": await _post(gw, _usd("New Account Inc", "99.99")),
        "returned": await _post(gw, _usd("Closed Account LLC", "42.00")),
        "early": await _post(gw, _usd("Early Return Corp", "18.50")),
    }
    card = await _post(
        gw,
        example_instruction(
            type="payout", amount="250.00", creditor={"name": "Nordic Parts AB", "account": {"wallet": "wal_np_01"}}
        ),
    )
    instant = {
        n: await _post(gw, _usd(f"{n.title()} Instant Inc", amount, urgency="instant"))
        for n, amount in (("plain", "75.00"), ("missing", "60.00"), ("wrong", "120.00"), ("dup", "20.00"))
    }

    for instruction_id in ach.values():
        await gw.wait_for(instruction_id, lambda v: v["status"] == "submitted")
    adapter = gw.runtime.adapters["ach_nacha"]
    assert isinstance(adapter, AchNachaAdapter)
    await adapter.run_cutoff()  # one file: the five entries are one batch
    views = {}
    for instruction_id in [*bank.values(), *ach.values(), card, *instant.values()]:
        if instruction_id != bank["silent"]:
            views[instruction_id] = await gw.wait_for(instruction_id, lambda v: v["status"] in FINAL)
    statuses = {k: v["status"] for k, v in views.items()}
    assert set(statuses.values()) == {"settled", "returned"} and statuses.pop(ach["early"]) == "returned", statuses
    assert {v["adapter"] for v in views.values()} == {"iso20022_bank", "ach_nacha", "card_acquirer", "instant_rtp"}
    silent = await gw.get_instruction(bank["silent"])
    assert silent["status"] == "submitted"  # the bank settled it; the gateway was never told
    # the ODFI returns one entry after it settled; return files are not pushed, so the gateway still says settled
    async with gw.session.get(f"{ach_sim}/_sim/entries") as resp:
        entries = {e["trace"]: e for e in await resp.json()}
    returned_trace = views[ach["returned"]]["partner_reference"]
    for _ in range(100):
        if entries[returned_trace]["status"] == "returned":
            break
        await asyncio.sleep(0.1)
        async with gw.session.post(f"{ach_sim}/_sim/advance") as resp:
            assert resp.status == 200
        async with gw.session.get(f"{ach_sim}/_sim/entries") as resp:
            entries = {e["trace"]: e for e in await resp.json()}
    assert entries[returned_trace]["status"] == "returned"
    assert (await gw.get_instruction(ach["returned"]))["status"] == "settled"

    # the bank's statement breaks, as the simulator injects them
    scenario = {
        **BANK_SCENARIO,
        "statement": {
            "opening_balance": "1000000.00",
            "breaks": [
                {"kind": "missing_entry", "match": {"reference": views[bank["missing"]]["reference"]}},
                {
                    "kind": "wrong_amount",
                    "amount_delta": "40.00",
                    "match": {"reference": views[bank["wrong"]]["reference"]},
                },
                {"kind": "duplicate_entry", "match": {"reference": views[bank["dup"]]["reference"]}},
                {
                    "kind": "wrong_amount",
                    "amount_delta": "2.50",
                    "match": {"reference": views[bank["fee"]]["reference"]},
                },
                {"kind": "unknown_entry", "count": 1},
            ],
        },
    }
    async with gw.session.put(f"{bank_sim}/_sim/scenario", json=scenario) as resp:
        assert resp.status == 200, await resp.text()
    # and the instant rail's
    instant_breaks = {
        "name": "recon-proof-instant",
        "statement": {
            "breaks": [
                {"kind": "missing_entry", "match": {"reference": views[instant["missing"]]["reference"]}},
                {
                    "kind": "wrong_amount",
                    "amount_delta": "40.00",
                    "match": {"reference": views[instant["wrong"]]["reference"]},
                },
                {"kind": "duplicate_entry", "match": {"reference": views[instant["dup"]]["reference"]}},
                {"kind": "unknown_entry", "count": 1},
            ]
        },
    }
    rtp_sim = gw.simulators["instant_rtp"].url
    async with gw.session.put(f"{rtp_sim}/_sim/scenario", json=instant_breaks) as resp:
        assert resp.status == 200, await resp.text()

    # the business unit's control totals: EUR right, USD one payment too many
    today = datetime.now(UTC).date()
    eur = [v for v in views.values() if v["currency"] == "EUR"] + [silent]
    usd = [v for v in views.values() if v["currency"] == "USD"]

    def total(vs: list[dict[str, Any]], currency: str, extra: int = 0) -> dict[str, Any]:
        cents = sum(_minor(v["amount"]) for v in vs)
        return {"currency": currency, "count": len(vs) + extra, "amount": f"{cents // 100}.{cents % 100:02d}"}

    totals = {"date": today.isoformat(), "totals": [total(eur, "EUR"), total(usd, "USD", extra=1)]}
    await _call(gw, "POST", "/v1/control-totals", gw.key, json=totals)

    # the day is over: the statement-fetch job asks every partner that serves statements
    runtime = gw.runtime
    tomorrow = datetime.now(UTC) + timedelta(days=1)
    fetcher = StatementFetcher(runtime.engine, lambda: tomorrow, runtime.adapters, runtime.statement_formats, days=1)
    fetched = await fetcher.fetch()
    again = await fetcher.fetch()
    run = await _call(gw, "POST", "/v1/recon/run", finance)
    rerun = await _call(gw, "POST", "/v1/recon/run", finance)
    found = (await _call(gw, "GET", "/v1/recon/breaks", finance))["items"]

    # every partner that serves statements was asked; each file stored once
    assert sorted(runtime.statement_fetcher.sources()) == ["ach_nacha", "card_acquirer", "instant_rtp", "iso20022_bank"]
    day = today.isoformat()
    assert sorted((f.partner, f.name, f.outcome, f.lines) for f in fetched.files) == [
        ("ach_nacha", f"ach changes {day} #2", "stored", 1),  # the notification of change
        ("ach_nacha", f"ach returns {day}", "stored", 3),  # the two returns, and the unknown one injected
        ("ach_nacha", f"ach settlement {day}", "stored", 1),  # the batch: ONE line
        ("card_acquirer", f"card settlement {day}", "stored", 1),  # the payout batch: one line net of fees
        ("instant_rtp", f"rtp camt.053 {day}", "stored", 5),  # 4 payments - missing + duplicate + unknown
        ("iso20022_bank", f"camt.053 {day}", "stored", 7),  # 6 payments - missing + duplicate + unknown
        ("iso20022_bank", "camt.054 after 0", "empty", 0),
    ]
    assert [(f.outcome, f.statements) for f in again.files if f.outcome != "empty"] == [("known", 0)] * 6
    assert run == {
        "lines": 15,  # booked lines, and the return matched to the payment it returns
        # the bank's plain, duplicated (first line) and fee payments; the ACH and card batches; the early return;
        # the instant rail's plain and duplicated (first line) payments
        "confirmed": 8,
        "suggested": 2,  # the wrong amounts
        "unmatched": 5,  # the duplicate lines, the unknown lines, the silent payment's line
        "breaks_opened": 13,
        "breaks_closed": 0,
    }

    # every injected break is found, and nothing else
    expected = sorted(
        [
            ("missing_on_statement", "iso20022_bank", bank["missing"]),
            ("amount_mismatch", "iso20022_bank", None),
            ("duplicate", "iso20022_bank", bank["dup"]),
            ("unexpected_line", "iso20022_bank", None),
            ("status_mismatch", "iso20022_bank", bank["silent"]),  # debited there, submitted here
            ("status_mismatch", "ach_nacha", ach["returned"]),  # settled here, returned there
            ("notification_of_change", "ach_nacha", ach["noc"]),
            ("unexpected_line", "ach_nacha", None),  # a return of nothing we sent
            ("missing_on_statement", "instant_rtp", instant["missing"]),
            ("amount_mismatch", "instant_rtp", None),
            ("duplicate", "instant_rtp", instant["dup"]),
            ("unexpected_line", "instant_rtp", None),
            ("upstream_total_mismatch", "bu:erp-europe", None),
        ],
        key=str,
    )
    got = sorted(((b["kind"], b["source"], b["instruction_id"]) for b in found), key=str)
    assert got == expected, [(b["kind"], b["source"], b["instruction_id"], b["detail"]) for b in found]
    assert (rerun["breaks_opened"], rerun["breaks_closed"]) == (0, 0), rerun
    mismatches = [b for b in found if b["kind"] == "amount_mismatch"]
    assert [b["amount"].lstrip("-") for b in mismatches] == ["40.00", "40.00"], mismatches

    # matched: the bank's plain, duplicate (first line) and fee payments; the ACH batch (ONE line, five
    # entries, the early return's line too); the card payout batch; the instant rail's plain and duplicate payments
    matched = [bank["plain"], bank["dup"], bank["fee"], *ach.values(), card, instant["plain"], instant["dup"]]
    for adapter_name in ("iso20022_bank", "ach_nacha", "card_acquirer", "instant_rtp"):
        ids = [i for i in matched if views[i]["adapter"] == adapter_name]
        accounts = [f"partner:{adapter_name}:in_transit", f"partner:{adapter_name}:bank"]
        assert await _balances(gw, ids, accounts) == dict.fromkeys(accounts, 0), adapter_name
    # fees: the bank's 2.50, the ODFI's 0.15 per entry, the acquirer's payout fee, each an adjustment entry
    assert await _account(gw, "fees:iso20022_bank") == 250
    assert await _account(gw, "fees:ach_nacha") == ACH_FEE * 5
    assert await _account(gw, "fees:card_acquirer") > 0
    # the ACH batch: ONE debit of the five entries plus fees, less the early return: as the statements say
    ach_total = sum(_minor(views[i]["amount"]) for i in ach.values())
    early = _minor(views[ach["early"]]["amount"])  # settled in the batch, and back on the return file
    ach_suspense = sum(
        _minor(b["amount"]) for b in found if b["source"] == "ach_nacha" and b["kind"] == "unexpected_line"
    )
    assert await _account(gw, "partner:ach_nacha:bank_reconciled") == -(ach_total + ACH_FEE * 5) + early - ach_suspense
    # what nothing explains sits in suspense: the duplicate, the unknown lines, the line of a payment not settled
    in_suspense = [b for b in found if b["kind"] in ("duplicate", "unexpected_line")]
    in_suspense += [b for b in found if b["kind"] == "status_mismatch" and b["source"] == "iso20022_bank"]
    assert await _account(gw, "suspense") == sum(_minor(b["amount"]) for b in in_suspense) != 0
    # the instant rail: its statement moved exactly the matched payments and what sits in suspense; the missing
    # payment and the one whose amount is wrong (suggested, not posted) still wait in partner:instant_rtp:bank
    instant_suspense = sum(_minor(b["amount"]) for b in in_suspense if b["source"] == "instant_rtp")
    instant_matched = sum(_minor(views[instant[n]]["amount"]) for n in ("plain", "dup"))
    assert await _account(gw, "partner:instant_rtp:bank_reconciled") == -instant_matched - instant_suspense
    waiting = [instant["missing"], instant["wrong"]]
    books = await _balances(gw, waiting, ["partner:instant_rtp:in_transit", "partner:instant_rtp:bank"])
    assert books == {
        "partner:instant_rtp:in_transit": 0,
        "partner:instant_rtp:bank": -sum(_minor(views[i]["amount"]) for i in waiting),
    }

    # the ODFI's return file finally reaches the gateway: the payment is returned here too, and the next run
    # matches its return line to it and closes the status mismatch
    drop = gw.simulators["ach_nacha"].runner.app[ODFI]
    (late_file,) = [r for r in drop.returns if r["kind"] == "returns" and returned_trace in r["text"]]
    drop.send_callbacks = True
    await drop.push(late_file)
    await gw.wait_for(ach["returned"], lambda v: v["status"] == "returned")
    after = await _call(gw, "POST", "/v1/recon/run?source=ach_nacha", finance)
    closed = await _call(gw, "GET", "/v1/recon/breaks?state=matched", finance)

    assert (after["confirmed"], after["breaks_opened"], after["breaks_closed"]) == (1, 0, 1), after
    assert [(b["kind"], b["instruction_id"]) for b in closed["items"]] == [("status_mismatch", ach["returned"])]
    accounts = ["partner:ach_nacha:in_transit", "partner:ach_nacha:bank"]
    assert await _balances(gw, [ach["returned"]], accounts) == dict.fromkeys(accounts, 0)
    late = _minor(views[ach["returned"]]["amount"])
    assert await _account(gw, "partner:ach_nacha:bank_reconciled") == (
        -(ach_total + ACH_FEE * 5) + early + late - ach_suspense
    )
