"""The file desk: pain.001 files in (API, CLI, inbox folders), their payments as instructions, pain.002 out.

A file is a group of the intake writer (``IntakeGroup``): its row (``payment_files``),
its idempotency record (key ``file:<MsgId>``, hash = the file's SHA-256) and every
accepted payment's instruction, event and outbox row are written in ONE transaction.
The same file again is answered as the first time and writes nothing; another file
with a message id already used is a 409.

A file whose control figures do not add up is refused whole: it is stored as
``rejected`` (so the same file again gets the same answer) with a pain.002 ``RJCT``
saying why, and no payment of it becomes an instruction.

The pain.002 of a file is built from the database each time (``report``), so the API
always shows the current state. A copy is written to ``files.outbox_dir`` at intake
and again whenever the file's payments have new events (``write_due_reports``, every
``files.report_seconds``): the file's row keeps the payments' event count the copy was
written at, so a change committed while a copy was being written is never missed.
"""

from __future__ import annotations

import contextlib
import logging
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.config import FileSettings
from gateway.contracts.registry import ContractRegistry
from gateway.domain.clock import Clock
from gateway.domain.ids import new_id
from gateway.domain.status import TERMINAL, Status
from gateway.errors import (
    ConflictError,
    ContractError,
    FieldError,
    GatewayError,
    NotFoundError,
    ServiceUnavailableError,
)
from gateway.intake.batch import MAX_ITEMS, prepare
from gateway.intake.pain001 import PaymentFile, read_pain001
from gateway.intake.pain002 import ReportLine, build_report, tx_status
from gateway.store.atomic import write_atomic
from gateway.store.codec import InstructionCodec
from gateway.store.inbox import move_aside, reason_text, settled_files
from gateway.store.intake import GroupResult, IntakeGroup, IntakeOutcome, IntakeResult, IntakeWriter
from gateway.store.tables import business_units, instruction_events, instructions, payment_files

__all__ = ["ALL_REFUSED", "FILE_ID_RE", "FileAnswer", "FileDesk", "reason_code"]

log = logging.getLogger(__name__)

FILE_ID_RE = re.compile(r"^fil_[0-9A-Z]{26}$")
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")
_ISO_REASON = re.compile(r"^[A-Z0-9]{4}$")
_FINAL = frozenset(s.value for s in TERMINAL)
#: the reason of a file none of whose payments could be taken in (each one's reason is in the report)
ALL_REFUSED = "every payment of the file was refused (see its status report)"


def reason_code(error: GatewayError) -> str:
    """The ISO ExternalStatusReason1Code for a payment refused on intake, from what failed."""
    if error.slug == "duplicate-reference":
        return "AM05"  # duplication
    pointer = error.errors[0].pointer if error.errors else ""
    for part, code in (
        ("/account", "AC01"),  # incorrect account number
        ("/agent", "RC01"),  # bank identifier incorrect
        ("/amount", "AM12"),  # invalid amount
        ("/currency", "AM03"),  # currency not allowed
        ("/name", "BE01"),  # inconsistent with end customer
    ):
        if part in pointer:
            return code
    return "NARR"


@dataclass(frozen=True)
class FileAnswer:
    """What a submission is answered with (the same on a replay)."""

    status_code: int
    body: dict[str, Any]
    replayed: bool = False


class FileDesk:
    """Takes pain.001 files in and keeps their pain.002 status reports current."""

    def __init__(
        self,
        engine: AsyncEngine,
        clock: Clock,
        contracts: ContractRegistry,
        codec: InstructionCodec,
        writer: IntakeWriter,
        settings: FileSettings,
    ) -> None:
        self.engine = engine
        self.clock = clock
        self.contracts = contracts
        self.codec = codec
        self.writer = writer
        self.settings = settings

    # -- intake ---------------------------------------------------------------------------

    async def submit(self, body: bytes, *, business_unit_id: str, submitted_by: str | None, source: str) -> FileAnswer:
        """Read, check and take in one file; ``GatewayError`` (4xx) when it is refused before it is a file."""
        parsed = read_pain001(body, max_bytes=self.settings.max_bytes)
        if len(parsed.payments) > MAX_ITEMS:
            raise ContractError(
                f"a file holds at most {MAX_ITEMS} payments, this one has {len(parsed.payments)}; split it",
                errors=[FieldError("/Document/CstmrCdtTrfInitn", f"more than {MAX_ITEMS} transactions")],
            )
        now = self.clock()
        file_id = new_id("fil")
        version = self.contracts.latest("instruction")
        if parsed.mismatch is None:
            prepared = await prepare(
                self.contracts,
                self.codec,
                [p.document for p in parsed.payments],
                version=version,
                business_unit_id=business_unit_id,
                submitted_by=submitted_by,
                group_id=file_id,
                now=now,
                prefix="/payments",
            )
        else:
            prepared = None
        summary: dict[str, Any] = {}

        def summarize(results: list[IntakeResult]) -> dict[str, Any]:
            if not summary:
                summary.update(_summary(file_id, parsed, prepared, results, now))
            return summary

        def answer(results: list[IntakeResult]) -> tuple[int, dict[str, Any]]:
            found = summarize(results)
            return found["status_code"], found["body"]

        def extra(results: list[IntakeResult]) -> list[tuple[Any, list[dict[str, Any]]]]:
            found = summarize(results)
            row = {
                "id": file_id,
                "business_unit_id": business_unit_id,
                "message_id": parsed.message_id,
                "content_sha256": parsed.sha256,
                "version": parsed.version,
                "status": found["status"],
                "reason": found["reason"],
                "payments": len(parsed.payments),
                "control_sum": parsed.control_sum,
                "items": found["items"],
                "source": source,
                "report_at": None,
                "report_events": None,
                "report_final": False,
                "created_at": now,
            }
            return [(payment_files, [row])]

        group = IntakeGroup(
            id=file_id,
            business_unit_id=business_unit_id,
            idempotency_key=f"file:{parsed.message_id}",
            request_hash=parsed.sha256,
            items=prepared.items if prepared else [],
            answer=answer,
            now=now,
            extra=extra,
        )
        try:
            result: GroupResult = await self.writer.submit_group(group)
        except RuntimeError as exc:
            raise ServiceUnavailableError(str(exc)) from None
        except Exception:
            log.exception("file %s (%s) could not be stored", file_id, parsed.message_id)
            raise ServiceUnavailableError("the store refused the write; nothing was accepted") from None
        if result.outcome is IntakeOutcome.KEY_CONFLICT:
            raise ConflictError(
                f"message id {parsed.message_id!r} was used by another file with different content; "
                "give a corrected file a new MsgId",
                errors=[FieldError("/Document/CstmrCdtTrfInitn/GrpHdr/MsgId", "already used")],
            )
        if result.outcome is IntakeOutcome.CREATED:
            with contextlib.suppress(Exception):  # the report job writes it if this fails
                await self.write_report(file_id)
        return FileAnswer(result.status_code, result.response or {}, result.outcome is IntakeOutcome.REPLAYED)

    # -- reading ----------------------------------------------------------------------------

    async def _row(self, business_unit_id: str | None, file_id: str) -> Any:
        stmt = select(payment_files, business_units.c.name.label("business_unit")).join(
            business_units, business_units.c.id == payment_files.c.business_unit_id
        )
        stmt = stmt.where(payment_files.c.id == file_id)
        if business_unit_id is not None:
            stmt = stmt.where(payment_files.c.business_unit_id == business_unit_id)
        async with self.engine.connect() as conn:
            row = (await conn.execute(stmt)).mappings().first()
        if row is None:
            raise NotFoundError(f"no file {file_id!r}")
        return row

    async def _states(self, file_id: str) -> tuple[dict[str, str], dict[str, tuple[str | None, str | None]], int]:
        """The file's instructions: status by id, the reason of each refused one, and their event count."""
        async with self.engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(instructions.c.id, instructions.c.status, instructions.c.event_count).where(
                        instructions.c.batch_id == file_id
                    )
                )
            ).all()
            statuses = {r.id: r.status for r in rows}
            refused = [r.id for r in rows if tx_status(Status(r.status)) == "RJCT"]
            reasons: dict[str, tuple[str | None, str | None]] = {}
            for start in range(0, len(refused), 1000):
                chunk = refused[start : start + 1000]
                events = await conn.execute(
                    select(
                        instruction_events.c.instruction_id,
                        instruction_events.c.status,
                        instruction_events.c.reason_code,
                        instruction_events.c.reason,
                    )
                    .where(instruction_events.c.instruction_id.in_(chunk), instruction_events.c.applied.is_(True))
                    .order_by(instruction_events.c.sequence)
                )
                for e in events:
                    if e.status == statuses[e.instruction_id]:
                        reasons[e.instruction_id] = (e.reason_code, e.reason)
        return statuses, reasons, sum(r.event_count for r in rows)

    async def view(self, business_unit_id: str, file_id: str) -> dict[str, Any]:
        """The file as ``POST /v1/files`` answered it, with its payments counted by status now."""
        row = await self._row(business_unit_id, file_id)
        statuses, _, _ = await self._states(file_id)
        by_status: dict[str, int] = {}
        for status in statuses.values():
            by_status[status] = by_status.get(status, 0) + 1
        refused = sum(1 for item in row["items"] if "id" not in item)
        return {
            **_head(row["id"], row["message_id"], row["version"], row["payments"], row["status"], row["created_at"]),
            "accepted": row["payments"] - refused,
            "refused": refused,
            "reason": row["reason"],
            "by_status": dict(sorted(by_status.items())),
        }

    async def report(self, business_unit_id: str | None, file_id: str) -> bytes:
        """The file's pain.002 as of now."""
        row = await self._row(business_unit_id, file_id)
        return (await self._report(row))[0]

    async def _report(self, row: Any) -> tuple[bytes, int, bool]:
        """The report, the payments' event count it reflects, and whether every payment is final."""
        statuses, reasons, events = await self._states(row["id"])
        lines: list[ReportLine] = []
        for item in row["items"]:
            instruction_id = item.get("id")
            if instruction_id is None:
                lines.append(ReportLine(item["pmtinf"], item["e2e"], "RJCT", item.get("code"), item.get("detail")))
                continue
            status = Status(statuses[instruction_id])
            code, reason = reasons.get(instruction_id, (None, None))
            if tx_status(status) == "RJCT":
                code = code if code and _ISO_REASON.match(code) else "NARR"
                reason = reason or f"payment {status.value}"
            lines.append(ReportLine(item["pmtinf"], item["e2e"], tx_status(status), code, reason, instruction_id))
        refused_whole = row["status"] == "rejected" and row["reason"] != ALL_REFUSED
        group_reason = ("FF01", row["reason"]) if refused_whole else None
        informations = _informations(row["items"])
        body = build_report(
            report_id=f"{row['id']}-{events}",
            created_at=self.clock(),
            original_message_id=row["message_id"],
            original_version=row["version"],
            number_of_transactions=row["payments"],
            control_sum=row["control_sum"],
            payment_informations=informations,
            lines=lines,
            group_reason=group_reason,
        )
        final = all(s in _FINAL for s in statuses.values())
        return body, events, final

    # -- the outbox folder -------------------------------------------------------------------------

    def report_path(self, business_unit: str, message_id: str, file_id: str) -> Path:
        """Where a file's pain.002 is written: ``<outbox_dir>/<business unit>/<MsgId>.<file id>.pain002.xml``."""
        name = f"{_SAFE_NAME.sub('_', message_id)[:60]}.{file_id}.pain002.xml"
        return Path(self.settings.outbox_dir) / _SAFE_NAME.sub("_", business_unit) / name

    async def write_report(self, file_id: str) -> Path:
        """Write the file's current pain.002 to the outbox folder (atomically) and remember what it reflects."""
        row = await self._row(None, file_id)
        body, events, final = await self._report(row)
        path = self.report_path(row["business_unit"], row["message_id"], file_id)
        _write_atomically(path, body)
        async with self.engine.begin() as conn:
            await conn.execute(
                update(payment_files)
                .where(payment_files.c.id == file_id)
                .values(report_at=self.clock(), report_events=events, report_final=final)
            )
        return path

    async def write_due_reports(self) -> int:
        """Write again the report of every unfinished file whose payments have had events since; how many."""
        async with self.engine.connect() as conn:
            pending = (
                await conn.execute(
                    select(payment_files.c.id, payment_files.c.report_events).where(
                        payment_files.c.report_final.is_(False)
                    )
                )
            ).all()
            if not pending:
                return 0
            counts: dict[str, int] = {}
            ids = [p.id for p in pending]
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                rows = await conn.execute(
                    select(instructions.c.batch_id, func.sum(instructions.c.event_count))
                    .where(instructions.c.batch_id.in_(chunk))
                    .group_by(instructions.c.batch_id)
                )
                counts.update({batch_id: int(total or 0) for batch_id, total in rows})
        written = 0
        for file in pending:
            if file.report_events is None or counts.get(file.id, 0) != file.report_events:
                try:
                    await self.write_report(file.id)
                    written += 1
                except OSError as exc:
                    log.warning("cannot write the status report of file %s: %s; trying again later", file.id, exc)
        return written

    # -- inbox folders ----------------------------------------------------------------------------

    async def scan_inbox(self) -> int:
        """Take in every settled ``*.xml`` in ``<inbox_dir>/<business unit>/``; move each to done/ or failed/."""
        root = Path(self.settings.inbox_dir)
        if not root.is_dir():
            return 0
        async with self.engine.connect() as conn:
            units = {
                name: uid for uid, name in (await conn.execute(select(business_units.c.id, business_units.c.name)))
            }
        taken = 0
        for folder in sorted(p for p in root.iterdir() if p.is_dir()):
            unit = units.get(folder.name)
            if unit is None:
                continue
            for path in settled_files(folder.iterdir(), (".xml",)):
                taken += await self._take(path, unit)
        return taken

    async def _take(self, path: Path, business_unit_id: str) -> int:
        try:
            size = path.stat().st_size
            if size > self.settings.max_bytes:
                raise ContractError(f"file too large: {size} bytes; at most {self.settings.max_bytes} are accepted")
            body = path.read_bytes()
            answer = await self.submit(body, business_unit_id=business_unit_id, submitted_by=None, source="inbox")
        except GatewayError as exc:
            if exc.status >= 500:  # the store is unavailable: the file stays for the next scan
                log.warning("inbox file %s not taken (%s); trying again at the next scan", path, exc.message)
                return 0
            move_aside(path, "failed", reason_text(exc))
            log.info("inbox file %s refused: %s", path, exc.message)
            return 1
        except OSError as exc:
            log.warning("inbox file %s could not be read (%s); trying again at the next scan", path, exc)
            return 0
        if answer.status_code >= 400:
            move_aside(path, "failed", f"{answer.body.get('detail', 'refused')}\nfile: {answer.body.get('file_id')}\n")
        else:
            move_aside(path, "done", None)
        log.info("inbox file %s taken in as %s (%s)", path, answer.body.get("id"), answer.body.get("status"))
        return 1


def _head(file_id: str, message_id: str, version: str, payments: int, status: str, created_at: datetime) -> dict:
    return {
        "id": file_id,
        "message_id": message_id,
        "version": version,
        "payments": payments,
        "status": status,
        "created_at": created_at.isoformat(),
        "status_report": f"/v1/files/{file_id}/status-report",
    }


def _summary(
    file_id: str, parsed: PaymentFile, prepared: Any, results: list[IntakeResult], now: datetime
) -> dict[str, Any]:
    """The stored answer, the file's per-payment items and, for a refused file, why."""
    items: list[dict[str, Any]] = [
        {"pmtinf": p.payment_information_id, "e2e": p.end_to_end_id} for p in parsed.payments
    ]
    if prepared is None:  # control figures do not add up: the whole file is refused
        mismatch = parsed.mismatch
        assert mismatch is not None
        head = _head(file_id, parsed.message_id, parsed.version, len(items), "rejected", now)
        for item in items:
            item.update(code="FF01", detail="file refused")
        problem_body = {
            "type": "https://partner-gateway.dev/problems/file-refused",
            "title": "File refused",
            "status": 422,
            "detail": f"the file's control figures do not add up: {mismatch.reason}",
            "errors": [{"pointer": mismatch.pointer, "detail": mismatch.reason}],
            "file_id": file_id,
            "message_id": parsed.message_id,
            "status_report": head["status_report"],
        }
        return {
            "status_code": 422,
            "body": problem_body,
            "status": "rejected",
            "items": items,
            "reason": mismatch.reason[:500],
        }
    for index, problem in prepared.problems.items():
        items[index].update(code=reason_code(problem), detail=problem.message[:105])
    for item_index, result in zip(prepared.index, results, strict=True):
        if result.outcome is IntakeOutcome.CREATED and result.response:
            items[item_index]["id"] = result.response["id"]
        else:
            items[item_index].update(code="AM05", detail="duplicate: this reference (EndToEndId) was sent before")
    accepted = sum(1 for item in items if "id" in item)
    status = "accepted" if accepted else "rejected"
    body = {
        **_head(file_id, parsed.message_id, parsed.version, len(items), status, now),
        "accepted": accepted,
        "refused": len(items) - accepted,
    }
    reason = None if accepted else ALL_REFUSED
    return {"status_code": 202, "body": body, "status": status, "items": items, "reason": reason}


def _informations(items: list[dict[str, Any]]) -> list[tuple[str, int, str | None]]:
    counts: dict[str, int] = {}
    for item in items:
        counts[item["pmtinf"]] = counts.get(item["pmtinf"], 0) + 1
    return [(pmt_inf_id, count, None) for pmt_inf_id, count in counts.items()]


def _write_atomically(path: Path, body: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, body)
