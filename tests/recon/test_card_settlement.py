"""The card acquirer's settlement report: served by its simulator, read by its adapter's format, reconciled 1:N.

A payout batch (charges in, a chargeback and a payout out, each with its fee) is one statement line; the
run matches it to every charge, chargeback and payout at once and posts the fees. Runs on SQLite and
(with GATEWAY_TEST_DATABASE_URL) PostgreSQL, with the card acquirer simulator on loopback.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from gateway.plugins.manager import Plugins
from gateway.recon.fetch import StatementFetcher
from gateway.recon.imports import StatementFileError, read_file
from tests.collections.support import card_charge, post_collection, start, trial_balance, wait_for_collection
from tests.support import FINAL, Database, LiveGateway, example_instruction, stop_gateway

FORMATS = Plugins().statement_formats()


async def _call(gw: LiveGateway, method: str, url: str, key: str, status: int = 200, **kw: Any) -> Any:
    async with gw.session.request(method, url, headers=gw.headers(key), **kw) as resp:
        assert resp.status == status, await resp.text()
        return await resp.json(content_type=None)


def _report(**batch: Any) -> bytes:
    base: dict[str, Any] = {
        "id": "pb_TEST1",
        "object": "payout_batch",
        "currency": "eur",
        "day": "2026-12-06",
        "gross": 1000,
        "fees": 39,
        "net": 961,
        "transactions": [{"type": "charge", "charge": "ch_1", "collection_id": "col_1", "amount": 1000, "fee": 39}],
    }
    base.update(batch)
    return json.dumps({"object": "settlement_report", "day": "2026-12-06", "data": [base]}).encode()


def test_the_format_is_declared_by_the_adapter_and_its_figures_are_checked() -> None:
    fmt = FORMATS["card_settlement"]
    (statement,) = read_file(fmt, _report())
    (line,) = statement.lines

    assert (fmt.source, fmt.sniff(_report())) == ("card_acquirer", True)
    assert (statement.statement_id, line.amount_minor, line.credit, line.partner_reference) == (
        "pb_TEST1",
        961,
        True,
        "pb_TEST1",
    )
    assert [(i.kind, i.reference, i.amount_minor, i.fee_minor) for i in line.items] == [("charge", "col_1", 1000, 39)]
    for bad, message in (
        (_report(net=962), "gross 1000 - fees 39 is not the declared net 962"),
        (_report(fees=40), "its fees sum to 39, it declares 40"),
        (_report(gross=999, net=960), "its transactions sum to 1000, it declares gross 999"),
        (_report(transactions=[{"type": "gift", "amount": 1}]), "/data/0/transactions/0/type"),
        (_report(gross="10"), "/data/0/gross must be an integer"),
    ):
        with pytest.raises(StatementFileError, match="card_settlement") as refused:
            read_file(fmt, bad)
        assert message in refused.value.message


async def test_a_payout_batch_settles_its_charges_chargeback_and_payout_net_of_fees(database: Database) -> None:
    gw = await start(database, sim={"scenario": "card-chargebacks"})
    try:
        finance = await gw.new_key("treasury", ("finance",))
        kept = await (await post_collection(gw, card_charge("Jonas Wik", "129.90"))).json()
        disputed = await (await post_collection(gw, card_charge("Chargeback Fraud Anna Berg", "50.00"))).json()
        body = example_instruction(
            type="payout", amount="250.00", creditor={"name": "Nordic Parts AB", "account": {"wallet": "wal_np_01"}}
        )
        payout = (await (await gw.post_instruction(body)).json())["id"]
        await wait_for_collection(gw, kept["id"], "collected")
        await wait_for_collection(gw, disputed["id"], "charged_back")
        assert (await gw.wait_for(payout, lambda v: v["status"] in FINAL))["status"] == "settled"
        sim = gw.simulators["card_acquirer"].url
        day = datetime.now(UTC).date().isoformat()
        async with gw.session.get(f"{sim}/_sim/settlements/{day}") as resp:
            report = await resp.read()
        (batch,) = json.loads(report)["data"]

        imported = await _call(gw, "POST", f"{gw.url}/v1/statements", finance, 201, data=report)
        dry = await _call(gw, "POST", f"{gw.url}/v1/recon/run?dry_run=true&source=card_acquirer", finance)
        run = await _call(gw, "POST", f"{gw.url}/v1/recon/run?source=card_acquirer", finance)
        books = await trial_balance(gw)
    finally:
        await stop_gateway(gw)

    # charges 1.4 % (181.86 -> 182) + 25 each, the chargeback 1500, the payout 25
    fees = (182 + 25) + (70 + 25) + 1_500 + 25
    assert sorted((t["type"], t["amount"]) for t in batch["transactions"]) == [
        ("charge", 5_000),
        ("charge", 12_990),
        ("chargeback", -5_000),
        ("payout", -25_000),
    ]
    assert (batch["gross"], batch["fees"], batch["net"]) == (-12_010, fees, -12_010 - fees)
    assert (imported["format"], imported["lines"]) == ("card_settlement", 1)
    (would,) = dry["matches"]
    assert sorted(would["payments"]) == sorted([kept["id"], disputed["id"], f"{disputed['id']}/cb", payout])
    assert (would["status"], would["difference"]) == ("confirmed", f"{fees / 100:.2f}")
    assert (run["confirmed"], run["suggested"], run["unmatched"], run["breaks_opened"]) == (1, 0, 0, 0)
    assert books["fees:card_acquirer"] == fees  # the acquirer's fees, posted as the adjustment
    assert books["partner:card_acquirer:bank_reconciled"] == -(12_010 + fees)  # what the batch took from us
    assert books.get("partner:card_acquirer:receivable", 0) == 0  # every charge and chargeback settled
    assert books.get("partner:card_acquirer:bank", 0) == 0  # the payout settled and reconciled


async def test_the_days_report_is_fetched_from_the_acquirer_once_it_is_over_and_matched(database: Database) -> None:
    gw = await start(database)
    try:
        finance = await gw.new_key("treasury", ("finance",))
        charge = await (await post_collection(gw, card_charge("Jonas Wik", "129.90"))).json()
        await wait_for_collection(gw, charge["id"], "collected")
        today = datetime.now(UTC)
        runtime = gw.runtime

        def fetcher(now: datetime) -> StatementFetcher:
            return StatementFetcher(runtime.engine, lambda: now, runtime.adapters, runtime.statement_formats, days=1)

        sim = gw.simulators["card_acquirer"].url
        async with gw.session.get(f"{sim}/v1/settlements/{today.date().isoformat()}") as resp:
            unauthenticated = resp.status
        during = await fetcher(today).fetch("card_acquirer")  # asks yesterday's: nothing settled then
        after = await fetcher(today + timedelta(days=1)).fetch("card_acquirer")  # today is over
        again = await fetcher(today + timedelta(days=1)).fetch("card_acquirer")
        run = await _call(gw, "POST", f"{gw.url}/v1/recon/run?source=card_acquirer", finance)
    finally:
        await stop_gateway(gw)

    assert unauthenticated == 401  # the report is the acquirer's API, behind its key
    assert "card_acquirer" in runtime.statement_fetcher.sources()
    assert [(f.name, f.outcome) for f in during.files] == [
        (f"card settlement {(today - timedelta(days=1)).date().isoformat()}", "empty")
    ]
    assert [(f.outcome, f.statements, f.lines) for f in after.files] == [("stored", 1, 1)]
    assert [f.outcome for f in again.files] == ["known"]  # the same batch twice adds nothing
    assert (run["confirmed"], run["unmatched"], run["breaks_opened"]) == (1, 0, 0)
