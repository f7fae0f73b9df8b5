"""The instant_rtp messages: JSON documents checked against ``contracts/partners/instant_rtp/``.

The adapter builds requests and reads reports with these functions, and the
simulator reads requests and builds reports with the very same ones, so the
two cannot drift: whatever the contract rejects, both sides reject.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match

from gateway.adapter import PaymentOrder
from gateway.contracts.messages import error_message
from gateway.contracts.safejson import decode_partner_json
from gateway.contracts.strict_schema import FORMAT_CHECKER, StrictValidator
from gateway.domain.accounts import UsAccount
from gateway.domain.datetimes import parse_datetime
from gateway.domain.errors import pointer_of
from gateway.errors import ContractError, FieldError

__all__ = [
    "CONTRACT_DIR",
    "ERROR",
    "REPORT",
    "REQUEST",
    "Report",
    "Request",
    "build_error",
    "build_report",
    "build_request",
    "read_error",
    "read_report",
    "read_request",
    "validate",
]

#: where the partner contracts live (package data of ``gateway_contracts``)
CONTRACT_DIR = Path(str(resources.files("gateway_contracts") / "partners" / "instant_rtp"))
REQUEST = "payment-request"
REPORT = "payment-report"
ERROR = "error"


@cache
def _validator(message: str) -> Draft202012Validator:
    schema = json.loads((CONTRACT_DIR / f"{message}.json").read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    return StrictValidator(schema, format_checker=FORMAT_CHECKER)


def validate(message: str, document: Any) -> None:
    """Raise ``ContractError`` (best match first, then every error) unless ``document`` fits ``message``."""
    errors = list(_validator(message).iter_errors(document))
    if not errors:
        return
    best = best_match(errors)
    first = FieldError(pointer_of(best.absolute_path), error_message(best))
    rest = [FieldError(pointer_of(e.absolute_path), error_message(e)) for e in errors if e is not best]
    raise ContractError(f"not a valid {message}: {first.pointer or '/'}: {first.message}", errors=[first, *rest])


def _load(message: str, body: bytes) -> dict[str, Any]:
    document = decode_partner_json(body, message)
    validate(message, document)
    return document


def _dump(document: Mapping[str, Any]) -> bytes:
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()


# -- request (pacs.008 semantics) ---------------------------------------------------


@dataclass(frozen=True)
class Request:
    """A payment request as read from the wire (account numbers stay out of repr)."""

    document: Mapping[str, Any]

    @property
    def instruction_id(self) -> str:
        return str(self.document["instruction_id"])

    @property
    def amount(self) -> Decimal:
        return Decimal(self.document["amount"])

    def fingerprint(self) -> tuple[Any, ...]:
        """The business content; a resend must match it to be the same payment (``message_id`` and time excluded)."""
        doc = self.document
        return tuple(
            json.dumps(doc.get(k), sort_keys=True)
            for k in (
                "instruction_id",
                "end_to_end_id",
                "amount",
                "currency",
                "debtor",
                "creditor",
                "remittance_information",
                "purpose",
            )
        )

    def __repr__(self) -> str:
        return f"Request(instruction_id={self.instruction_id!r}, {self.document['amount']} {self.document['currency']})"


def _party(name: str, account: Any, pointer: str) -> dict[str, Any]:
    if not isinstance(account, UsAccount):
        raise ContractError(
            f"instant_rtp carries US accounts only, not {account.kind}",
            errors=[FieldError(f"{pointer}/account", f"{account.kind} accounts are not supported")],
        )
    return {"name": name, "account": {"number": account.number, "routing": account.routing}}


def build_request(order: PaymentOrder, *, message_id: str, created_at: datetime) -> bytes:
    """The request body for ``order``; ``ContractError`` if the order cannot be expressed in it."""
    document: dict[str, Any] = {
        "message_id": message_id,
        "created_at": created_at.isoformat().replace("+00:00", "Z"),
        "instruction_id": order.id,
        "end_to_end_id": order.reference,
        "amount": str(order.money.amount),
        "currency": order.money.currency,
        "debtor": _party(order.debtor.name, order.debtor.account, "/debtor"),
        "creditor": _party(order.creditor.name, order.creditor.account, "/creditor"),
    }
    if order.remittance_information:
        document["remittance_information"] = order.remittance_information
    if order.purpose:
        document["purpose"] = order.purpose
    validate(REQUEST, document)
    return _dump(document)


def read_request(body: bytes) -> Request:
    """Parse and validate a request body; ``ContractError`` if the contract rejects it."""
    return Request(_load(REQUEST, body))


# -- report (pacs.002 semantics) ------------------------------------------------------


@dataclass(frozen=True)
class Report:
    """A payment status report: the synchronous answer and the status-query answer alike."""

    message_id: str
    original_message_id: str
    instruction_id: str
    end_to_end_id: str
    transaction_id: str
    status: str
    amount: Decimal
    currency: str
    created_at: datetime | None = None
    reason_code: str | None = None
    reason: str | None = None


def build_report(report: Report) -> bytes:
    document: dict[str, Any] = {
        "message_id": report.message_id,
        "created_at": (report.created_at.isoformat() if report.created_at else "").replace("+00:00", "Z"),
        "original_message_id": report.original_message_id,
        "instruction_id": report.instruction_id,
        "end_to_end_id": report.end_to_end_id,
        "transaction_id": report.transaction_id,
        "status": report.status,
        "amount": str(report.amount),
        "currency": report.currency,
    }
    if report.reason_code:
        document["reason"] = {"code": report.reason_code}
        if report.reason:
            document["reason"]["description"] = report.reason[:300]
    return _dump(document)


def read_report(body: bytes) -> Report:
    doc = _load(REPORT, body)
    reason = doc.get("reason") or {}
    return Report(
        message_id=doc["message_id"],
        original_message_id=doc["original_message_id"],
        instruction_id=doc["instruction_id"],
        end_to_end_id=doc["end_to_end_id"],
        transaction_id=doc["transaction_id"],
        status=doc["status"],
        amount=Decimal(doc["amount"]),
        currency=doc["currency"],
        created_at=parse_datetime(doc["created_at"]),  # the contract's format check uses the same function
        reason_code=reason.get("code"),
        reason=reason.get("description"),
    )


# -- errors -------------------------------------------------------------------------------


def build_error(code: str, description: str, errors: list[FieldError] | None = None) -> bytes:
    document: dict[str, Any] = {"error_code": code, "error_description": description}
    if errors:
        document["field_errors"] = [{"pointer": e.pointer, "detail": e.message} for e in errors]
    return _dump(document)


def read_error(body: bytes) -> tuple[str, str]:
    """(code, description) of a partner error body; ``ContractError`` if it is not one."""
    doc = _load(ERROR, body)
    return doc["error_code"], doc["error_description"][:300]
