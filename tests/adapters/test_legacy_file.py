"""The ``legacy_file`` hand-off adapter: files written whole and once, its status feed, routing to it.

Real files in tmp dirs; the adapter as the gateway builds it (``from_settings``) and registered
through the ``gateway.adapters`` entry point.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gateway.adapter import AdapterContext, PaymentOrder
from gateway.dispatch.routing import Router, RoutingRule, load_routing
from gateway.domain.accounts import UsAccount
from gateway.domain.status import Status
from gateway.errors import ConfigError, ContractError, TransientPartnerError
from gateway.partners.legacy_feed import LegacyFeed, read_feed
from gateway.plugins.manager import Plugins
from gateway.store.rollout import RolloutMode
from gateway_adapters.legacy_file import LegacyFileAdapter
from gateway_adapters.legacy_file.folder import write_atomic
from tests.unit.test_routing import ADAPTERS, order

NOW = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)


def build(tmp_path: Path, **settings: object) -> LegacyFileAdapter:
    return LegacyFileAdapter.from_settings(
        {"dir": str(tmp_path / "handoff"), **settings}, AdapterContext("http://127.0.0.1:9/cb", clock=lambda: NOW)
    )


def us_order(instruction_id: str = "ins_1", reference: str = "R1") -> PaymentOrder:
    base = order("USD", UsAccount("000123456789", "021000021"))
    return dataclasses.replace(base, id=instruction_id, reference=reference)


def test_registered_through_the_entry_point_like_every_built_in() -> None:
    assert Plugins().adapter_classes()["legacy_file"] is LegacyFileAdapter


async def test_a_payment_is_handed_off_once_in_one_whole_file(tmp_path: Path) -> None:
    adapter = build(tmp_path)
    first = await adapter.submit(us_order())
    again = await adapter.submit(us_order())  # a resumed dispatch: same instruction
    await adapter.submit(us_order("ins_2", "R2"))
    assert (first.status, first.partner_status) == (Status.SUBMITTED, "handed_off")
    assert again == first

    name = await adapter.run_cutoff()
    assert name == "handoff-20261206T090000Z-1.jsonl"
    lines = [json.loads(t) for t in (tmp_path / "handoff" / name).read_text().splitlines()]
    assert [(line["instruction_id"], line["reference"], line["amount"]) for line in lines] == [
        ("ins_1", "R1", "100.00"),
        ("ins_2", "R2", "100.00"),
    ]
    assert await adapter.run_cutoff() is None  # nothing new: no new file
    await adapter.submit(us_order())  # handed off already: not queued again
    assert await adapter.run_cutoff() is None
    assert sorted(p.name for p in (tmp_path / "handoff").glob("handoff-*")) == [name]
    assert (tmp_path / "handoff" / name).stat().st_mode & 0o077 == 0  # full accounts inside: owner only


async def test_a_cut_off_killed_after_its_journal_is_finished_by_the_next_one(tmp_path: Path) -> None:
    adapter = build(tmp_path)
    await adapter.submit(us_order())
    folder = adapter.folder
    pending = folder.pending()
    # what a cut-off killed between writing its journal and writing the file leaves behind
    journal = {
        "name": "handoff-20261206T085900Z-1.jsonl",
        "cut_at": "",
        "lines": [pending[0]["line"]],
        "written": False,
    }
    write_atomic(folder.journal_dir / f"{journal['name']}.json", json.dumps(journal).encode())

    restarted = build(tmp_path)
    assert await restarted.run_cutoff() is None  # the crashed file is finished; nothing else was pending
    files = sorted((tmp_path / "handoff").glob("handoff-*.jsonl"))
    assert [f.name for f in files] == [journal["name"]]
    assert [json.loads(t)["instruction_id"] for t in files[0].read_text().splitlines()] == ["ins_1"]
    assert folder.entry("ins_1")["file"] == journal["name"]


async def test_the_status_feed_gives_the_final_status(tmp_path: Path) -> None:
    adapter = build(tmp_path, status_dir=str(tmp_path / "feed"))
    await adapter.submit(us_order())
    await adapter.submit(us_order("ins_2", "R2"))
    assert await adapter.poll(us_order()) is None  # no feed yet: still submitted
    feed = tmp_path / "feed"
    feed.mkdir()
    (feed / "a.csv").write_text(
        "reference,status,instruction_id,status_at,reason_code\n"
        "R1,processing,,,\n"
        "WHATEVER,returned,ins_2,2026-12-06T10:00:00Z,AC04\n"
    )
    assert await adapter.poll(us_order()) is None  # in flight at the old system
    update = await adapter.poll(us_order("ins_2", "R2"))  # found by instruction id
    assert update is not None
    assert (update.status, update.reason_code, update.partner_status) == (Status.RETURNED, "AC04", "legacy:returned")
    assert update.occurred_at == datetime(2026, 12, 6, 10, tzinfo=UTC)
    (feed / "b.csv").write_text("reference,status\nR1,Settled\n")  # a newer file
    found = await adapter.poll(us_order())
    assert found is not None and found.status is Status.SETTLED
    (feed / "c.csv").write_text("reference,status,status_at\nR1,settled,yesterday\n")
    with pytest.raises(TransientPartnerError, match="line 2: status_at 'yesterday' is not ISO 8601"):
        await adapter.poll(us_order())


def test_callbacks_are_refused_and_render_is_the_line(tmp_path: Path) -> None:
    adapter = build(tmp_path)
    with pytest.raises(ContractError, match="takes no callbacks"):
        adapter.parse_callback({}, b"{}")
    rendered = adapter.render(us_order())
    assert rendered.message == "legacy-handoff-line" and json.loads(rendered.body)["reference"] == "R1"


def test_feed_without_its_required_columns_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "f.csv"
    path.write_text("ref,status\nA,settled\n")
    with pytest.raises(ConfigError, match="no column 'reference'"):
        read_feed(path)
    path.write_text("reference,status,business_unit\nA,settled,erp\nA,rejected,other\n")
    feed = LegacyFeed(read_feed(path))
    assert feed.find("erp", "A").status is Status.SETTLED  # type: ignore[union-attr]
    assert feed.find("other", "A").status is Status.REJECTED  # type: ignore[union-attr]
    assert feed.find("third", "A") is None


def test_routing_hands_off_what_the_rollout_keeps_from_a_partner(tmp_path: Path) -> None:
    adapters = {**ADAPTERS, "legacy_file": build(tmp_path)}
    router = Router([RoutingRule("usd", ("rtp", "ach"), currencies=frozenset({"USD"}))], handoff="legacy_file")
    payment = us_order()

    live = router.decide(payment, adapters)
    assert (live.adapter, live.handoff, live.shadow) == ("rtp", False, ())
    off = router.decide(payment, adapters, rollout={"rtp": RolloutMode("off")})
    assert (off.adapter, off.handoff) == ("legacy_file", True)
    assert off.reason == (
        "routed to legacy_file, the rollout's hand-off to the old system (passed over rtp: rollout off for erp)"
    )
    shadow = router.decide(payment, adapters, rollout={"rtp": RolloutMode("shadow"), "ach": RolloutMode("shadow")})
    assert (shadow.adapter, shadow.shadow) == ("legacy_file", ("rtp", "ach"))
    assert shadow.as_dict()["shadow"] == ["rtp", "ach"]

    no_handoff = Router([RoutingRule("usd", ("rtp", "ach"), currencies=frozenset({"USD"}))])
    assert no_handoff.decide(payment, adapters, rollout={"rtp": RolloutMode("off")}).adapter == "ach"
    # no rule matched: every capable adapter by name, but never the hand-off (it is the old system)
    assert Router(handoff="legacy_file").decide(payment, adapters).adapter == "ach"
    assert Router().decide(payment, {"legacy_file": adapters["legacy_file"]}).adapter == "legacy_file"


def test_an_unknown_handoff_adapter_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"rollout\.handoff_adapter: unknown adapter 'carrier_pigeon'"):
        load_routing(None, installed={"legacy_file": LegacyFileAdapter}, handoff="carrier_pigeon")


def test_a_partner_that_could_not_carry_the_payment_hands_nothing_off(tmp_path: Path) -> None:
    adapters = {**ADAPTERS, "legacy_file": build(tmp_path)}
    router = Router([RoutingRule("any", ("rtp", "bank"))], handoff="legacy_file")
    eur = order()  # rtp carries USD only: its rollout mode does not matter for this payment
    decision = router.decide(eur, adapters, rollout={"rtp": RolloutMode("off")})
    assert (decision.adapter, decision.handoff) == ("bank", False)
    assert decision.skipped == {"rtp": "currency EUR not supported"}
