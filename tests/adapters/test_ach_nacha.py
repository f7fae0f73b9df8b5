"""ACH (NACHA) adapter: the file format against real files, cut-off windows, the spool, the file drop."""

from __future__ import annotations

import asyncio
import multiprocessing
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import jsonschema
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from gateway.domain.accounts import Party, UsAccount
from gateway.domain.clock import ManualClock
from gateway.domain.money import Money
from gateway.domain.status import Status
from gateway.errors import ContractError, SignatureError
from gateway.partners.adapter import AdapterContext, PaymentOrder
from gateway.partners.signing import sign_payload
from gateway.plugins.manager import Plugins
from gateway_adapters.ach_nacha import AchNachaAdapter
from gateway_adapters.ach_nacha.calendar import CutoffCalendar, federal_reserve_holidays
from gateway_adapters.ach_nacha.nacha import (
    EntryInput,
    NachaError,
    Originator,
    build_file,
    read_file,
    render,
    returns_in,
)
from gateway_adapters.ach_nacha.spool import Spool
from gateway_simulators.ach_nacha import ODFI, FileDrop, create_app
from gateway_simulators.core import parse_scenario

NY = ZoneInfo("America/New_York")
API_KEY = "ach-api-key-for-tests"
CALLBACK_SECRET = "ach-callback-secret-for-tests"
VALID = ["ppd-debit.ach", "web-debit.ach", "return-WEB.ach", "cor-example.ach"]


def nacha(partner_files: Path, name: str) -> str:
    return (partner_files / "nacha" / name).read_text()


def make_order(
    *, id: str = "ins_ach_0001", amount: str = "125.50", creditor_name: str = "Acme Supplies Inc", bu: str = "retail"
) -> PaymentOrder:
    return PaymentOrder(
        id=id,
        business_unit=bu,
        reference=f"INV-{id[-4:]}",
        type="credit_transfer",
        money=Money(amount, "USD"),
        debtor=Party("HE Appliances US Inc", UsAccount.parse("987654321", "011000015", "/debtor/account")),
        creditor=Party(creditor_name, UsAccount.parse("12345678", "021000021", "/creditor/account")),
        remittance_information="Invoice 42",
    )


# -- the file format against real files ------------------------------------------------------


@pytest.mark.parametrize("name", VALID)
def test_valid_real_files_round_trip_byte_for_byte(partner_files: Path, name: str) -> None:
    text = nacha(partner_files, name)

    assert render(read_file(text)) == text


def test_multi_batch_file_is_read_entry_by_entry(partner_files: Path) -> None:
    ach = read_file(nacha(partner_files, "web-debit.ach"))

    assert [len(b.entries) for b in ach.batches] == [4, 1, 1]
    assert [b.header.get("sec_code") for b in ach.batches] == ["WEB", "WEB", "PPD"]
    assert ach.filler > 0


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("ppd-debit-invalid-entryDetail-checkDigit.ach", "fails the ABA check digit"),
        ("ppd-debit-invalid-entryDetail-checkDigit.ach", "record is 75 characters"),
        ("short-line.ach", "record is 74 characters, not 94"),
        ("20110805A.ach", "file control batch_count is 000005, the batches give 4"),
    ],
)
def test_invalid_real_files_are_refused_with_every_problem(partner_files: Path, name: str, expected: str) -> None:
    with pytest.raises(NachaError) as caught:
        read_file(nacha(partner_files, name))

    assert any(expected in e.message for e in caught.value.errors), caught.value.errors
    assert isinstance(caught.value, ContractError)


def test_check_digit_problem_points_at_the_entry_line(partner_files: Path) -> None:
    with pytest.raises(NachaError) as caught:
        read_file(nacha(partner_files, "ppd-debit-invalid-entryDetail-checkDigit.ach"))

    assert [e.pointer for e in caught.value.errors if "check digit" in e.message] == ["/line/3"]


def test_return_file_yields_r01_and_r03_with_original_traces(partner_files: Path) -> None:
    notices = returns_in(read_file(nacha(partner_files, "return-WEB.ach")))

    assert [(n.kind, n.reason_code, n.original_trace, n.amount_cents) for n in notices] == [
        ("return", "R01", "091400600000001", 12354),
        ("return", "R03", "091400600000003", 4565),
    ]
    assert notices[0].reason == "insufficient funds"


def test_notification_of_change_is_not_a_return(partner_files: Path) -> None:
    notices = returns_in(read_file(nacha(partner_files, "cor-example.ach")))

    assert [(n.kind, n.reason_code) for n in notices] == [("change", "C01")]


def test_tampered_control_total_is_refused(partner_files: Path) -> None:
    lines = nacha(partner_files, "ppd-debit.ach").split("\n")
    control = next(i for i, line in enumerate(lines) if line.startswith("8"))
    lines[control] = lines[control][:20] + "000000000001" + lines[control][32:]

    with pytest.raises(NachaError, match="total_debit"):
        read_file("\n".join(lines))


ORIGINATOR = Originator("021000021", "1234567890", "ODFI", "PARTNER GATEWAY", "021000021")


def entry(trace: int, *, company: str = "1234567890", routing: str = "021000021", cents: int = 100) -> EntryInput:
    return EntryInput(company, "ACME", 22, routing, "12345678", cents, "INV-1", "RECEIVER", f"02100002{trace:07d}")


def test_built_file_is_balanced_and_blocked() -> None:
    entries = [entry(1, cents=1050), entry(2, routing="011000015", cents=20000), entry(3, company="9999999999")]

    ach = build_file(ORIGINATOR, entries, created_at=datetime(2026, 11, 25, 10, 30), effective_date=date(2026, 11, 27))
    text = render(ach)
    again = read_file(text)  # the strict reader re-checks every total

    assert [len(b.entries) for b in again.batches] == [2, 1]
    assert again.batches[0].control is not None and again.control is not None
    assert again.batches[0].control.get("entry_hash") == f"{2100002 + 1100001:010d}"
    assert again.control.number("total_credit") == 1050 + 20000 + 100
    assert again.control.number("total_debit") == 0
    assert again.control.get("entry_hash") == f"{2100002 * 2 + 1100001:010d}"
    assert len(text.splitlines()) % 10 == 0 and all(len(line) == 94 for line in text.splitlines())


def test_entry_hash_keeps_only_ten_low_digits() -> None:
    many = [entry(i, routing="091000019") for i in range(1, 1300)]

    ach = build_file(ORIGINATOR, many, created_at=datetime(2026, 1, 5, 10), effective_date=date(2026, 1, 6))

    assert ach.control is not None
    assert ach.control.get("entry_hash") == f"{(9100001 * 1299) % 10**10:010d}"
    assert read_file(render(ach)).control is not None


# -- cut-off windows -------------------------------------------------------------------------


def calendar(holidays: Any = "federal_reserve") -> CutoffCalendar:
    return CutoffCalendar.from_settings(["10:30", "14:45", "17:00"], "America/New_York", holidays)


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (datetime(2026, 11, 24, 9, 0, tzinfo=NY), datetime(2026, 11, 24, 10, 30, tzinfo=NY)),  # Tuesday morning
        (datetime(2026, 11, 24, 10, 30, tzinfo=NY), datetime(2026, 11, 24, 14, 45, tzinfo=NY)),  # strictly after
        (datetime(2026, 11, 25, 17, 30, tzinfo=NY), datetime(2026, 11, 27, 10, 30, tzinfo=NY)),  # Thanksgiving
        (datetime(2026, 11, 27, 17, 1, tzinfo=NY), datetime(2026, 11, 30, 10, 30, tzinfo=NY)),  # weekend
        (datetime(2027, 7, 2, 18, 0, tzinfo=NY), datetime(2027, 7, 6, 10, 30, tzinfo=NY)),  # July 4th on a Sunday
        (datetime(2026, 11, 24, 22, 30, tzinfo=UTC), datetime(2026, 11, 25, 10, 30, tzinfo=NY)),  # 17:30 in New York
    ],
)
def test_next_cutoff_skips_weekends_and_federal_reserve_holidays(now: datetime, expected: datetime) -> None:
    assert calendar().next_cutoff(now) == expected


def test_federal_reserve_keeps_friday_open_when_a_holiday_falls_on_saturday() -> None:
    holidays = federal_reserve_holidays(2026)

    assert date(2026, 7, 4) in holidays  # a Saturday: not moved to Friday
    assert date(2026, 7, 3) not in holidays
    assert date(2026, 11, 26) in holidays and date(2026, 1, 19) in holidays  # Thanksgiving, MLK day
    assert calendar().cutoffs_on(date(2026, 7, 3)) != []


def test_explicit_holiday_list_replaces_the_federal_reserve_rules() -> None:
    cal = calendar(["2026-11-24"])

    assert cal.next_cutoff(datetime(2026, 11, 23, 17, 30, tzinfo=NY)) == datetime(2026, 11, 25, 10, 30, tzinfo=NY)
    assert cal.is_business_day(date(2026, 11, 26))  # Thanksgiving is not in the list


def test_effective_date_is_the_next_business_day() -> None:
    assert calendar().effective_date(datetime(2026, 11, 25, 17, 0, tzinfo=NY)) == date(2026, 11, 27)
    assert calendar().effective_date(datetime(2026, 11, 27, 10, 30, tzinfo=NY)) == date(2026, 11, 30)


# -- adapter against the file-drop simulator --------------------------------------------------


@dataclass
class Rig:
    adapter: AchNachaAdapter
    drop: FileDrop
    clock: ManualClock
    spool_dir: Path
    make: Callable[[], AchNachaAdapter]


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    # Monday 2026-11-23 09:00 in New York
    clock = ManualClock(datetime(2026, 11, 23, 14, 0, tzinfo=UTC))
    server = TestServer(
        create_app({"api_key": API_KEY, "callback_secret": CALLBACK_SECRET, "clock": clock, "send_callbacks": False})
    )
    await server.start_server()
    made: list[AchNachaAdapter] = []

    def make() -> AchNachaAdapter:
        adapter = AchNachaAdapter.from_settings(
            {
                "base_url": str(server.make_url("")),
                "api_key": API_KEY,
                "callback_secret": CALLBACK_SECRET,
                "spool_dir": str(tmp_path / "spool"),
                "originators": {"wholesale": {"company_id": "9876543210", "company_name": "HE WHOLESALE"}},
            },
            AdapterContext(callback_url="http://127.0.0.1:9/v1/partners/ach_nacha/callbacks", clock=clock),
        )
        made.append(adapter)
        return adapter

    try:
        yield Rig(make(), server.app[ODFI], clock, tmp_path / "spool", make)
    finally:
        for adapter in made:
            await adapter.close()
        await server.close()


def at_new_york(clock: ManualClock, day: int, hour: int, minute: int = 0) -> None:
    clock.now = datetime(2026, 11, day, hour, minute, tzinfo=NY).astimezone(UTC)


def test_plugin_registers_adapter_and_simulator_through_entry_point() -> None:
    plugins = Plugins()

    assert plugins.adapter_classes()["ach_nacha"] is AchNachaAdapter
    assert plugins.simulator_factories()["ach_nacha"] is not None


def test_settings_schema_requires_secrets_and_refuses_unknown_keys() -> None:
    validator = jsonschema.Draft202012Validator(AchNachaAdapter.settings_schema)
    good = {"base_url": "http://odfi.example", "api_key": "k" * 10, "callback_secret": "s" * 10}

    assert list(validator.iter_errors(good)) == []
    assert list(validator.iter_errors({**good, "holidays": ["2026-12-24"], "cutoffs": ["09:00"]})) == []
    assert [e.validator for e in validator.iter_errors({**good, "colour": "red"})] == ["additionalProperties"]
    assert list(validator.iter_errors({**good, "cutoffs": ["25:00"]})) != []
    assert AchNachaAdapter.settings_schema["properties"]["spool_dir"]["default"] == "var/ach"


def test_capabilities_carry_us_accounts_in_usd_only() -> None:
    caps = AchNachaAdapter.capabilities

    assert caps.refusal(make_order()) is None
    assert caps.currencies == {"USD"} and caps.account_kinds == {"us"} and caps.instant is False


async def test_submit_only_spools_and_answers_submitted_with_a_trace_number(rig: Rig) -> None:
    result = await rig.adapter.submit(make_order())

    assert result.status is Status.SUBMITTED
    assert result.partner_reference == "021000020000001"
    assert rig.drop.entries == {}
    assert [e["trace_number"] for e in Spool(rig.spool_dir).pending_entries()] == ["021000020000001"]


async def test_same_instruction_twice_keeps_one_entry_and_one_trace(rig: Rig) -> None:
    first = await rig.adapter.submit(make_order())
    second = await rig.adapter.submit(make_order())
    await rig.adapter.run_cutoff()

    assert first.partner_reference == second.partner_reference
    assert [(b.entry.trace_number, b.received) for b in rig.drop.entries.values()] == [(first.partner_reference, 1)]


async def test_cutoff_merges_entries_per_originating_company_into_one_balanced_file(rig: Rig) -> None:
    await rig.adapter.submit(make_order(id="ins_a_0001", amount="10.00"))
    await rig.adapter.submit(make_order(id="ins_a_0002", amount="20.00", bu="wholesale"))
    await rig.adapter.submit(make_order(id="ins_a_0003", amount="30.00"))

    sent = await rig.adapter.run_cutoff()

    assert len(sent) == 1 and len(rig.drop.files) == 1
    ach = read_file(Spool(rig.spool_dir).file(sent[0])["text"])  # type: ignore[index]
    assert [(b.header.get("company_id"), len(b.entries)) for b in ach.batches] == [("1234567890", 2), ("9876543210", 1)]
    assert ach.control is not None and ach.control.number("total_credit") == 6000
    assert ach.batches[0].header.get("effective_date") == "261124"  # Monday's file, Tuesday's entries


async def test_scheduled_tick_delivers_only_once_a_cutoff_has_passed(rig: Rig) -> None:
    await rig.adapter.submit(make_order())

    at_new_york(rig.clock, 23, 10, 29)
    before = await rig.adapter.run_due()
    at_new_york(rig.clock, 23, 10, 31)
    after = await rig.adapter.run_due()
    again = await rig.adapter.run_due()

    assert before == [] and len(after) == 1 and again == []
    assert len(rig.drop.entries) == 1


async def test_no_cutoff_runs_on_a_holiday(rig: Rig) -> None:
    at_new_york(rig.clock, 25, 17, 30)
    await rig.adapter.run_due()  # Wednesday's last cut-off
    await rig.adapter.submit(make_order())

    at_new_york(rig.clock, 26, 16, 0)  # Thanksgiving afternoon
    on_holiday = await rig.adapter.run_due()
    at_new_york(rig.clock, 27, 10, 31)
    friday = await rig.adapter.run_due()

    assert on_holiday == [] and len(friday) == 1


async def test_entry_spooled_before_a_crash_is_delivered_once_after_restart(rig: Rig) -> None:
    result = await rig.adapter.submit(make_order())
    # the process dies before the cut-off: a new adapter on the same spool takes over
    successor = rig.make()

    await successor.run_cutoff()
    await successor.run_cutoff()

    assert [(t, b.received) for t, b in rig.drop.entries.items()] == [(result.partner_reference, 1)]


async def test_two_spoolers_on_one_spool_never_both_send_a_file(rig: Rig) -> None:
    # two gateway processes sharing the spool directory: each spools, both reach the cut-off at once
    other = rig.make()
    for n in range(10):
        await (rig.adapter if n % 2 else other).submit(make_order(id=f"ins_two_{n:04d}"))
    at_new_york(rig.clock, 23, 10, 31)

    sent = await asyncio.gather(rig.adapter.run_due(), other.run_due(), rig.adapter.run_cutoff(), other.run_cutoff())

    assert sorted(f for s in sent for f in s) == [f["file_id"] for f in Spool(rig.spool_dir).files()]
    assert [j.outcome for j in rig.drop.journal.entries if j.kind == "file"] == ["accepted"]
    assert sorted(b.received for b in rig.drop.entries.values()) == [1] * 10


def _take_sequences(spool_dir: str, count: int) -> list[int]:
    async def take() -> list[int]:
        spool, got = Spool(spool_dir), []
        for _ in range(count):
            async with spool.exclusive(poll_seconds=0.001):
                got.append(spool.next_sequence())
        return got

    return asyncio.run(take())


def test_processes_sharing_a_spool_never_hand_out_one_trace_number_twice(tmp_path: Path) -> None:
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
        taken = list(pool.map(_take_sequences, [str(tmp_path)] * 2, [150, 150]))

    assert sorted(taken[0] + taken[1]) == list(range(1, 301))


async def test_crash_between_writing_a_file_and_marking_its_entries_files_each_entry_once(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    await rig.adapter.submit(make_order(id="ins_c_0001"))
    await rig.adapter.submit(make_order(id="ins_c_0002"))

    def crash() -> None:
        raise KeyboardInterrupt("killed")

    monkeypatch.setattr(rig.adapter, "_finish_filing", crash)
    with pytest.raises(KeyboardInterrupt):
        rig.adapter._make_file(Spool(rig.spool_dir).pending_entries(), rig.clock())
    await rig.make().run_cutoff()

    spool = Spool(rig.spool_dir)
    assert len(spool.files()) == 1 and spool.pending_entries() == []
    assert sorted(b.received for b in rig.drop.entries.values()) == [1, 1]


async def test_crash_after_delivery_resends_the_file_and_the_drop_books_it_once(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    await rig.adapter.submit(make_order())
    real_put_file = Spool.put_file

    def crash_on_delivered(self: Spool, record: dict[str, Any]) -> None:
        if record["state"] == "delivered":
            raise KeyboardInterrupt("killed")
        real_put_file(self, record)

    monkeypatch.setattr(Spool, "put_file", crash_on_delivered)
    with pytest.raises(KeyboardInterrupt):
        await rig.adapter.run_cutoff()
    monkeypatch.setattr(Spool, "put_file", real_put_file)
    await rig.make().run_due()

    assert [f["state"] for f in Spool(rig.spool_dir).files()] == ["delivered"]
    assert [b.received for b in rig.drop.entries.values()] == [1]
    assert [j.outcome for j in rig.drop.journal.entries if j.kind == "file"] == ["accepted", "replayed"]


async def test_poll_answers_settled_once_the_drop_settled_the_file(rig: Rig) -> None:
    order = make_order()
    await rig.adapter.submit(order)
    before_cutoff = await rig.adapter.poll(order)
    await rig.adapter.run_cutoff()
    accepted = await rig.adapter.poll(order)
    rig.clock.advance(1)
    settled = await rig.adapter.poll(order)

    assert before_cutoff is None and accepted is None
    assert settled is not None and settled.status is Status.SETTLED
    assert settled.partner_reference == "021000020000001"


async def test_poll_answers_returned_with_the_return_code(rig: Rig) -> None:
    order = make_order(creditor_name="Acme RETURN-R03")
    await rig.adapter.submit(order)
    await rig.adapter.run_cutoff()
    rig.clock.advance(1)
    await rig.adapter.poll(order)  # settles
    rig.clock.advance(1)

    update = await rig.adapter.poll(order)

    assert update is not None and update.status is Status.RETURNED
    assert (update.reason_code, update.partner_reference) == ("R03", "021000020000001")


async def test_return_files_are_fetched_and_read_with_the_same_reader(rig: Rig) -> None:
    await rig.adapter.submit(make_order(id="ins_r_0001", creditor_name="Acme RETURN-R01"))
    await rig.adapter.submit(make_order(id="ins_r_0002"))
    await rig.adapter.run_cutoff()
    rig.clock.advance(1)
    await rig.adapter.fetch_returns()
    rig.clock.advance(1)

    updates, since = await rig.adapter.fetch_returns()
    nothing_new, _ = await rig.adapter.fetch_returns(since)

    assert [(u.status, u.reason_code, u.partner_reference) for u in updates] == [
        (Status.RETURNED, "R01", "021000020000001")
    ]
    assert nothing_new == []


async def test_file_the_drop_rejects_makes_its_payments_rejected(rig: Rig) -> None:
    order = make_order()
    await rig.adapter.submit(order)
    entry = Spool(rig.spool_dir).entry(order.id)
    assert entry is not None
    # a spooled entry corrupted on disk: the built file fails the drop's check-digit rule
    Spool(rig.spool_dir).put_entry(order.id, {**entry, "routing": "021000022"})
    await rig.adapter.run_cutoff()

    update = await rig.adapter.poll(order)

    assert update is not None and update.status is Status.REJECTED and update.reason_code == "FILE_REJECTED"
    assert rig.drop.entries == {}


async def test_undeliverable_file_stays_pending_and_is_retried(rig: Rig) -> None:
    await rig.adapter.submit(make_order())
    rig.adapter.base_url = "http://127.0.0.1:9"
    first = await rig.adapter.run_cutoff()
    rig.adapter.base_url = str(rig.make().base_url)

    retried = await rig.adapter.run_due()

    assert first == [] and len(retried) == 1 and len(rig.drop.entries) == 1


async def test_drop_refuses_a_file_without_the_api_key(rig: Rig, partner_files: Path) -> None:
    session = rig.adapter.http.session()
    url = f"{rig.adapter.base_url}/files"

    async with session.post(url, data=nacha(partner_files, "ppd-debit.ach"), headers={"Idempotency-Key": "x"}) as resp:
        assert resp.status == 401
    assert rig.drop.files == {}


async def test_drop_rejects_an_invalid_real_file_with_the_failing_lines(rig: Rig, partner_files: Path) -> None:
    session = rig.adapter.http.session()
    headers = {"X-Api-Key": API_KEY, "Idempotency-Key": "bad-1"}

    async with session.post(
        f"{rig.adapter.base_url}/files", data=nacha(partner_files, "short-line.ach"), headers=headers
    ) as r:
        answer = await r.json()

    assert r.status == 422 and answer["status"] == "rejected"
    assert answer["errors"] == [{"pointer": "/line/5", "detail": "record is 74 characters, not 94"}]


# -- pushed return files (callbacks) ---------------------------------------------------------


def test_signed_return_file_callback_parses_to_returned_updates(rig: Rig, partner_files: Path) -> None:
    body = nacha(partner_files, "return-WEB.ach").encode()
    signature = sign_payload(CALLBACK_SECRET.encode(), body, int(rig.clock().timestamp()))

    updates = rig.adapter.parse_callback({"x-signature": signature}, body)

    assert [(u.status, u.reason_code, u.partner_reference) for u in updates] == [
        (Status.RETURNED, "R01", "091400600000001"),
        (Status.RETURNED, "R03", "091400600000003"),
    ]


def test_callback_with_a_wrong_signature_is_refused_before_parsing(rig: Rig, partner_files: Path) -> None:
    body = nacha(partner_files, "return-WEB.ach").encode()

    with pytest.raises(SignatureError):
        rig.adapter.parse_callback({"X-Signature": sign_payload(b"another-secret", body)}, body)


def test_signed_callback_with_an_invalid_file_is_a_contract_error(rig: Rig, partner_files: Path) -> None:
    body = nacha(partner_files, "short-line.ach").encode()
    signature = sign_payload(CALLBACK_SECRET.encode(), body, int(rig.clock().timestamp()))

    with pytest.raises(ContractError):
        rig.adapter.parse_callback({"X-Signature": signature}, body)


@pytest.mark.parametrize(
    ("fault", "acknowledgement"),
    [
        ({"kind": "reset", "after": True}, "lost after the drop took the file"),
        ({"kind": "truncated_body"}, "cut short"),
        ({"kind": "http_error", "status": 503, "retry_after": 0}, "refused for now"),
    ],
)
async def test_an_acknowledgement_lost_or_malformed_leaves_the_payment_unknown_until_the_resend(
    rig: Rig, fault: dict[str, Any], acknowledgement: str
) -> None:
    order = make_order()
    submitted = await rig.adapter.submit(order)
    rig.drop.use_scenario(parse_scenario({"name": "one-bad-ack", "faults": [fault]}))
    known = replace(order, partner_reference=submitted.partner_reference)

    first = await rig.adapter.run_cutoff()  # the acknowledgement is lost, malformed or a refusal
    before = await rig.adapter.poll(known)
    again = await rig.adapter.run_due()  # the same file, the same file id
    rig.clock.advance(60)

    assert first == [], acknowledgement
    assert before is None  # no verdict without an acknowledgement
    assert len(again) == 1 and rig.adapter.spool.files()[0]["state"] == "delivered"
    files = [e.outcome for e in rig.drop.journal.select({"kind": "file"}) if e.outcome != "dropped"]
    # the drop took the file the first time (its answer went astray) and answers the resend as before
    assert files == (["refused", "accepted"] if fault["kind"] == "http_error" else ["accepted", "answered", "replayed"]
                     if fault["kind"] == "truncated_body" else ["accepted", "replayed"])  # fmt: skip
    assert [b.received for b in rig.drop.entries.values()] == [1]  # booked once however often it came
    after = await rig.adapter.poll(known)
    assert after is not None and after.status is Status.SETTLED


async def test_an_acknowledgement_that_breaks_the_contract_is_no_acknowledgement(tmp_path: Path) -> None:
    answers = [{"status": "accepted", "file_id": "someone-else"}, None]
    received: list[str] = []

    async def odfi(request: web.Request) -> web.Response:
        received.append(request.headers["Idempotency-Key"])
        answer = answers.pop(0) or {"status": "accepted", "file_id": received[-1], "entries": 1, "duplicates": []}
        return web.json_response(answer)

    app = web.Application()
    app.router.add_post("/files", odfi)
    server = TestServer(app)
    await server.start_server()
    adapter = AchNachaAdapter.from_settings(
        {"base_url": str(server.make_url("")), "api_key": API_KEY, "callback_secret": CALLBACK_SECRET,
         "spool_dir": str(tmp_path / "spool")},
        AdapterContext(callback_url="http://127.0.0.1:9/callbacks"),
    )  # fmt: skip
    try:
        await adapter.submit(make_order())
        first = await adapter.run_cutoff()
        state = adapter.spool.files()[0]["state"]
        second = await adapter.run_due()
    finally:
        await adapter.close()
        await server.close()

    assert first == [] and state == "pending"  # missing fields: not an acknowledgement
    assert len(second) == 1 and received[0] == received[1]  # sent again under the same file id
