"""The OpenAPI description of money in: receivables, receipts, distributor credit lines (docs/credit-and-rebates.md)."""

from __future__ import annotations

import copy
from typing import Any

from gateway.api.creditlines import LINE_SCHEMA, RESERVATION_SCHEMA
from gateway.api.openapi_bundle import PAYABLE_CURRENCIES
from gateway.api.rebates import PERIOD_PATTERN, SETTLE_REQUEST
from gateway.api.receivables import (
    ASSIGN_SCHEMA,
    ON_ACCOUNT_SCHEMA,
    RECEIPT_ID_RE,
    RECEIVABLE_ID_RE,
    RECEIVABLE_SCHEMA,
    REFUND_SCHEMA,
)
from gateway.domain.receivables import DISTRIBUTOR_RE, ReceiptState, ReceivableStatus

__all__ = ["receivable_paths", "receivable_schemas"]

_PROBLEM = {"$ref": "#/components/responses/Problem"}
_WHOLE_UNITS = {
    "type": "string",
    "pattern": "^[1-9][0-9]{0,14}$",
    "description": (
        "decimal amount, more than zero: whole units always; decimals up to the currency's minor units are "
        "accepted too (EUR 12.50, JPY none), more are 422"
    ),
}
_CURRENCY = {"type": "string", "enum": PAYABLE_CURRENCIES, "description": "an active ISO 4217 code"}
_MONEY_IN = {
    "type": "object",
    "additionalProperties": False,
    "required": ["value", "currency"],
    "properties": {"value": _WHOLE_UNITS, "currency": _CURRENCY},
}
_MONEY = {
    "type": "object",
    "required": ["value", "currency"],
    "properties": {"value": {"type": "string"}, "currency": {"type": "string"}},
}
_NULLABLE_STRING = {"type": ["string", "null"]}
_STATUSES = "(" + "|".join(s.value for s in ReceivableStatus) + ")"


def _problems(*codes: int) -> dict[str, Any]:
    return {str(c): _PROBLEM for c in codes}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _body(schema: dict[str, Any]) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def _page(ref: str) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["items", "next_cursor"],
        "properties": {"items": {"type": "array", "items": _ref(ref)}, "next_cursor": _NULLABLE_STRING},
    }


def _receivable_request() -> dict[str, Any]:
    schema = copy.deepcopy(RECEIVABLE_SCHEMA)
    props = schema["properties"]
    props["amount"] = _MONEY_IN
    props["due_date"] = {"type": "string", "format": "date"}
    props["structured_reference"] = {
        "type": "string",
        "format": "creditor-reference",
        "description": "ISO 11649 creditor reference (RF + check digits); a wrong check digit is 422",
    }
    props["payer_iban"] = {"type": "string", "format": "iban", "description": "the account the money will come from"}
    return schema


def _assign_request() -> dict[str, Any]:
    schema = copy.deepcopy(ASSIGN_SCHEMA)
    schema["properties"]["allocations"]["items"]["properties"]["amount"] = _MONEY_IN
    return schema


def _refund_request() -> dict[str, Any]:
    schema = copy.deepcopy(REFUND_SCHEMA)
    for side in ("debtor", "creditor"):
        schema["properties"][side] = {
            **_ref("Instruction.party"),
            "description": schema["properties"][side]["description"],
        }
    return schema


def _reservation_request() -> dict[str, Any]:
    schema = copy.deepcopy(RESERVATION_SCHEMA)
    schema["properties"]["amount"] = _MONEY_IN
    return schema


def _line_request() -> dict[str, Any]:
    schema = copy.deepcopy(LINE_SCHEMA)
    schema["properties"]["currency"] = _CURRENCY
    schema["properties"]["limit"] = {**_WHOLE_UNITS, "pattern": "^[0-9]{1,15}$"}
    return schema


def receivable_schemas() -> dict[str, Any]:
    """Components: requests and views of receivables, receipts, credit lines and reservations."""
    reservation = {
        "type": "object",
        "properties": {
            "id": {"type": "string"},
            "distributor": {"type": "string"},
            "amount": _MONEY,
            "state": {"enum": ["pending", "converted", "expired"]},
            "order_reference": _NULLABLE_STRING,
            "receivable_id": _NULLABLE_STRING,
            "expires_at": {"type": "string", "format": "date-time"},
            "created_at": {"type": "string", "format": "date-time"},
        },
    }
    return {
        "ReceivableRequest": _receivable_request(),
        "Receivable": {
            "type": "object",
            "description": "An invoice to a distributor and what has been paid of it.",
            "properties": {
                "id": {"type": "string", "pattern": RECEIVABLE_ID_RE.pattern},
                "invoice_number": {"type": "string"},
                "distributor": {"type": "string"},
                "amount": _MONEY,
                "paid": _MONEY,
                "outstanding": _MONEY,
                "status": {"enum": [s.value for s in ReceivableStatus]},
                "due_date": {"type": "string", "format": "date"},
                "overdue": {"type": "boolean", "description": "open and past its due date"},
                "structured_reference": _NULLABLE_STRING,
                "payer_account": {**_NULLABLE_STRING, "description": "masked"},
                "reservation_id": _NULLABLE_STRING,
                "created_at": {"type": "string", "format": "date-time"},
                "updated_at": {"type": "string", "format": "date-time"},
            },
        },
        "Receipt": {
            "type": "object",
            "description": "An incoming credit from a bank statement and what it was applied to.",
            "properties": {
                "id": {"type": "string", "pattern": RECEIPT_ID_RE.pattern},
                "state": {"enum": [s.value for s in ReceiptState]},
                "amount": _MONEY,
                "unapplied": _MONEY,
                "distributor": _NULLABLE_STRING,
                "booked_on": {"type": ["string", "null"], "format": "date"},
                "payer": {
                    "type": "object",
                    "properties": {"name": _NULLABLE_STRING, "account": {**_NULLABLE_STRING, "description": "masked"}},
                },
                "structured_reference": _NULLABLE_STRING,
                "text": _NULLABLE_STRING,
                "source": {"type": "string", "description": "the adapter whose statement it came on"},
                "statement_line": {"type": "string", "description": "the statement line (`ln_…`, as breaks name it)"},
                "allocations": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "receivable_id": {"type": "string"},
                            "invoice_number": {"type": "string"},
                            "amount": _MONEY,
                            "rule": {"enum": ["reference", "invoice_text", "payer_account", "manual"]},
                        },
                    },
                },
                "refund_instruction_id": _NULLABLE_STRING,
                "created_at": {"type": "string", "format": "date-time"},
                "updated_at": {"type": "string", "format": "date-time"},
            },
        },
        "ReceiptAssignment": _assign_request(),
        "ReceiptOnAccount": copy.deepcopy(ON_ACCOUNT_SCHEMA),
        "ReceiptRefund": _refund_request(),
        "CreditLineChange": _line_request(),
        "CreditLine": {
            "type": "object",
            "properties": {
                "distributor": {"type": "string"},
                "currency": {"type": "string"},
                "limit": _MONEY,
                "open_receivables": _MONEY,
                "reserved": _MONEY,
                "used": _MONEY,
                "available": _MONEY,
            },
        },
        "CreditLines": {
            "type": "object",
            "properties": {
                "distributor": {"type": "string"},
                "lines": {"type": "array", "items": _ref("CreditLine")},
                "blocked_by_overdue": {
                    "type": ["object", "null"],
                    "description": "the receivable past due by more than the grace that blocks new reservations",
                },
            },
        },
        "CreditReservationRequest": _reservation_request(),
        "CreditReservation": reservation,
        "CreditDecision": {
            "type": "object",
            "required": ["decision", "available"],
            "description": "approved (with the reservation) or declined (with the reason); both are 200",
            "properties": {
                "decision": {"enum": ["approved", "declined"]},
                "reason": {"enum": ["limit", "overdue", "no_credit_line"]},
                "detail": {"type": "string"},
                "reservation": _ref("CreditReservation"),
                "available": _MONEY,
                "overdue": {"type": "object"},
            },
        },
    }


def receivable_paths(bearer: list[dict[str, list[str]]]) -> dict[str, Any]:
    """The paths of money in."""
    idempotency = {
        "name": "Idempotency-Key",
        "in": "header",
        "required": True,
        "description": "Same key + same body replays the first response; a different body is 409.",
        "schema": {"type": "string", "pattern": "^[!-~]{1,255}$"},
    }
    page = [
        {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 200}},
    ]
    distributor_query = {
        "name": "distributor",
        "in": "query",
        "schema": {"type": "string", "pattern": DISTRIBUTOR_RE.pattern},
    }
    distributor_path = {
        "name": "distributor",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "pattern": DISTRIBUTOR_RE.pattern},
    }

    def receipt_action(verb: str, summary: str, body: str) -> dict[str, Any]:
        return {
            "post": {
                "summary": summary,
                "description": "Scope `finance`. The receipt as it is afterwards.",
                "operationId": verb,
                "security": bearer,
                "parameters": [receipt_id],
                "requestBody": _body(_ref(body)),
                "responses": {
                    "200": _json(_ref("Receipt"), "The receipt"),
                    **_problems(400, 401, 403, 404, 409, 413, 415, 422, 503),
                },
            }
        }

    receipt_id = {
        "name": "id",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "pattern": RECEIPT_ID_RE.pattern},
        "description": "a receipt id (`rct_` + 26 characters)",
    }
    return {
        "/v1/receivables": {
            "post": {
                "summary": "Register an invoice to a distributor (scope instructions or finance)",
                "description": (
                    "Stored, booked (receivable raised) and counted on the distributor's credit line in one "
                    "transaction. An invoice number already registered by this business unit is 409 at "
                    "`/invoice_number`. With `reservation_id`, the pending credit reservation turns into this "
                    "receivable (409 if it is not pending, or is another distributor's or currency's)."
                ),
                "operationId": "createReceivable",
                "security": bearer,
                "parameters": [idempotency],
                "requestBody": _body(_ref("ReceivableRequest")),
                "responses": {
                    "201": _json(_ref("Receivable"), "Registered"),
                    **_problems(400, 401, 403, 409, 413, 415, 422),
                },
            },
            "get": {
                "summary": "Receivables, newest first (a business unit sees its own; finance sees all)",
                "operationId": "listReceivables",
                "security": bearer,
                "parameters": [
                    distributor_query,
                    {
                        "name": "status",
                        "in": "query",
                        "schema": {
                            "type": "string",
                            "pattern": f"^{_STATUSES}(,{_STATUSES})*$",
                        },
                        "description": "comma-separated statuses",
                    },
                    {"name": "overdue", "in": "query", "schema": {"enum": ["true", "false"]}},
                    *page,
                    {
                        "name": "cursor",
                        "in": "query",
                        "schema": {"type": "string", "pattern": RECEIVABLE_ID_RE.pattern},
                    },
                ],
                "responses": {"200": _json(_page("Receivable"), "A page"), **_problems(400, 401, 403)},
            },
        },
        "/v1/receivables/{id}": {
            "get": {
                "summary": "One receivable",
                "operationId": "getReceivable",
                "security": bearer,
                "parameters": [
                    {
                        "name": "id",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string", "pattern": RECEIVABLE_ID_RE.pattern},
                    }
                ],
                "responses": {"200": _json(_ref("Receivable"), "The receivable"), **_problems(401, 403, 404)},
            }
        },
        "/v1/receipts": {
            "get": {
                "summary": "Receipts, oldest first (scope finance); `state=unmatched` is the queue",
                "operationId": "listReceipts",
                "security": bearer,
                "parameters": [
                    {"name": "state", "in": "query", "schema": {"enum": [s.value for s in ReceiptState]}},
                    distributor_query,
                    *page,
                    {"name": "cursor", "in": "query", "schema": {"type": "string", "pattern": RECEIPT_ID_RE.pattern}},
                ],
                "responses": {"200": _json(_page("Receipt"), "A page"), **_problems(400, 401, 403)},
            }
        },
        "/v1/receipts/{id}": {
            "get": {
                "summary": "One receipt with its allocations (scope finance)",
                "operationId": "getReceipt",
                "security": bearer,
                "parameters": [receipt_id],
                "responses": {"200": _json(_ref("Receipt"), "The receipt"), **_problems(401, 403, 404)},
            }
        },
        "/v1/receipts/{id}/assign": receipt_action(
            "assignReceipt",
            "Apply a receipt to receivables with amounts; the rest stays on account",
            "ReceiptAssignment",
        ),
        "/v1/receipts/{id}/on-account": receipt_action(
            "receiptOnAccount", "Leave a receipt's unapplied money on a distributor's account", "ReceiptOnAccount"
        ),
        "/v1/receipts/{id}/refund": receipt_action(
            "refundReceipt",
            "Pay a receipt's unapplied money back: a `refund` instruction through normal intake (reference "
            "`RFD-…` and idempotency key from the receipt: a retry never pays twice)",
            "ReceiptRefund",
        ),
        "/v1/credit-lines/{distributor}": {
            "put": {
                "summary": "Create or change a distributor's credit limit in one currency (scope finance or admin)",
                "operationId": "putCreditLine",
                "security": bearer,
                "parameters": [distributor_path],
                "requestBody": _body(_ref("CreditLineChange")),
                "responses": {
                    "200": _json(_ref("CreditLine"), "The line now"),
                    **_problems(400, 401, 403, 404, 409, 413, 415, 422),
                },
            },
            "get": {
                "summary": "A distributor's credit lines: limit, used (open receivables + reservations), available",
                "operationId": "getCreditLines",
                "security": bearer,
                "parameters": [distributor_path],
                "responses": {"200": _json(_ref("CreditLines"), "Every line"), **_problems(400, 401, 403, 404)},
            },
        },
        "/v1/credit-lines/{distributor}/reservations": {
            "post": {
                "summary": "Ask for credit before shipping: 200 with `approved` (a reservation) or `declined`",
                "description": (
                    "A decline is an answer, not an error: `reason` is `limit` (with the amount `available`), "
                    "`overdue` (a receivable past due by more than `credit_lines.overdue_grace_days`) or "
                    "`no_credit_line`. An approved reservation expires after "
                    "`credit_lines.reservation_ttl_seconds` unless a receivable names it. Race-free: concurrent "
                    "reservations never take a line past its limit."
                ),
                "operationId": "reserveCredit",
                "security": bearer,
                "parameters": [distributor_path, idempotency],
                "requestBody": _body(_ref("CreditReservationRequest")),
                "responses": {
                    "200": _json(_ref("CreditDecision"), "The decision"),
                    **_problems(400, 401, 403, 404, 409, 413, 415, 422),
                },
            }
        },
    }


def rebate_schemas() -> dict[str, Any]:
    """Components: rebate rows and the settlement request (docs/credit-and-rebates.md)."""
    text, maybe = {"type": "string"}, _NULLABLE_STRING
    line = {
        "type": "object",
        "required": ["program", "distributor", "period", "currency", "volume", "accrued", "settled"],
        "description": "One program, distributor, period and currency; amounts are decimal strings",
        "properties": {
            "program": text,
            "distributor": text,
            "period": text,
            "currency": text,
            "volume": text,
            "rate": maybe,
            "accrued": text,
            "final": {**maybe, "description": "what the settlement posts(ed): the tiers on the whole volume, capped"},
            "true_up": {**maybe, "description": "final - accrued"},
            "settlement": {"type": ["string", "null"], "enum": ["credit_note", "payout", None]},
            "settled": {"type": "boolean"},
            "settled_at": maybe,
            "credited": maybe,
            "instruction_id": maybe,
            "reference": text,
            "action": {
                "enum": ["settled", "already_settled", "would_settle", "no_program"],
                "description": "settlement responses only",
            },
        },
    }
    return {
        "RebateLine": line,
        "RebateLines": {
            "type": "object",
            "required": ["period", "items"],
            "properties": {"period": text, "items": {"type": "array", "items": _ref("RebateLine")}},
        },
        "RebateSettleRequest": copy.deepcopy(SETTLE_REQUEST),
    }


def rebate_paths(bearer: list[dict[str, list[str]]]) -> dict[str, Any]:
    """The paths of rebates (scope finance)."""
    idempotency = {
        "name": "Idempotency-Key",
        "in": "header",
        "required": True,
        "description": "Same key + same body replays the first response; a different body is 409.",
        "schema": {"type": "string", "pattern": "^[!-~]{1,255}$"},
    }
    return {
        "/v1/rebates": {
            "get": {
                "summary": "A period's rebate rows with the final amounts the settlement would post (scope finance)",
                "description": "One row per program, distributor and currency: a handful per period, not paged.",
                "operationId": "listRebates",
                "security": bearer,
                "parameters": [
                    {
                        "name": "period",
                        "in": "query",
                        "required": True,
                        "schema": {"type": "string", "pattern": PERIOD_PATTERN},
                        "description": "YYYY-Qn (a quarter) or YYYY-MM (a month)",
                    }
                ],
                "responses": {"200": _json(_ref("RebateLines"), "The rows"), **_problems(400, 401, 403)},
            }
        },
        "/v1/rebates/settle": {
            "post": {
                "summary": "Settle a period: true-ups, credit notes or payouts through intake, once (scope finance)",
                "description": (
                    "Each open row is settled in its own transaction; a settled row never changes again, so a "
                    "second settlement posts nothing and creates nothing. 409 when a program's payout parties "
                    "are refused by the instruction contract."
                ),
                "operationId": "settleRebates",
                "security": bearer,
                "parameters": [idempotency],
                "requestBody": _body(_ref("RebateSettleRequest")),
                "responses": {
                    "200": _json(_ref("RebateLines"), "Every row of the period, with its action"),
                    **_problems(400, 401, 403, 409, 413, 415, 422, 503),
                },
            }
        },
    }
