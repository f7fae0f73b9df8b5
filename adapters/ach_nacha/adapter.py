"""The ACH adapter: US payments collected into NACHA files, sent at cut-off times, returns read back.

Wire protocol (what the ODFI's file drop, and its simulator, speak):

- ``POST {base_url}/files``: one NACHA file (``text/plain``), headers ``X-Api-Key``,
  ``Idempotency-Key: <file id>`` and ``X-Callback-Url``. ``200 {"status": "accepted"}`` or
  ``422 {"status": "rejected", "errors": [...]}``; a resent file id gets the first answer.
- ``GET {base_url}/entries/{trace number}``: ``{"status": "accepted"|"settled"|"returned",
  "return_code": ...}``; 404 if unknown.
- ``GET {base_url}/returns?since=<seq>``: the return files produced since ``seq``.
- ``GET {base_url}/statements/{day}``: the day's statement files (settlement report, returns, changes).
- The file drop posts each return file to ``X-Callback-Url``, signed (``X-Signature``,
  HMAC with ``callback_secret``); ``parse_callback`` reads it with the same NACHA reader.

``submit`` only spools the entry (see ``spool``); ``run_cutoff`` builds and delivers the files.
"""

from __future__ import annotations

import asyncio
import logging
import string
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar

import aiohttp
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from gateway.adapter import (
    AdapterContext,
    Capabilities,
    HttpAdapter,
    PaymentOrder,
    RenderedMessage,
    StatusUpdate,
    SubmitResult,
    http_settings_schema,
)
from gateway.domain.accounts import UsAccount
from gateway.domain.statements import FetchedFile, StatementFetch
from gateway.domain.status import Status
from gateway.errors import ContractError, PermanentPartnerError, TransientPartnerError
from gateway.partners.http import CALLBACK_URL_HEADER, IDEMPOTENCY_HEADER, TRANSIENT_HTTP_STATUSES
from gateway_adapters.ach_nacha.calendar import CutoffCalendar
from gateway_adapters.ach_nacha.contracts import (
    ENTRY_STATUS,
    FILE_ACKNOWLEDGEMENT,
    RETURN_FILES,
    contract_files,
    errors,
)
from gateway_adapters.ach_nacha.nacha import (
    EntryInput,
    Originator,
    build_file,
    read_file,
    render,
    returns_in,
)
from gateway_adapters.ach_nacha.spool import Spool

__all__ = ["API_KEY_HEADER", "SIGNATURE_HEADER", "AchNachaAdapter"]

log = logging.getLogger(__name__)

API_KEY_HEADER = "X-Api-Key"
SIGNATURE_HEADER = "X-Signature"

_DEFAULT_MAX_AMOUNT = "99999999.99"  # the entry's amount field holds 10 digits of cents
_CHECKING_CREDIT = 22
#: a statement file's kind on the file drop -> the statement format it is read with
_STATEMENT_KINDS = {"settlement": "ach_settlement", "returns": "nacha", "changes": "nacha"}
_ROUTING = {"type": "string", "pattern": "^[0-9]{9}$"}


class AchNachaAdapter(HttpAdapter):
    """An ODFI that takes NACHA files at cut-off times and sends return files back."""

    name: ClassVar[str] = "ach_nacha"
    partner_label: ClassVar[str] = "the file drop"
    partner_contracts: ClassVar[Mapping[str, str]] = contract_files()
    account_kinds: ClassVar[frozenset[str]] = frozenset({"us"})
    payment_types: ClassVar[frozenset[str]] = frozenset({"credit_transfer", "payout", "refund"})
    #: each closed day's settlement report and return / change files (``fetch_statements``)
    statement_sources: ClassVar[frozenset[str]] = frozenset({"nacha", "ach_settlement"})
    settings_schema: ClassVar[Mapping[str, Any]] = http_settings_schema(
        ["api_key", "callback_secret"],
        properties={
            "spool_dir": {"type": "string", "minLength": 1, "default": "var/ach"},
            "cutoffs": {
                "type": "array",
                "items": {"type": "string", "pattern": "^([01][0-9]|2[0-3]):[0-5][0-9]$"},
                "minItems": 1,
                "uniqueItems": True,
                "default": ["10:30", "14:45", "17:00"],
            },
            "timezone": {"type": "string", "minLength": 1, "default": "America/New_York"},
            "holidays": {
                "oneOf": [
                    {"const": "federal_reserve"},
                    {"type": "array", "items": {"type": "string", "format": "date"}, "uniqueItems": True},
                ],
                "default": "federal_reserve",
            },
            "odfi_routing": {**_ROUTING, "default": "021000021"},
            "immediate_destination": _ROUTING,
            "immediate_origin": {"type": "string", "pattern": "^[ 0-9A-Za-z]{1,10}$", "default": "1234567890"},
            "destination_name": {"type": "string", "maxLength": 23, "default": "ODFI"},
            "origin_name": {"type": "string", "maxLength": 23, "default": "PARTNER GATEWAY"},
            "company_id": {"type": "string", "pattern": "^[ 0-9A-Za-z]{1,10}$", "default": "1234567890"},
            "company_name": {"type": "string", "minLength": 1, "maxLength": 16, "default": "PARTNER GATEWAY"},
            "originators": {
                "description": "business unit → its own originating company (one batch per company)",
                "type": "object",
                "additionalProperties": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["company_id", "company_name"],
                    "properties": {
                        "company_id": {"type": "string", "pattern": "^[ 0-9A-Za-z]{1,10}$"},
                        "company_name": {"type": "string", "minLength": 1, "maxLength": 16},
                    },
                },
                "default": {},
            },
            "sec_code": {"enum": ["PPD", "CCD", "WEB"], "default": "CCD"},
            "entry_description": {"type": "string", "minLength": 1, "maxLength": 10, "default": "PAYMENT"},
            "tick_seconds": {"type": "number", "exclusiveMinimum": 0, "default": 30},
        },
    )

    @classmethod
    def capabilities_from(cls, settings: Mapping[str, Any]) -> Capabilities:
        """ACH moves US dollars between US accounts, up to the NACHA amount field's limit."""
        return Capabilities(
            currencies=frozenset({"USD"}),
            account_kinds=cls.account_kinds,
            types=cls.payment_types,
            max_amount=Decimal(_DEFAULT_MAX_AMOUNT),
            instant=False,
        )

    def __init__(self, settings: Mapping[str, Any], context: AdapterContext) -> None:
        super().__init__(settings, context)
        settings = self.settings  # with the schema's defaults
        self._api_key = str(settings["api_key"])
        self._callback_secret = str(settings["callback_secret"]).encode()
        self.spool = Spool(Path(settings["spool_dir"]))
        self.calendar = CutoffCalendar.from_settings(
            settings["cutoffs"],
            settings["timezone"],
            settings["holidays"],
        )
        odfi = str(settings["odfi_routing"])
        self.originator = Originator(
            immediate_destination=str(settings.get("immediate_destination", odfi)),  # default: the ODFI
            immediate_origin=str(settings["immediate_origin"]),
            destination_name=str(settings["destination_name"]),
            origin_name=str(settings["origin_name"]),
            odfi_routing=odfi,
        )
        self.company = (
            str(settings["company_id"]),
            str(settings["company_name"]),
        )
        self.originators = {bu: (o["company_id"], o["company_name"]) for bu, o in settings["originators"].items()}
        self.sec_code = str(settings["sec_code"])
        self.entry_description = str(settings["entry_description"])
        self.tick_seconds = float(settings["tick_seconds"])
        self._scheduler: AsyncIOScheduler | None = None
        self._lock = asyncio.Lock()

    def __repr__(self) -> str:  # secrets stay out of reprs and therefore logs
        return f"AchNachaAdapter(base_url={self.base_url!r}, spool={str(self.spool.root)!r})"

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        await super().start()
        # APScheduler only ticks; whether a cut-off is due is decided by the gateway's clock
        self._scheduler = AsyncIOScheduler(timezone="UTC")
        self._scheduler.add_job(
            self.run_due, "interval", seconds=self.tick_seconds, id="ach-cutoff", max_instances=1, coalesce=True
        )
        self._scheduler.start()

    async def close(self) -> None:
        if self._scheduler is not None and self._scheduler.running:
            self._scheduler.shutdown(wait=False)
        self._scheduler = None
        await super().close()

    # -- submit: spool only ----------------------------------------------------------------

    def render(self, order: PaymentOrder) -> RenderedMessage:
        """The NACHA file this payment would go out in alone (trace sequence 0: nothing is spooled)."""
        account = order.creditor.account
        if not isinstance(account, UsAccount):
            raise PermanentPartnerError("ACH needs a US account number and routing number")
        company_id, company_name = self.originators.get(order.business_unit, self.company)
        entry = {
            "company_id": company_id,
            "company_name": company_name,
            "routing": account.routing,
            "account": account.number,
            "amount_cents": int(order.money.amount.scaleb(2)),
            "reference": order.reference,
            "name": order.creditor.name,
            "trace_number": f"{self.originator.odfi_routing[:8]}0000000",
            "payment_information": order.remittance_information,
        }
        local = self.context.clock().astimezone(self.calendar.timezone)
        try:
            text = render(
                build_file(
                    self.originator,
                    [_entry_input(entry)],
                    created_at=local,
                    effective_date=self.calendar.effective_date(local),
                    sec_code=self.sec_code,
                    entry_description=self.entry_description,
                )
            )
        except (ContractError, ValueError) as exc:
            raise PermanentPartnerError(
                order.redact(f"order cannot be expressed as a NACHA entry: {exc}"), reason_code="FF01"
            ) from None
        return RenderedMessage("NACHA", "text/plain", text.encode("ascii", "replace"))

    async def submit(self, order: PaymentOrder) -> SubmitResult:
        """Spool the entry for the next cut-off; the same instruction id always gets the same trace number."""
        account = order.creditor.account
        if not isinstance(account, UsAccount):
            raise PermanentPartnerError("ACH needs a US account number and routing number")
        async with self._lock, self.spool.exclusive():
            known = self.spool.entry(order.id)
            if known is None:
                company_id, company_name = self.originators.get(order.business_unit, self.company)
                trace = f"{self.originator.odfi_routing[:8]}{self.spool.next_sequence():07d}"
                known = {
                    "instruction_id": order.id,
                    "reference": order.reference,
                    "trace_number": trace,
                    "company_id": company_id,
                    "company_name": company_name,
                    "routing": account.routing,
                    "account": account.number,
                    "amount_cents": int(order.money.amount.scaleb(2)),
                    "name": order.creditor.name,
                    "payment_information": order.remittance_information,
                    "queued_at": self.context.clock().isoformat(),
                    "file_id": None,
                }
                self.spool.put_entry(order.id, known)
        return SubmitResult(status=Status.SUBMITTED, partner_reference=known["trace_number"], partner_status="queued")

    # -- cut-offs ----------------------------------------------------------------------------

    async def run_due(self) -> list[str]:
        """The scheduler's tick: run the cut-off if one passed since the last run, else retry undelivered files.

        Decided while holding the spool's lock: of several processes sharing the spool, one runs the cut-off.
        """
        async with self._lock, self.spool.exclusive():
            now = self.context.clock()
            due = self.calendar.last_cutoff(now)
            last = self.spool.state().get("last_cutoff")
            if last is None:
                # never ran: only a cut-off after the oldest spooled entry is due
                queued = [e["queued_at"] for e in self.spool.pending_entries()]
                last = min(queued) if queued else now.isoformat()
            if due is not None and due > datetime.fromisoformat(last):
                return await self._cutoff(now)
            return await self._deliver_pending()

    async def run_cutoff(self, now: datetime | None = None) -> list[str]:
        """File every spooled entry (one file, one batch per originating company) and deliver; the file ids sent."""
        async with self._lock, self.spool.exclusive():
            return await self._cutoff(now or self.context.clock())

    async def _cutoff(self, now: datetime) -> list[str]:
        self._finish_filing()
        pending = self.spool.pending_entries()
        if pending:
            self._make_file(pending, now)
        self.spool.set_state(last_cutoff=(self.calendar.last_cutoff(now) or now).isoformat())
        return await self._deliver_pending()

    def _make_file(self, pending: list[dict[str, Any]], now: datetime) -> None:
        local = now.astimezone(self.calendar.timezone)
        same_day = [f for f in self.spool.files() if f["created_on"] == local.date().isoformat()]
        modifiers = string.ascii_uppercase + string.digits
        file_id = f"{local:%Y%m%d%H%M%S}-{len(same_day) + 1}"
        ach = build_file(
            self.originator,
            [_entry_input(e) for e in pending],
            created_at=local,
            effective_date=self.calendar.effective_date(local),
            file_id_modifier=modifiers[len(same_day) % len(modifiers)],
            sec_code=self.sec_code,
            entry_description=self.entry_description,
        )
        keys = [e["instruction_id"] for e in pending]
        # the file first, then its entries: a crash in between is finished by _finish_filing
        self.spool.put_file(
            {
                "file_id": file_id,
                "created_on": local.date().isoformat(),
                "text": render(ach),
                "entries": keys,
                "state": "pending",
                "answer": None,
            }
        )
        self._finish_filing()

    def _finish_filing(self) -> None:
        for f in self.spool.files():
            for key in f["entries"]:
                entry = self.spool.entry(key)
                if entry is not None and entry.get("file_id") != f["file_id"]:
                    self.spool.put_entry(key, {**entry, "file_id": f["file_id"]})

    async def _deliver_pending(self) -> list[str]:
        sent = []
        for f in self.spool.files():
            if f["state"] == "pending" and await self._deliver(f):
                sent.append(f["file_id"])
        return sent

    async def _deliver(self, record: dict[str, Any]) -> bool:
        headers = {
            API_KEY_HEADER: self._api_key,
            IDEMPOTENCY_HEADER: record["file_id"],
            CALLBACK_URL_HEADER: self.context.callback_url,
            "Content-Type": "text/plain",
        }
        try:
            async with self.http.session().post(f"{self.base_url}/files", data=record["text"], headers=headers) as resp:
                answer = await resp.json(content_type=None) if resp.status in (200, 422) else None
                status = resp.status
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            log.warning("ACH file %s not delivered (will retry): %s", record["file_id"], exc)
            return False
        problems = errors(FILE_ACKNOWLEDGEMENT, answer) if answer is not None else []
        if problems or (answer is not None and answer.get("file_id") != record["file_id"]):
            # a malformed acknowledgement is no acknowledgement: the file may or may not have been
            # taken, so it stays pending and goes again under the same file id (the ODFI books it once)
            what = f"{problems[0].pointer or '/'}: {problems[0].message}" if problems else "another file's id"
            log.warning(
                "ACH file %s: acknowledgement does not fit the contract (%s); will resend", record["file_id"], what
            )
            return False
        if status == 200 and answer and answer.get("status") == "accepted":
            self.spool.put_file({**record, "state": "delivered", "answer": answer})
            return True
        if status == 422 and answer and answer.get("status") == "rejected":
            log.error("ACH file %s rejected: %s", record["file_id"], answer.get("errors"))
            self.spool.put_file({**record, "state": "rejected", "answer": answer})
            return True
        log.warning("ACH file %s: file drop answered HTTP %s (will retry)", record["file_id"], status)
        return False

    # -- status ------------------------------------------------------------------------------

    async def poll(self, order: PaymentOrder) -> StatusUpdate | None:
        entry = self.spool.entry(order.id)
        if entry is None or not entry.get("file_id"):
            return None
        record = self.spool.file(entry["file_id"])
        if record is None or record["state"] == "pending":
            return None
        trace = entry["trace_number"]
        if record["state"] == "rejected":
            errors = (record.get("answer") or {}).get("errors") or []
            detail = "; ".join(str(e) for e in errors)[:200] or "file rejected"
            return StatusUpdate(
                Status.REJECTED,
                instruction_id=order.id,
                partner_reference=trace,
                partner_status="file_rejected",
                reason_code="FILE_REJECTED",
                reason=detail,
            )
        body = await self._get(f"/entries/{trace}", ENTRY_STATUS)
        if body is None:
            return None
        state = body.get("status")
        if state == "settled":
            return StatusUpdate(Status.SETTLED, instruction_id=order.id, partner_reference=trace, partner_status=state)
        if state == "returned":
            code = str(body.get("return_code") or "")
            return StatusUpdate(
                Status.RETURNED,
                instruction_id=order.id,
                partner_reference=trace,
                partner_status=code,
                reason_code=code,
                reason=body.get("return_reason"),
            )
        return None

    # -- statements -----------------------------------------------------------------------------------

    async def fetch_statements(self, request: StatementFetch) -> list[FetchedFile]:
        """Each closed day's statement files (``GET {base_url}/statements/{day}``, ``X-Api-Key``): the
        settlement report (``ach_settlement``: each settled batch one debit line) and the day's return and
        notification-of-change files (``nacha``). A day's files are final once it is over; each has one
        identity, so asking again adds nothing."""
        files = []
        for day in request.closed_days():
            body = await self._fetch(f"/statements/{day.isoformat()}")
            listed = (body or {}).get("files") if isinstance(body, dict) else None
            if not isinstance(listed, list):
                raise TransientPartnerError(f"file drop answer to GET /statements/{day} holds no files list")
            for n, item in enumerate(listed, 1):
                kind = item.get("kind") if isinstance(item, dict) else None
                text = item.get("text") if isinstance(item, dict) else None
                if kind not in _STATEMENT_KINDS or not isinstance(text, str):
                    raise TransientPartnerError(f"file drop answer to GET /statements/{day}: file {n} is not one")
                name = f"ach {kind} {day.isoformat()}" + (f" #{n}" if kind == "changes" else "")
                files.append(FetchedFile(_STATEMENT_KINDS[kind], name, text.encode()))
        return files

    async def fetch_returns(self, since: int = 0) -> tuple[list[StatusUpdate], int]:
        """Return files produced after sequence ``since``: their status updates and the sequence to ask from next."""
        body = await self._get(f"/returns?since={since}", RETURN_FILES)
        updates: list[StatusUpdate] = []
        for item in (body or {}).get("files", []):
            updates.extend(_return_updates(item["text"]))
            since = max(since, int(item["seq"]))
        return updates, since

    async def _get(self, path: str, message: str) -> dict[str, Any] | None:
        """The answer to ``GET path`` checked against contract ``message``; ``None`` on 404.

        An answer that does not fit is no answer (``TransientPartnerError``): ask again later.
        """
        body = await self._fetch(path)
        problems = errors(message, body) if body is not None else []
        if problems:
            raise TransientPartnerError(
                f"file drop answer to GET {path.split('?')[0]} does not fit {message}: "
                f"{problems[0].pointer or '/'}: {problems[0].message}"
            )
        return body

    async def _fetch(self, path: str) -> dict[str, Any] | None:
        try:
            async with self.http.session().get(
                f"{self.base_url}{path}", headers={API_KEY_HEADER: self._api_key}
            ) as resp:
                if resp.status == 404:
                    return None
                if resp.status in TRANSIENT_HTTP_STATUSES:
                    raise TransientPartnerError(f"file drop answered HTTP {resp.status}")
                if resp.status != 200:
                    raise PermanentPartnerError(f"file drop answered HTTP {resp.status}")
                return await resp.json(content_type=None)
        except ValueError:
            raise TransientPartnerError("file drop answered something that is not JSON") from None
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise TransientPartnerError(f"file drop unreachable: {type(exc).__name__}") from None

    def parse_callback(self, headers: Mapping[str, str], body: bytes) -> list[StatusUpdate]:
        """A pushed return file: signature first, then the NACHA reader (``NachaError`` is a ``ContractError``)."""
        self.verify_signed(self._callback_secret, body, headers, SIGNATURE_HEADER)
        return _return_updates(body)


def _entry_input(e: Mapping[str, Any]) -> EntryInput:
    return EntryInput(
        company_id=e["company_id"],
        company_name=e["company_name"],
        transaction_code=_CHECKING_CREDIT,
        routing=e["routing"],
        account=e["account"],
        amount_cents=int(e["amount_cents"]),
        individual_id=e["reference"],
        name=e["name"],
        trace_number=e["trace_number"],
        payment_information=e.get("payment_information"),
    )


def _return_updates(text: str | bytes) -> list[StatusUpdate]:
    updates = []
    for notice in returns_in(read_file(text)):
        returned = notice.kind == "return"
        updates.append(
            StatusUpdate(
                Status.RETURNED if returned else None,
                partner_reference=notice.original_trace,
                partner_status=notice.reason_code,
                reason_code=notice.reason_code if returned else None,
                reason=notice.reason,
            )
        )
    return updates
