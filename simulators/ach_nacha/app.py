"""The ODFI file-drop simulator: NACHA files in, entry statuses and return files out.

A standalone aiohttp app, not a plug-in of ``gateway_simulators.core``: the core's
``Partner`` is built around one payment per submission, keyed by the instruction
id, answered with a per-payment status report and followed by per-payment
callbacks. A file drop takes a *file* of many entries keyed by trace number,
answers accepted/rejected for the whole file, and reports back in *return
files*; none of the core's submission, report or callback hooks fit that.

Routes (``X-Api-Key`` on all but ``/_sim``):

- ``POST /files``: a NACHA file, ``Idempotency-Key: <file id>``, optional ``X-Callback-Url``.
  Read with the adapter's own strict reader; ``200 {"status": "accepted", ...}`` or
  ``422 {"status": "rejected", "errors": [{"pointer", "detail"}]}``. A resent file id gets
  the first answer; an entry whose trace number was booked before is not booked again.
- ``GET /entries/{trace}``: ``{"trace", "status": accepted|settled|returned, "return_code", ...}``.
- ``GET /returns?since=<seq>``: ``{"files": [{"seq", "text", "created_at"}]}``.
- ``GET /statements/{date}``: that day's statement files (below), what the adapter's ``fetch_statements`` asks.
- ``GET /_sim/entries`` (also ``/_sim/payments``: booked entries, ``received`` counts every copy),
  ``GET /_sim/files``, ``GET /_sim/journal``, ``GET /_sim/status``, ``POST /_sim/advance``,
  ``POST /_sim/reset``, ``GET /_sim/statements/{date}`` (that day's statement: NACHA files,
  read by ``gateway recon import``).

Timeline (measured on the simulator's clock, settings ``clock``): an accepted entry settles
``settle_delay`` seconds after its file arrived; an entry whose receiver name holds
``RETURN-Rnn`` is returned with ``Rnn`` ``return_delay`` seconds after settling, in a
return file posted (signed with ``callback_secret``) to the file's callback URL.

Scenarios (settings ``scenario`` and ``seed``; ``GET``/``PUT /_sim/scenario``,
``POST /_sim/predict``) come from the simulator core (``gateway_simulators.core.scenario``):
each entry is a payment (reference = the entry's individual id, amount, USD, the
receiver's name) that the first matching rule decides: ``settle`` (the default),
``return`` with its R-code after the rule's ``return`` delay (late returns: a long
one), ``accept`` (never settles). Delays are sampled per entry from the scenario's.
Faults strike by layer, as the core's do: the upload (``POST /files`` per file id:
``latency``, ``hang``, ``reset`` before or ``after`` the file was taken, ``http_error``,
and a malformed acknowledgement: ``truncated_body``, ``wrong_content_type``), the status
queries (faults with ``exchange: status``, per trace number) and the return-file pushes
(callback faults, per return file). A day's statement (``GET /_sim/statements/{date}``)
is one return file of the day's returns with the scenario's statement breaks (stamped 23:59
of the day, so it has one identity however often it is asked for), the day's change files, and
the day's settlement report (``ach_settlement``: per file settled that day ONE debit, itemised
by trace, plus ``entry_fee_cents`` per entry). The journal is the core's (``GET /_sim/journal``: one ``file`` entry
per upload, one ``submit`` entry per entry, ``status``, ``return_file``, ``callback`` and
``statement`` entries). A file-drop partner is not a core
``Partner``; what it shares with the core is the scenario, the seeds, the faults'
definitions and the journal.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import re
from collections import Counter
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

import aiohttp
from aiohttp import web

from gateway.domain.clock import system_clock
from gateway.errors import ConfigError
from gateway.partners.signing import sign_payload
from gateway_adapters.ach_nacha.adapter import (
    API_KEY_HEADER,
    CALLBACK_URL_HEADER,
    IDEMPOTENCY_HEADER,
    SIGNATURE_HEADER,
)
from gateway_adapters.ach_nacha.nacha import (
    RETURN_REASONS,
    EntryInput,
    NachaError,
    Originator,
    alpha_field,
    build_change_file,
    build_return_file,
    read_file,
    render,
)
from gateway_simulators.core.app import catalogue_routes
from gateway_simulators.core.journal import Journal
from gateway_simulators.core.scenario import (
    CALLBACK_FAULTS,
    TRANSPORT_FAULTS,
    Decision,
    Delay,
    Fault,
    PaymentFields,
    Scenario,
    ScenarioError,
    load_scenario,
    parse_scenario,
)

__all__ = ["ODFI", "FileDrop", "create_app"]

log = logging.getLogger(__name__)

_RETURN_RULE = re.compile(r"RETURN-(R[0-9]{2})")
#: the faults a file upload or a status query can suffer (the transport layer, and a malformed answer)
_FILE_FAULTS = TRANSPORT_FAULTS | {"truncated_body", "wrong_content_type"}
#: what a return file's push can suffer; forged and replayed copies come before the real one
_PUSH_FAULTS = CALLBACK_FAULTS - {"callback_out_of_order", "callback_early"}
_WRONG_KEY = b"not-the-odfi-callback-secret"


def _fields(entry: EntryInput) -> PaymentFields:
    """An entry as scenario rules see it: reference = individual id, USD, the receiver's name."""
    amount = Decimal(entry.amount_cents) / 100
    return PaymentFields(entry.individual_id.strip(), amount, "USD", entry.name.strip(), entry.trace_number)


@dataclass
class _Booked:
    entry: EntryInput
    file_id: str
    callback_url: str | None
    accepted_at: datetime
    status: str = "accepted"
    return_code: str | None = None
    settled_at: datetime | None = None
    returned_at: datetime | None = None
    received: int = 1
    outcome: str = "settle"
    #: a notification of change (C-code) sent after settling; the payment stands
    change_code: str | None = None
    settle_after: float = 0.2
    return_after: float = 0.2

    def describe(self) -> dict[str, Any]:
        return {
            "trace": self.entry.trace_number,
            "file_id": self.file_id,
            "status": self.status,
            "amount_cents": self.entry.amount_cents,
            "name": self.entry.name,
            "return_code": self.return_code if self.status == "returned" else None,
            "return_reason": RETURN_REASONS.get(self.return_code or "") if self.status == "returned" else None,
            "settled_at": self.settled_at.isoformat() if self.settled_at else None,
            "received": self.received,
        }


@dataclass
class FileDrop:
    """The simulator's state and behaviour (the app holds one under ``ODFI``)."""

    api_key: str
    callback_secret: bytes
    clock: Callable[[], datetime] = system_clock
    settle_delay: float = 0.2
    return_delay: float = 0.2
    send_callbacks: bool = True
    callback_attempts: int = 4
    rdfi_routing: str = "091000019"
    #: what the ODFI charges per settled entry, on the settlement report (cents)
    entry_fee_cents: int = 0
    scenario: Scenario | None = None
    seed_setting: int | None = None
    files: dict[str, tuple[int, dict[str, Any]]] = field(default_factory=dict)
    entries: dict[str, _Booked] = field(default_factory=dict)
    returns: list[dict[str, Any]] = field(default_factory=list)
    journal: Journal = field(default_factory=Journal)
    _hits: Counter[tuple[str, int]] = field(default_factory=Counter)
    _pushes: set[asyncio.Task[None]] = field(default_factory=set)
    _session: aiohttp.ClientSession | None = None

    @property
    def seed(self) -> int:
        """``seed`` setting, else the scenario's, else 0 (as in the simulator core)."""
        if self.seed_setting is not None:
            return self.seed_setting
        return self.scenario.seed if self.scenario is not None and self.scenario.seed is not None else 0

    def decide(self, payment: PaymentFields) -> Decision:
        """The scenario's first matching rule; else ``RETURN-Rnn`` in the name; else settle."""
        if self.scenario is not None:
            found = self.scenario.decide(payment, self.seed)
            if found is not None:
                return found
        rule = _RETURN_RULE.search(payment.creditor_name)
        return Decision("return", reason_code=rule[1], rule="builtin RETURN-Rnn") if rule else Decision()

    def predict(self, payment: PaymentFields) -> str:
        """The final gateway status of ``payment`` (pure); an ACH entry is never rejected alone."""
        return self.decide(payment).final_status

    def _delay(self, decision: Decision, name: str, trace: str, default: float) -> float:
        delays = dict(self.scenario.delays if self.scenario else {}) | dict(decision.delays)
        delay: Delay | None = delays.get(name)
        if delay is None:
            return default
        return delay.sample(random.Random(f"{self.seed}:{trace}:delay:{name}"))

    def strike(self, file_id: str, *, after: bool) -> list[Fault]:
        """The faults that hit ``POST /files`` for ``file_id`` (seeded; ``times`` per file).

        Before the file is taken: ``latency``, ``http_error``, ``reset``. After (the
        acknowledgement): ``reset``/``hang`` with ``after: true`` (an acknowledgement that
        never comes), ``truncated_body`` and ``wrong_content_type`` (a malformed one).
        """
        if self.scenario is None:
            return []
        rng = random.Random(f"{self.seed}:{file_id}:submit:{after}:{self._hits[(file_id, -1)]}")
        self._hits[(file_id, -1)] += 1
        hits = []
        for index, fault in enumerate(self.scenario.faults):
            if fault.kind not in _FILE_FAULTS or not fault.applies_to("submit"):
                continue
            if fault.kind in ("truncated_body", "wrong_content_type") and not after:
                continue
            if fault.kind in ("reset", "hang") and fault.after != after:
                continue
            if fault.kind in ("latency", "http_error") and after:
                continue
            draw = rng.random()
            if fault.times is not None and self._hits[(file_id, index)] >= fault.times:
                continue
            if draw < fault.probability:
                self._hits[(file_id, index)] += 1
                hits.append(fault)
        return hits

    def strike_layer(self, subject: str, exchange: str, kinds: frozenset[str]) -> list[Fault]:
        """The faults of ``kinds`` that hit ``exchange`` (``status`` or ``callback``) for ``subject`` (seeded;
        ``times`` per subject), as the core strikes them per payment."""
        if self.scenario is None:
            return []
        draws = (f"{exchange}:{subject}", -1)
        rng = random.Random(f"{self.seed}:{subject}:{exchange}:{self._hits[draws]}")
        self._hits[draws] += 1
        hits = []
        for index, fault in enumerate(self.scenario.faults):
            if fault.kind not in kinds or not fault.applies_to(exchange):
                continue
            draw = rng.random()
            counter = (f"{exchange}:{subject}", index)
            if fault.times is not None and self._hits[counter] >= fault.times:
                continue
            if draw < fault.probability:
                self._hits[counter] += 1
                hits.append(fault)
        return hits

    def use_scenario(self, scenario: Scenario | None) -> None:
        """Play ``scenario`` from now on (as the core's ``Simulator.use_scenario``); fault counts start again."""
        self.scenario = scenario
        self._hits.clear()

    def status(self) -> dict[str, Any]:
        """What ``GET /_sim/status`` answers (the core's fields, plus files and return files)."""
        return {
            "partner": "ach_nacha",
            "scenario": self.scenario.name if self.scenario else None,
            "seed": self.seed,
            "payments": len(self.entries),
            "pending": len(self._pushes),
            "journal": len(self.journal.entries),
            "files": len(self.files),
            "return_files": len(self.returns),
        }

    def statements(self, day: date) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """``day``'s statement files and the breaks injected into them (a file partner's statements).

        One NACHA return file holding every entry returned that day (what a reconciliation
        matches returns against), with the scenario's ``statement.breaks`` applied per entry
        as the core applies them (``missing_entry``, ``wrong_amount``, ``duplicate_entry``,
        ``unknown_entry``); then the day's notification-of-change files as they were sent.
        """
        returned = sorted(
            (b for b in self.entries.values() if b.returned_at is not None and b.returned_at.date() == day),
            key=lambda b: b.entry.trace_number,
        )
        breaks = self.scenario.breaks if self.scenario else ()
        items: list[tuple[EntryInput, str]] = []
        injected: list[dict[str, Any]] = []
        for b in returned:
            rng = random.Random(f"{self.seed}:{b.entry.trace_number}:statement:{day}")
            entry, copies = b.entry, 1
            for brk in breaks:
                if brk.kind == "unknown_entry" or (brk.reference and not brk.reference.search(entry.individual_id)):
                    continue
                if rng.random() >= brk.probability:
                    continue
                injected.append(
                    {"kind": brk.kind, "reference": entry.individual_id.strip(), "trace": entry.trace_number}
                )
                if brk.kind == "missing_entry":
                    copies = 0
                    break
                if brk.kind == "wrong_amount":
                    entry = replace(entry, amount_cents=entry.amount_cents + int(brk.amount_delta * 100))
                    injected[-1]["amount_cents"] = entry.amount_cents
                elif brk.kind == "duplicate_entry":
                    copies = 2
            items += [(entry, b.return_code or "R01")] * copies
        unknown = random.Random(f"{self.seed}:statement:{day}:unknown")
        for brk in breaks:
            if brk.kind != "unknown_entry" or unknown.random() >= brk.probability:
                continue
            for n in range(brk.count):
                reference, cents = f"UNKNOWN{day:%m%d}{n + 1}", unknown.randint(100, 999_999)
                trace = f"{self.rdfi_routing[:8]}{9_000_000 + n:07d}"
                stranger = EntryInput(
                    "0000000000",
                    "UNKNOWN",
                    22,
                    self.rdfi_routing,
                    "000000000",
                    cents,
                    reference,
                    "UNKNOWN PAYEE",
                    trace,
                )
                items.append((stranger, "R03"))
                injected.append({"kind": "unknown_entry", "reference": reference, "amount_cents": cents})
        files: list[dict[str, Any]] = []
        if items:
            rdfi = self.rdfi_routing
            # stamped with the day's end, not the clock: the day's return file has one identity (statement id)
            # however often it is asked for
            stamp = datetime.combine(day, time(23, 59), tzinfo=self.clock().tzinfo)
            ach = build_return_file(
                Originator(rdfi, " " + rdfi, "ODFI", "RDFI SIMULATOR", rdfi),
                [(e, code, f"{rdfi[:8]}{i:07d}") for i, (e, code) in enumerate(items, 1)],
                created_at=stamp,
                effective_date=day,
            )
            files.append({"kind": "returns", "text": render(ach), "created_at": stamp.isoformat()})
        files += [
            {"kind": "changes", "text": r["text"], "created_at": r["created_at"]}
            for r in self.returns
            if r.get("kind") == "changes" and datetime.fromisoformat(r["created_at"]).date() == day
        ]
        settled = self._settlement(day)
        if settled is not None:
            files.append({"kind": "settlement", "text": json.dumps(settled), "created_at": self.clock().isoformat()})
        self.record(
            "out",
            "statement",
            faults=sorted({i["kind"] for i in injected}),
            detail=f"{day.isoformat()}: {len(returned)} returns, {len(files)} files, {len(injected)} breaks",
        )
        return files, injected

    def _settlement(self, day: date) -> dict[str, Any] | None:
        """``day``'s settlement report (``ach_settlement``): per file (one batch per originating company) that
        settled that day, ONE debit of its entries plus ``entry_fee_cents`` per entry; ``None`` if none settled.
        Entries returned later were settled too: their money went out and comes back on the return file."""
        groups: dict[tuple[str, str], list[_Booked]] = {}
        for b in self.entries.values():
            if b.settled_at is not None and b.settled_at.date() == day:
                groups.setdefault((b.file_id, b.entry.company_id), []).append(b)
        if not groups:
            return None
        batches = []
        for n, ((_, company_id), booked) in enumerate(sorted(groups.items()), 1):
            booked.sort(key=lambda b: b.entry.trace_number)
            entries = [
                {
                    "trace": b.entry.trace_number,
                    "individual_id": b.entry.individual_id.strip(),
                    "amount_cents": b.entry.amount_cents,
                    "fee_cents": self.entry_fee_cents,
                }
                for b in booked
            ]
            gross = sum(e["amount_cents"] for e in entries)
            fees = self.entry_fee_cents * len(entries)
            batches.append(
                {
                    "id": f"SET{day:%y%m%d}{n:04d}",
                    "company_id": company_id.strip(),
                    "company_name": booked[0].entry.company_name.strip(),
                    "entries": entries,
                    "gross_cents": gross,
                    "fees_cents": fees,
                    "debit_cents": gross + fees,
                }
            )
        odfi = self.rdfi_routing
        return {"object": "ach_settlement_report", "date": day.isoformat(), "odfi": odfi, "batches": batches}

    def record(self, direction: str, kind: str, **fields: Any) -> None:
        self.journal.record(direction, kind, **fields)

    def reset(self) -> None:
        """Forget everything; return files still being pushed are not pushed."""
        for task in list(self._pushes):
            task.cancel()
        self.files.clear()
        self.entries.clear()
        self.returns.clear()
        self.journal.reset()
        self._hits.clear()

    def receive(
        self, file_id: str, text: bytes, callback_url: str | None, faults: Sequence[str] = ()
    ) -> tuple[int, dict[str, Any]]:
        """Book a file once: (HTTP status, answer); a known file id replays its first answer.

        ``faults``: those that struck the upload on its way in (latency), for the journal.
        """
        if file_id in self.files:
            status, _ = self.files[file_id]
            self.record(
                "in",
                "file",
                method="POST",
                path="/files",
                message_id=file_id,
                http_status=status,
                outcome="replayed",
                faults=list(faults),
            )
            return self.files[file_id]
        try:
            ach = read_file(text)
        except NachaError as exc:
            answer = {"status": "rejected", "file_id": file_id, "errors": [e.as_dict() for e in exc.errors]}
            self.files[file_id] = (422, answer)
            self.record(
                "in",
                "file",
                method="POST",
                path="/files",
                message_id=file_id,
                faults=list(faults),
                http_status=422,
                outcome="refused",
                detail=exc.message,
            )
            return self.files[file_id]
        now = self.clock()
        booked, duplicates = 0, []
        for batch, item in ach.entries():
            d = item.detail
            if d.trace_number in self.entries:
                self.entries[d.trace_number].received += 1
                duplicates.append(d.trace_number)
                self.record(
                    "in",
                    "submit",
                    message_id=file_id,
                    partner_reference=d.trace_number,
                    end_to_end_id=d.get("individual_id"),
                    outcome="replayed",
                )
                continue
            entry = EntryInput(
                company_id=batch.header.get("company_id"),
                company_name=batch.header.get("company_name"),
                transaction_code=d.number("transaction_code"),
                routing=d.routing,
                account=d.get("account"),
                amount_cents=d.amount_cents,
                individual_id=d.get("individual_id"),
                name=d.get("name"),
                trace_number=d.trace_number,
            )
            decision = self.decide(_fields(entry))
            self.entries[d.trace_number] = _Booked(
                entry,
                file_id,
                callback_url,
                now,
                return_code=decision.reason_code if decision.outcome == "return" else None,
                outcome=decision.outcome,
                change_code=decision.reason_code if decision.outcome == "settle" else None,
                settle_after=self._delay(decision, "settle", entry.trace_number, self.settle_delay),
                return_after=self._delay(decision, "return", entry.trace_number, self.return_delay),
            )
            self.record(
                "in",
                "submit",
                message_id=file_id,
                partner_reference=d.trace_number,
                end_to_end_id=entry.individual_id,
                outcome="created",
                partner_status="accepted",
                detail=f"rule {decision.rule}: {decision.outcome}",
            )
            booked += 1
        answer = {"status": "accepted", "file_id": file_id, "entries": booked, "duplicates": duplicates}
        self.files[file_id] = (200, answer)
        self.record(
            "in",
            "file",
            method="POST",
            path="/files",
            message_id=file_id,
            http_status=200,
            outcome="accepted",
            faults=list(faults),
            detail=f"{booked} entries, {len(duplicates)} duplicates",
        )
        return self.files[file_id]

    def advance(self) -> list[dict[str, Any]]:
        """Move every entry along its timeline to the clock's now; the return (and change) files this made."""
        now = self.clock()
        returned: dict[str | None, list[_Booked]] = {}
        changed: dict[str | None, list[_Booked]] = {}
        for b in self.entries.values():
            settles = b.outcome != "accept"
            if b.status == "accepted" and settles and now >= b.accepted_at + timedelta(seconds=b.settle_after):
                b.status, b.settled_at = "settled", now
                self.record(
                    "out",
                    "status",
                    partner_reference=b.entry.trace_number,
                    end_to_end_id=b.entry.individual_id,
                    outcome="settled",
                    partner_status="settled",
                )
            due = b.settled_at is not None and now >= b.settled_at + timedelta(seconds=b.return_after)
            if b.status == "settled" and b.return_code and due:
                b.status, b.returned_at = "returned", now
                returned.setdefault(b.callback_url, []).append(b)
            elif b.status == "settled" and b.change_code and due:
                changed.setdefault(b.callback_url, []).append(b)
        made = [self._file(url, items, now, change=False) for url, items in returned.items()]
        made += [self._file(url, items, now, change=True) for url, items in changed.items()]
        for b in (b for items in changed.values() for b in items):
            b.change_code = None  # notified once
        return made

    def _file(self, callback_url: str | None, items: list[_Booked], now: datetime, *, change: bool) -> dict[str, Any]:
        """One return file (or notification-of-change file) for ``items``, kept for ``GET /returns``."""
        seq = len(self.returns) + 1
        rdfi = self.rdfi_routing
        originator = Originator(rdfi, " " + rdfi, "ODFI", "RDFI SIMULATOR", rdfi)
        traces = [f"{rdfi[:8]}{seq % 1000:03d}{i % 10000:04d}" for i in range(1, len(items) + 1)]
        if change:
            ach = build_change_file(
                originator,
                [
                    (b.entry, b.change_code or "C01", f"CORRECTED {b.change_code}", t)
                    for b, t in zip(items, traces, strict=True)
                ],
                created_at=now,
                effective_date=now.date(),
            )
        else:
            ach = build_return_file(
                originator,
                [(b.entry, b.return_code or "R01", t) for b, t in zip(items, traces, strict=True)],
                created_at=now,
                effective_date=now.date(),
            )
        item = {
            "seq": seq,
            "kind": "changes" if change else "returns",
            "text": render(ach),
            "created_at": now.isoformat(),
            "callback_url": callback_url,
        }
        self.returns.append(item)
        for b in items:
            self.record(
                "out",
                "return_file",
                message_id=f"RET{seq}",
                partner_reference=b.entry.trace_number,
                end_to_end_id=b.entry.individual_id,
                outcome="changed" if change else "returned",
                partner_status=b.change_code if change else b.return_code,
            )
        return item

    async def push(self, item: dict[str, Any]) -> None:
        """Post a return file to the callback URL, signed; a few attempts with backoff.

        Callback-layer faults (``exchange`` is ``callback`` for them, struck per return file):
        ``callback_missing`` (never pushed: the gateway can only learn it by asking),
        ``callback_late`` (pushed after the fault's ``delay``), ``callback_duplicate`` (``copies``
        times), and ``callback_wrong_key`` / ``callback_replay`` (a copy signed with another key,
        or with a timestamp ``days`` old, comes first; then the real one, since a return file is
        the only word the gateway gets of a return).
        """
        url = item["callback_url"]
        if not url or not self.send_callbacks:
            return
        subject = f"RET{item['seq']}"
        faults = self.strike_layer(subject, "callback", _PUSH_FAULTS)
        names = [f.kind for f in faults]
        if "callback_missing" in names:
            self.record("out", "callback", path=url, message_id=subject, outcome="dropped", faults=names)
            return
        late = next((f for f in faults if f.kind == "callback_late"), None)
        if late is not None:
            await asyncio.sleep(late.delay.sample(random.Random(f"{self.seed}:{subject}:late")))
        replay = next((f for f in faults if f.kind == "callback_replay"), None)
        if replay is not None:
            old = int(self.clock().timestamp() - replay.days * 86400)
            await self._post(url, item, self.callback_secret, ["callback_replay"], attempts=1, timestamp=old)
        if "callback_wrong_key" in names:
            await self._post(url, item, _WRONG_KEY, ["callback_wrong_key"], attempts=1)
        duplicate = next((f for f in faults if f.kind == "callback_duplicate"), None)
        for _ in range(duplicate.copies if duplicate else 1):
            await self._post(url, item, self.callback_secret, [n for n in names if n not in ("callback_wrong_key",
                             "callback_replay")], attempts=self.callback_attempts)  # fmt: skip

    async def _post(
        self,
        url: str,
        item: dict[str, Any],
        secret: bytes,
        faults: list[str],
        *,
        attempts: int,
        timestamp: int | None = None,
    ) -> None:
        body = item["text"].encode()
        session = self._session or aiohttp.ClientSession()
        self._session = session
        for attempt in range(attempts):
            headers = {
                SIGNATURE_HEADER: sign_payload(secret, body, timestamp or int(self.clock().timestamp())),
                "Content-Type": "text/plain",
            }
            try:
                async with session.post(url, data=body, headers=headers) as resp:
                    outcome = "delivered" if resp.status < 300 else "refused"
                    self.record(
                        "out",
                        "callback",
                        method="POST",
                        path=url,
                        message_id=f"RET{item['seq']}",
                        http_status=resp.status,
                        outcome=outcome,
                        faults=faults,
                    )
                    if resp.status < 500:
                        return
            except aiohttp.ClientError as exc:
                self.record(
                    "out",
                    "callback",
                    method="POST",
                    path=url,
                    message_id=f"RET{item['seq']}",
                    outcome="failed",
                    faults=faults,
                    detail=type(exc).__name__,
                )
            await asyncio.sleep(0.05 * 2**attempt)

    def tick(self) -> None:
        for item in self.advance():
            task = asyncio.get_running_loop().create_task(self.push(item))
            self._pushes.add(task)
            task.add_done_callback(self._pushes.discard)

    async def idle(self) -> None:
        """Wait until every return file being pushed is delivered or given up."""
        while self._pushes:
            await asyncio.gather(*list(self._pushes), return_exceptions=True)

    async def close(self) -> None:
        for task in list(self._pushes):
            task.cancel()
        if self._session is not None:
            await self._session.close()


ODFI = web.AppKey("ach_odfi", FileDrop)


class _Reset(Exception):
    """Drop the connection without an answer (a ``reset`` or ``hang`` fault)."""


@web.middleware
async def _reset_connection(request: web.Request, handler: Callable[[web.Request], Any]) -> web.StreamResponse:
    try:
        return await handler(request)
    except _Reset:
        if request.transport is not None:
            request.transport.abort()
        return web.Response(status=204)  # the transport is gone: nothing is sent


@web.middleware
async def _auth(request: web.Request, handler: Callable[[web.Request], Any]) -> web.StreamResponse:
    if not request.path.startswith("/_sim") and request.headers.get(API_KEY_HEADER) != request.app[ODFI].api_key:
        return web.json_response({"error": "missing or invalid API key"}, status=401)
    return await handler(request)


async def _post_file(request: web.Request) -> web.Response:
    drop = request.app[ODFI]
    file_id = request.headers.get(IDEMPOTENCY_HEADER)
    if not file_id:
        return web.json_response({"error": f"{IDEMPOTENCY_HEADER} header required"}, status=400)
    body = await request.read()
    before = drop.strike(file_id, after=False)
    names = [f.kind for f in before]
    for fault in before:
        if fault.kind == "latency":
            await asyncio.sleep(fault.delay.sample(random.Random(f"{drop.seed}:{file_id}:latency")))
        elif fault.kind == "http_error":
            drop.record(
                "in",
                "file",
                method="POST",
                path="/files",
                message_id=file_id,
                http_status=fault.status,
                outcome="refused",
                faults=names,
                detail=f"simulated HTTP {fault.status}",
            )
            headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
            return web.json_response({"error": "simulated outage"}, status=fault.status, headers=headers)
        elif fault.kind == "reset":
            drop.record(
                "in",
                "file",
                method="POST",
                path="/files",
                message_id=file_id,
                outcome="dropped",
                faults=names,
                detail="connection reset before the file was taken",
            )
            raise _Reset
    status, answer = drop.receive(file_id, body, request.headers.get(CALLBACK_URL_HEADER), names)
    after = drop.strike(file_id, after=True)
    for fault in after:
        if fault.kind in ("reset", "hang"):
            drop.record(
                "in",
                "file",
                method="POST",
                path="/files",
                message_id=file_id,
                outcome="dropped",
                faults=[fault.kind],
                detail="file taken, acknowledgement lost",
            )
            if fault.kind == "hang":
                await asyncio.sleep(fault.seconds)
            raise _Reset
    if after:  # a malformed acknowledgement: the file is taken, the answer unreadable
        names = [f.kind for f in after]
        drop.record(
            "in",
            "file",
            method="POST",
            path="/files",
            message_id=file_id,
            http_status=status,
            outcome="answered",
            faults=names,
            detail="file taken, acknowledgement malformed",
        )
        text = json.dumps(answer)
        if "truncated_body" in names:
            text = text[: len(text) // 2]
        content_type = "text/html" if "wrong_content_type" in names else "application/json"
        return web.Response(text=text, status=status, content_type=content_type)
    return web.json_response(answer, status=status)


async def _answer(request: web.Request, subject: str, answer: Any, status: int = 200, **journal: Any) -> web.Response:
    """Answer a status query (``GET /entries/…``, ``GET /returns``) under the scenario's ``status``-layer faults:
    latency, HTTP errors, a reset or hang instead of the answer, or the answer cut short or mislabelled."""
    drop = request.app[ODFI]
    # one layer at a time, as the core strikes them: a malformed answer needs an answer to spoil
    transport = drop.strike_layer(subject, "status", TRANSPORT_FAULTS)
    names = [f.kind for f in transport]
    fields = {"method": "GET", "path": request.path, "faults": names, **journal}
    for fault in transport:
        if fault.kind == "latency":
            await asyncio.sleep(fault.delay.sample(random.Random(f"{drop.seed}:{subject}:status-latency")))
        elif fault.kind == "http_error":
            drop.record("in", "status", http_status=fault.status, outcome="refused", **fields)
            headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
            return web.json_response({"error": "simulated outage"}, status=fault.status, headers=headers)
        elif fault.kind in ("reset", "hang"):
            drop.record("in", "status", outcome="dropped", **fields)
            if fault.kind == "hang":
                await asyncio.sleep(fault.seconds)
            raise _Reset
    names += [f.kind for f in drop.strike_layer(subject, "status", _FILE_FAULTS - TRANSPORT_FAULTS)]
    drop.record("in", "status", http_status=status, outcome="answered", **fields)
    text = json.dumps(answer)
    if "truncated_body" in names:
        text = text[: len(text) // 2]
    content_type = "text/html" if "wrong_content_type" in names else "application/json"
    return web.Response(text=text, status=status, content_type=content_type)


async def _get_entry(request: web.Request) -> web.Response:
    drop = request.app[ODFI]
    drop.tick()
    trace = request.match_info["trace"]
    booked = drop.entries.get(trace)
    if booked is None:
        return await _answer(request, trace, {"error": "unknown trace number"}, 404, partner_reference=trace)
    return await _answer(
        request,
        trace,
        booked.describe(),
        partner_reference=trace,
        end_to_end_id=booked.entry.individual_id,
        partner_status=booked.status,
    )


async def _get_returns(request: web.Request) -> web.Response:
    drop = request.app[ODFI]
    drop.tick()
    try:
        since = int(request.query.get("since", "0"))
    except ValueError:
        return web.json_response({"error": "since must be an integer"}, status=400)
    files = [{k: r[k] for k in ("seq", "text", "created_at")} for r in drop.returns if r["seq"] > since]
    return await _answer(request, "returns", {"files": files})


async def _sim_entries(request: web.Request) -> web.Response:
    return web.json_response([b.describe() for b in request.app[ODFI].entries.values()])


async def _sim_files(request: web.Request) -> web.Response:
    return web.json_response([{"file_id": k, "http_status": s, **a} for k, (s, a) in request.app[ODFI].files.items()])


async def _sim_journal(request: web.Request) -> web.Response:
    try:
        entries = request.app[ODFI].journal.select(dict(request.query))
    except (KeyError, ValueError) as exc:
        return web.json_response({"error": {"code": "BAD_FILTER", "message": f"unknown filter {exc}"}}, status=400)
    return web.json_response({"entries": [e.as_dict() for e in entries]})


async def _get_scenario(request: web.Request) -> web.Response:
    drop = request.app[ODFI]
    scenario = drop.scenario
    return web.json_response(
        {
            "name": scenario.name if scenario else None,
            "source": scenario.source if scenario else None,
            "seed": drop.seed,
            "document": dict(scenario.document) if scenario else None,
        }
    )


async def _put_scenario(request: web.Request) -> web.Response:
    drop = request.app[ODFI]
    try:
        scenario = parse_scenario(await request.text(), source="PUT /_sim/scenario")
    except ScenarioError as exc:
        errors = [{"pointer": e.pointer, "message": e.message, "line": e.line} for e in exc.errors]
        body = {"code": "INVALID_SCENARIO", "message": exc.message, "line": exc.line, "errors": errors}
        return web.json_response({"error": body}, status=400)
    drop.use_scenario(scenario)
    return web.json_response({"name": scenario.name, "seed": drop.seed})


async def _predict(request: web.Request) -> web.Response:
    drop = request.app[ODFI]
    try:
        items = await request.json()
        fields = [
            # as the entry will read in the file: upper case, cut to the NACHA field widths
            PaymentFields(
                alpha_field(str(i["reference"]), 15),
                Decimal(str(i["amount"])),
                str(i["currency"]),
                alpha_field(str(i.get("creditor_name", "")), 22),
            )
            for i in items
        ]
    except (ValueError, KeyError, TypeError, InvalidOperation):
        message = "expected a JSON list of {reference, amount, currency, creditor_name}"
        return web.json_response({"error": {"code": "BAD_REQUEST", "message": message}}, status=400)
    return web.json_response([drop.predict(f) for f in fields])


async def _sim_status(request: web.Request) -> web.Response:
    return web.json_response(request.app[ODFI].status())


async def _sim_statements(request: web.Request) -> web.Response:
    drop = request.app[ODFI]
    drop.tick()
    raw = request.match_info.get("day") or request.query.get("date", "")
    try:
        day = date.fromisoformat(raw)
    except ValueError:
        message = f"date must be YYYY-MM-DD, not {raw!r}"
        return web.json_response({"error": {"code": "BAD_DATE", "message": message}}, status=400)
    files, injected = drop.statements(day)
    return web.json_response(
        {"date": day.isoformat(), "files": files, "breaks": injected},
        headers={"X-Sim-Breaks": json.dumps(injected)[:8000]},
    )


async def _sim_advance(request: web.Request) -> web.Response:
    request.app[ODFI].tick()
    return web.json_response({"returns": len(request.app[ODFI].returns)})


async def _sim_reset(request: web.Request) -> web.Response:
    request.app[ODFI].reset()
    return web.json_response({"reset": True})


def _scenario(setting: Any) -> Scenario | None:
    """The ``scenario`` setting as the core reads it: a shipped name, a file, a mapping, or a ``Scenario``."""
    if not setting or isinstance(setting, Scenario):
        return setting or None
    if isinstance(setting, Mapping):
        return parse_scenario(setting, source="simulators.ach_nacha.scenario")
    return load_scenario(str(setting))


def create_app(settings: Mapping[str, Any]) -> web.Application:
    """The file drop. Settings: ``api_key``, ``callback_secret`` (required, the adapter's values);
    ``settle_delay`` (0.2 s), ``return_delay`` (0.2 s), ``send_callbacks`` (true), ``tick`` (0.05 s),
    ``callback_attempts`` (4), ``rdfi_routing``, ``entry_fee_cents`` (0), ``clock`` (a callable, for tests);
    ``scenario`` (a shipped scenario's name or a file) and ``seed``."""
    for name in ("api_key", "callback_secret"):
        if not isinstance(settings.get(name), str) or len(settings[name]) < 8:
            raise ConfigError(f"simulators.ach_nacha.{name}: a string of at least 8 characters is required")
    drop = FileDrop(
        api_key=settings["api_key"],
        callback_secret=settings["callback_secret"].encode(),
        clock=settings.get("clock") or system_clock,
        settle_delay=float(settings.get("settle_delay", 0.2)),
        return_delay=float(settings.get("return_delay", 0.2)),
        send_callbacks=bool(settings.get("send_callbacks", True)),
        callback_attempts=int(settings.get("callback_attempts", 4)),
        rdfi_routing=str(settings.get("rdfi_routing", "091000019")),
        entry_fee_cents=int(settings.get("entry_fee_cents", 0)),
        scenario=_scenario(settings.get("scenario")),
        seed_setting=int(settings["seed"]) if settings.get("seed") is not None else None,
    )
    tick = float(settings.get("tick", 0.05))
    app = web.Application(middlewares=[_reset_connection, _auth])
    app[ODFI] = drop

    async def ticker(app: web.Application) -> AsyncIterator[None]:
        async def loop() -> None:
            while True:
                await asyncio.sleep(tick)
                try:
                    drop.tick()
                except Exception:  # a bug in one tick must not stop the timeline
                    log.exception("ACH simulator tick failed")

        task = asyncio.get_running_loop().create_task(loop())
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await drop.close()

    app.cleanup_ctx.append(ticker)
    app.router.add_post("/files", _post_file)
    app.router.add_get("/entries/{trace}", _get_entry)
    app.router.add_get("/returns", _get_returns)
    app.router.add_get("/statements/{day}", _sim_statements)
    app.router.add_get("/_sim/entries", _sim_entries)
    app.router.add_get("/_sim/payments", _sim_entries)
    app.router.add_get("/_sim/status", _sim_status)
    app.router.add_get("/_sim/statements", _sim_statements)
    app.router.add_get("/_sim/statements/{day}", _sim_statements)
    app.router.add_get("/_sim/files", _sim_files)
    app.router.add_get("/_sim/journal", _sim_journal)
    app.router.add_post("/_sim/advance", _sim_advance)
    app.router.add_post("/_sim/reset", _sim_reset)
    app.router.add_get("/_sim/scenario", _get_scenario)
    app.router.add_put("/_sim/scenario", _put_scenario)
    app.router.add_post("/_sim/predict", _predict)
    app.router.add_routes(catalogue_routes("ach_nacha"))
    return app
