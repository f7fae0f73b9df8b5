"""The OpenAPI 3.1 document, built from the live contracts (never hand-copied schemas).

A test checks that every route the app serves is described here.
"""

from __future__ import annotations

import copy
from typing import Any

from gateway import __version__
from gateway.api.keys_admin import CREATE_SCHEMA, KEY_ID_RE, ROTATE_SCHEMA
from gateway.api.ledger import ACCOUNT_CURSOR, ENTRY_CURSOR
from gateway.api.openapi_bundle import (
    PAYABLE_CURRENCIES,
    bundle,
    narrow_collection,
    narrow_instruction,
    with_text_rule,
)
from gateway.api.openapi_receivables import rebate_paths, rebate_schemas, receivable_paths, receivable_schemas
from gateway.api.recon import (
    BREAK_CURSOR,
    BREAK_ID,
    CONTROL_TOTALS_SCHEMA,
    HAND_MATCH_SCHEMA,
    MATCH_REF,
    OWNER_SCHEMA,
    REASON_SCHEMA,
    SOURCE_PATTERN,
    TEXT_SCHEMA,
)
from gateway.api.risk import DECISION_SCHEMA, LIMIT_SCHEMA
from gateway.api.rollout import BUSINESS_UNIT_PATTERN, DOCUMENTED_MODE_SCHEMA, MODE_SCHEMA, PARTNER_PATTERN
from gateway.api.statements import FORMAT_PATTERN
from gateway.api.webhooks import CREATE_SCHEMA as WEBHOOK_CREATE_SCHEMA
from gateway.api.webhooks import DELIVERY_ID_RE, ENDPOINT_ID_RE
from gateway.api.webhooks import ROTATE_SCHEMA as WEBHOOK_ROTATE_SCHEMA
from gateway.api.webhooks import UPDATE_SCHEMA as WEBHOOK_UPDATE_SCHEMA
from gateway.contracts.registry import ContractRegistry
from gateway.contracts.safejson import TEXT_PATTERN
from gateway.contracts.versions import VERSION_HEADER, VersionInfo, compatibility_lines
from gateway.domain.collection import COLLECTION_KINDS
from gateway.domain.collection_status import CollectionStatus
from gateway.domain.status import Status
from gateway.intake.batch import MAX_ITEMS as MAX_BATCH_ITEMS
from gateway.intake.pain001 import VERSIONS as PAIN001_VERSIONS
from gateway.recon.breaks import BREAK_KINDS, BREAK_STATES
from gateway.reports.folder import REPORT_ID_RE
from gateway.reports.model import NAME_RE
from gateway.reports.render import FORMATS
from gateway.store.webhooks import DELIVERY_STATES as WEBHOOK_DELIVERY_STATES

__all__ = ["build_openapi"]

_PROBLEM = {"$ref": "#/components/responses/Problem"}
INSTRUCTION_ID_PATTERN = "^ins_[0-9A-Z]{26}$"
_DATE_OR_DATETIME = {"anyOf": [{"type": "string", "format": "date"}, {"type": "string", "format": "date-time"}]}


def _comma_list(values: list[str]) -> str:
    """A pattern for a comma-separated list of ``values``."""
    one = "(" + "|".join(values) + ")"
    return f"^{one}(,{one})*$"


def _problems(*codes: int) -> dict[str, Any]:
    return {str(c): _PROBLEM for c in codes}


def _instruction_versions(contracts: ContractRegistry) -> tuple[dict[str, Any], dict[str, Any]]:
    """Schema components and the request body for every instruction version."""
    versions = contracts.versions("instruction")
    latest = versions[-1]
    default = compatibility_lines(contracts, "instruction")[0][-1]

    def component(version: str) -> str:
        return "Instruction" if version == latest else f"Instruction-{version}"

    schemas: dict[str, Any] = {}
    for v in reversed(versions):
        schemas.update(narrow_instruction(bundle(contracts.schema("instruction", v), component(v)), component(v)))
    media: dict[str, Any] = {"application/json": {"schema": {"$ref": f"#/components/schemas/{component(default)}"}}}
    notes = []
    for version in reversed(versions):
        info = VersionInfo.of(contracts, "instruction", version)
        ref = f"#/components/schemas/{component(version)}"
        media[f"application/json; version={version}"] = {"schema": {"$ref": ref}}
        if info.deprecated:
            notes.append(f"{version} is deprecated since {info.deprecated}, retired on {info.sunset or 'a later date'}")
    body = {
        "required": True,
        "description": (
            "A payment instruction in the version named by the media-type parameter "
            "(`Content-Type: application/json; version=X`, one media type per version below) or the "
            f"`{VERSION_HEADER}` header (same meaning; if both are sent they must agree, else 400; the header is "
            "not listed as a parameter because the body's schema depends on it); with neither, the "
            f"business unit's pinned version, else {default} (the newest version of the oldest compatibility line "
            "still served, so a new breaking version never changes what an unversioned request means). "
            f"Versions: {', '.join(versions)}; unknown or retired versions are 400. {'; '.join(notes)}."
        ),
        "content": media,
    }
    return schemas, body


_RESPONSE_HEADERS = {
    "Location": {"description": "The new instruction's URL.", "schema": {"type": "string"}},
    VERSION_HEADER: {
        "description": "The instruction contract version the request was read with (also stored with it).",
        "schema": {"type": "string"},
    },
    "Deprecation": {
        "description": "Only for a deprecated contract version: when it was deprecated (RFC 9745, `@` + Unix time).",
        "schema": {"type": "string", "examples": ["@1795651200"]},
    },
    "Sunset": {
        "description": "Only for a deprecated contract version: when it stops being accepted (RFC 8594, HTTP-date).",
        "schema": {"type": "string", "examples": ["Wed, 30 Jun 2027 00:00:00 GMT"]},
    },
}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _page(ref: str) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "items": {"type": "array", "items": {"$ref": f"#/components/schemas/{ref}"}},
            "next_cursor": {"type": ["string", "null"]},
        },
    }


def _risk_schemas() -> dict[str, Any]:

    finding = {
        "type": "object",
        "properties": {
            "rule": {"type": "string"},
            "score": {"type": "number"},
            "reason": {"type": "string"},
            "action": {"enum": ["flag", "hold", "reject"]},
        },
    }
    return {
        "Finding": finding,
        "Hold": {
            "type": "object",
            "description": "A payment held by risk screening or a credit limit, waiting for finance (or decided).",
            "properties": {
                "instruction_id": {"type": "string"},
                "reference": {"type": "string"},
                "business_unit": {"type": "string"},
                "status": {"type": "string"},
                "amount": {"type": "string"},
                "currency": {"type": "string"},
                "creditor": {"type": "object", "description": "name and masked account"},
                "reason_code": {"enum": ["RISK_HOLD", "CREDIT_LIMIT"]},
                "findings": {"type": "array", "items": {"$ref": "#/components/schemas/Finding"}},
                "held_at": {"type": "string", "format": "date-time"},
                "expires_at": {"type": "string", "format": "date-time"},
                "decision": {"enum": [None, "approved", "rejected", "expired"]},
                "decided_by": {"type": ["string", "null"], "description": "id of the deciding API key"},
                "decided_at": {"type": ["string", "null"], "format": "date-time"},
                "comment": {"type": ["string", "null"]},
            },
        },
        "HoldDecision": with_text_rule(DECISION_SCHEMA),
        "Alert": {
            "type": "object",
            "description": (
                "A screening alert on one payment, or an operational anomaly (outcome `anomaly`, no payment: "
                "docs/operations.md)."
            ),
            "properties": {
                "id": {"type": "string"},
                "instruction_id": {"type": ["string", "null"]},
                "reference": {"type": ["string", "null"]},
                "business_unit": {"type": "string"},
                "amount": {"type": ["string", "null"]},
                "currency": {"type": ["string", "null"]},
                "outcome": {"enum": ["flag", "hold", "reject", "anomaly"]},
                "reason_code": {"type": ["string", "null"]},
                "findings": {"type": "array", "items": {"$ref": "#/components/schemas/Finding"}},
                "created_at": {"type": "string", "format": "date-time"},
            },
        },
        "CreditLimit": {
            "type": "object",
            "properties": {
                k: {"type": "string"}
                for k in (
                    "counterparty",
                    "currency",
                    "limit",
                    "reserved",
                    "consumed",
                    "available",
                    "on_exceed",
                    "source",
                )
            },
        },
        "CreditLimitChange": _limit_change(),
    }


def _limit_change() -> dict[str, Any]:
    """``LIMIT_SCHEMA`` as far as a schema can say it: the decimals allowed depend on the path's currency."""

    schema = copy.deepcopy(LIMIT_SCHEMA)
    schema["properties"]["limit"] = {
        "type": "string",
        "pattern": "^[0-9]{1,15}$",
        "description": (
            "decimal amount in the path's currency: whole units always; decimals up to the currency's minor "
            "units are accepted too (EUR 12.50, JPY none; at most 4), more are 422 at /limit"
        ),
    }
    return schema


def _rollout_schemas() -> dict[str, Any]:
    return {
        "RolloutMode": {
            "type": "object",
            "required": ["business_unit", "partner", "mode", "percent", "updated_at", "updated_by"],
            "properties": {
                "business_unit": {"type": "string"},
                "partner": {"type": "string"},
                "mode": {"enum": list(MODE_SCHEMA["properties"]["mode"]["enum"])},
                "percent": {"type": ["integer", "null"], "description": "canary's share (1-99); null otherwise"},
                "updated_at": {"type": "string", "format": "date-time"},
                "updated_by": {"type": "string", "description": "cli:<os user> or api:<key id>"},
            },
        },
        "RolloutModeChange": copy.deepcopy(DOCUMENTED_MODE_SCHEMA),
    }


def _rollout_paths(bearer: list[dict[str, list[str]]]) -> dict[str, Any]:
    mode = {"$ref": "#/components/schemas/RolloutMode"}
    return {
        "/v1/rollout": {
            "get": {
                "summary": "Staged rollout modes per business unit and partner (scope admin)",
                "description": "Every stored mode; a business unit and partner not listed is `default` (live).",
                "operationId": "listRollout",
                "security": bearer,
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "required": ["default", "items"],
                            "properties": {"default": {"const": "live"}, "items": {"type": "array", "items": mode}},
                        },
                        "Every stored mode",
                    ),
                    **_problems(400, 401, 403),
                },
            }
        },
        "/v1/rollout/{business_unit}/{partner}": {
            "put": {
                "summary": "Set a business unit and partner's rollout mode (scope admin), audited",
                "description": (
                    "off | shadow | canary (with `percent`) | live. Payments already routed keep their route; "
                    "new ones follow the new mode. 422 at /percent: canary without a percent, or a percent "
                    "on another mode."
                ),
                "operationId": "putRollout",
                "security": bearer,
                "parameters": [
                    {
                        "name": "business_unit",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string", "pattern": BUSINESS_UNIT_PATTERN},
                    },
                    {
                        "name": "partner",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string", "pattern": PARTNER_PATTERN},
                        "description": "an enabled adapter",
                    },
                ],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/RolloutModeChange"}}},
                },
                "responses": {
                    "200": _json(mode, "The mode now"),
                    **_problems(400, 401, 403, 404, 415, 422),
                },
            }
        },
    }


def _risk_paths(bearer: list[dict[str, list[str]]], id_param: dict[str, Any]) -> dict[str, Any]:
    def page_params(cursor_pattern: str) -> list[dict[str, Any]]:
        return [
            {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 200}},
            {
                "name": "cursor",
                "in": "query",
                "schema": {"type": "string", "pattern": cursor_pattern},
                "description": "next_cursor of the last page",
            },
            {"name": "business_unit", "in": "query", "schema": {"type": "string"}},
        ]

    hold = {"$ref": "#/components/schemas/Hold"}
    decision_body = {
        "required": True,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/HoldDecision"}}},
    }

    def decide(verb: str, summary: str) -> dict[str, Any]:
        return {
            "post": {
                "summary": summary,
                "description": (
                    "Scope `finance`. Four eyes: the key that submitted the payment gets 403 "
                    "with problem type `four-eyes`."
                ),
                "operationId": f"{verb}Hold",
                "security": bearer,
                "parameters": [id_param],
                "requestBody": decision_body,
                "responses": {"200": _json(hold, "The decided hold"), **_problems(400, 401, 403, 404, 409, 415, 422)},
            }
        }

    return {
        "/v1/holds": {
            "get": {
                "summary": "Held payments (scope finance), oldest first",
                "operationId": "listHolds",
                "security": bearer,
                "parameters": [
                    {"name": "state", "in": "query", "schema": {"enum": ["pending", "decided", "all"]}},
                    *page_params(INSTRUCTION_ID_PATTERN),
                ],
                "responses": {"200": _json(_page("Hold"), "A page of holds"), **_problems(400, 401, 403)},
            }
        },
        "/v1/holds/{id}": {
            "get": {
                "summary": "One hold (scope finance)",
                "operationId": "getHold",
                "security": bearer,
                "parameters": [id_param],
                "responses": {"200": _json(hold, "The hold"), **_problems(401, 403, 404)},
            }
        },
        "/v1/holds/{id}/approve": decide("approve", "Release a held payment to routing"),
        "/v1/holds/{id}/reject": decide("reject", "Reject a held payment (final)"),
        "/v1/alerts": {
            "get": {
                "summary": (
                    "Screening alerts (flagged, held, rejected payments) and operational anomalies, "
                    "newest first (scope finance)"
                ),
                "operationId": "listAlerts",
                "security": bearer,
                "parameters": [
                    {
                        "name": "outcome",
                        "in": "query",
                        "schema": {"type": "string", "pattern": _comma_list(["flag", "hold", "reject", "anomaly"])},
                        "description": "comma-separated: flag, hold, reject, anomaly",
                    },
                    {"name": "rule", "in": "query", "schema": {"type": "string"}, "description": "a rule's name"},
                    *page_params("^alr_[0-9A-Z]{26}$"),
                ],
                "responses": {"200": _json(_page("Alert"), "A page of alerts"), **_problems(400, 401, 403)},
            }
        },
        "/v1/credit-limits": {
            "get": {
                "summary": "Credit limits and exposure (scope finance)",
                "operationId": "listCreditLimits",
                "security": bearer,
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "properties": {
                                "items": {"type": "array", "items": {"$ref": "#/components/schemas/CreditLimit"}}
                            },
                        },
                        "Every limit",
                    ),
                    **_problems(401, 403),
                },
            }
        },
        "/v1/credit-limits/{counterparty}/{currency}": {
            "put": {
                "summary": "Create or change a credit limit (scope admin)",
                "operationId": "putCreditLimit",
                "security": bearer,
                "parameters": [
                    {
                        "name": "counterparty",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"},
                    },
                    {
                        "name": "currency",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string", "enum": PAYABLE_CURRENCIES},
                        "description": "an active ISO 4217 code with minor units",
                    },
                ],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/CreditLimitChange"}}},
                },
                "responses": {
                    "200": _json({"$ref": "#/components/schemas/CreditLimit"}, "The limit now"),
                    **_problems(400, 401, 403, 415, 422),
                },
            }
        },
    }


def _key_schemas() -> dict[str, Any]:
    key = {
        "type": "object",
        "description": "An API key as an operator sees it: never its secret.",
        "properties": {
            "id": {"type": "string"},
            "business_unit": {"type": "string"},
            "scopes": {"type": "array", "items": {"enum": ["admin", "finance", "instructions"]}},
            "prefix": {"type": "string", "description": "the key's first characters, to tell keys apart"},
            "created_at": {"type": "string", "format": "date-time"},
            "last_used_at": {"type": ["string", "null"], "format": "date-time", "description": "to the minute"},
            "revoked_at": {
                "type": ["string", "null"],
                "format": "date-time",
                "description": "when it stopped working (in the future while a rotated key is in its grace period)",
            },
            "active": {"type": "boolean"},
        },
    }
    issued = {
        "allOf": [
            {"$ref": "#/components/schemas/ApiKey"},
            {
                "type": "object",
                "required": ["key"],
                "properties": {
                    "key": {"type": "string", "description": "the secret: shown in this answer only, never again"},
                    "replaces": {"type": "string", "description": "rotation: the id of the key this one replaces"},
                    "replaced_key_valid_until": {"type": "string", "format": "date-time"},
                },
            },
        ]
    }
    return {"ApiKey": key, "IssuedApiKey": issued, "ApiKeyCreate": CREATE_SCHEMA, "ApiKeyRotate": ROTATE_SCHEMA}


def _key_paths(bearer: list[dict[str, list[str]]], id_param: dict[str, Any]) -> dict[str, Any]:
    key = {"$ref": "#/components/schemas/ApiKey"}
    issued = {
        "description": "The new key, with its secret (shown once); `Cache-Control: no-store`",
        "headers": {"Location": {"description": "The new key's URL.", "schema": {"type": "string"}}},
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/IssuedApiKey"}}},
    }
    return {
        "/v1/api-keys": {
            "get": {
                "summary": "API keys of every business unit, newest first (scope admin)",
                "operationId": "listApiKeys",
                "security": bearer,
                "parameters": [
                    {"name": "state", "in": "query", "schema": {"enum": ["active", "revoked", "all"]}},
                    {"name": "business_unit", "in": "query", "schema": {"type": "string"}},
                    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 200}},
                    {
                        "name": "cursor",
                        "in": "query",
                        "schema": {"type": "string", "pattern": KEY_ID_RE.pattern},
                        "description": "next_cursor of the last page",
                    },
                ],
                "responses": {"200": _json(_page("ApiKey"), "A page of keys"), **_problems(400, 401, 403)},
            },
            "post": {
                "summary": "Create an API key (scope admin)",
                "operationId": "createApiKey",
                "security": bearer,
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ApiKeyCreate"}}},
                },
                "responses": {"201": issued, **_problems(400, 401, 403, 415, 422)},
            },
        },
        "/v1/api-keys/{id}": {
            "get": {
                "summary": "One API key (scope admin)",
                "operationId": "getApiKey",
                "security": bearer,
                "parameters": [id_param],
                "responses": {"200": _json(key, "The key"), **_problems(401, 403, 404)},
            }
        },
        "/v1/api-keys/{id}/revoke": {
            "post": {
                "summary": "Revoke an API key now (scope admin)",
                "description": "Its next request gets 401. Revoking a revoked key changes nothing.",
                "operationId": "revokeApiKey",
                "security": bearer,
                "parameters": [id_param],
                "responses": {"200": _json(key, "The key, revoked"), **_problems(401, 403, 404)},
            }
        },
        "/v1/api-keys/{id}/rotate": {
            "post": {
                "summary": "Replace an API key by a new one with the same business unit and scopes (scope admin)",
                "description": (
                    "The old key stops at once, or after `grace_seconds` (at most 7 days) so the new one can be "
                    "deployed first. A revoked key cannot be rotated (409): create a new one."
                ),
                "operationId": "rotateApiKey",
                "security": bearer,
                "parameters": [id_param],
                "requestBody": {
                    "required": False,
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ApiKeyRotate"}}},
                },
                "responses": {"201": issued, **_problems(400, 401, 403, 404, 409, 415, 422)},
            }
        },
    }


def build_openapi(contracts: ContractRegistry, adapters: list[str]) -> dict[str, Any]:
    instruction_schemas, instruction_body = _instruction_versions(contracts)
    bearer = [{"apiKey": []}]
    id_param = {
        "name": "id",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "pattern": INSTRUCTION_ID_PATTERN},
        "description": "an instruction id (`ins_` + 26 characters); anything else is 404",
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Partner Gateway API",
            "version": __version__,
            "description": (
                "Send one normalised payment instruction; the gateway validates, stores, "
                "routes and tracks it to a final status. Errors are RFC 9457 problem details "
                "with the JSON pointer of every failing field."
            ),
        },
        "components": {
            "securitySchemes": {
                "apiKey": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "Per business unit; create with `gateway keys create --business-unit NAME`.",
                }
            },
            "schemas": {
                **instruction_schemas,
                **_risk_schemas(),
                **_rollout_schemas(),
                **_key_schemas(),
                **bundle(contracts.schema("status-event"), "StatusEvent"),
                **_ledger_schemas(),
                **_webhook_schemas(),
                **_recon_schemas(),
                **_collection_schemas(contracts),
                **receivable_schemas(),
                **rebate_schemas(),
                **_intake_schemas(),
                **_report_schemas(),
                "Accepted": {
                    "type": "object",
                    "required": ["id", "reference", "status", "created_at"],
                    "properties": {
                        "id": {"type": "string"},
                        "reference": {"type": "string"},
                        "status": {"const": "received"},
                        "created_at": {"type": "string", "format": "date-time"},
                    },
                },
                "InstructionView": {
                    "type": "object",
                    "description": "An instruction as stored; accounts are masked.",
                    "properties": {
                        "id": {"type": "string"},
                        "reference": {"type": "string"},
                        "status": {"type": "string"},
                        "amount": {"type": "string"},
                        "currency": {"type": "string"},
                        "adapter": {"type": ["string", "null"]},
                        "partner_reference": {"type": ["string", "null"]},
                        "events": {
                            "type": "array",
                            "description": "The first 100 events, oldest first",
                            "items": {"$ref": "#/components/schemas/StatusEvent"},
                        },
                        "events_next_cursor": {
                            "type": ["string", "null"],
                            "description": "More events: the cursor for GET /v1/instructions/{id}/events",
                        },
                        "ledger_entries": {
                            "type": "string",
                            "description": "link to its journal entries (GET /v1/ledger/entries?instruction_id=…)",
                        },
                    },
                },
                "PartnerMessage": {
                    "type": "object",
                    "required": [
                        "id",
                        "direction",
                        "partner",
                        "kind",
                        "method",
                        "path",
                        "status_code",
                        "occurred_at",
                        "body",
                        "size",
                        "truncated",
                    ],
                    "properties": {
                        "id": {"type": "string"},
                        "direction": {
                            "type": "string",
                            "enum": ["out", "in"],
                            "description": "out: the gateway sent it",
                        },
                        "partner": {"type": "string", "description": "the adapter's name"},
                        "kind": {"type": "string", "description": "submit, status, callback, …"},
                        "method": {"type": "string"},
                        "path": {"type": "string", "description": "the URL's path (never its query or host)"},
                        "status_code": {
                            "type": ["integer", "null"],
                            "description": "the HTTP status of an answer; null for a request",
                        },
                        "occurred_at": {"type": "string", "format": "date-time"},
                        "media_type": {"type": ["string", "null"]},
                        "body": {"type": "string", "description": "masked; cut when truncated"},
                        "size": {"type": "integer", "description": "bytes as sent"},
                        "truncated": {"type": "boolean"},
                    },
                },
                "Problem": {
                    "type": "object",
                    "required": ["type", "title", "status"],
                    "properties": {
                        "type": {"type": "string", "format": "uri"},
                        "title": {"type": "string"},
                        "status": {"type": "integer"},
                        "detail": {"type": "string"},
                        "instance": {"type": "string"},
                        "errors": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "properties": {
                                    "pointer": {"type": "string", "description": "RFC 6901 JSON pointer"},
                                    "detail": {"type": "string"},
                                },
                            },
                        },
                    },
                },
            },
            "responses": {
                "Problem": {
                    "description": "Problem details (RFC 9457)",
                    "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}},
                }
            },
        },
        "paths": {
            **_risk_paths(bearer, id_param),
            **_rollout_paths(bearer),
            **_key_paths(bearer, id_param),
            **_ledger_paths(bearer),
            **_webhook_paths(bearer),
            **_recon_paths(bearer),
            **_collection_paths(bearer),
            **receivable_paths(bearer),
            **rebate_paths(bearer),
            **_intake_paths(bearer, _RESPONSE_HEADERS),
            **_report_paths(bearer),
            "/v1/instructions": {
                "post": {
                    "summary": "Submit a payment instruction",
                    "operationId": "createInstruction",
                    "security": bearer,
                    "parameters": [
                        {
                            "name": "Idempotency-Key",
                            "in": "header",
                            "required": True,
                            "description": "Same key + same body replays the first response; a different body is 409.",
                            "schema": {"type": "string", "pattern": "^[!-~]{1,255}$"},
                        },
                    ],
                    "requestBody": instruction_body,
                    "responses": {
                        "202": {
                            "description": "Accepted and durable",
                            "headers": _RESPONSE_HEADERS,
                            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Accepted"}}},
                        },
                        **_problems(400, 401, 403, 409, 413, 415, 422, 429, 503),
                    },
                },
                "get": {
                    "summary": "List this business unit's instructions (newest first)",
                    "operationId": "listInstructions",
                    "security": bearer,
                    "description": (
                        "Filters combine (AND) and work with cursor paging. A bad value, an unknown "
                        "parameter or a parameter given twice is a 400 naming it."
                    ),
                    "parameters": [
                        {
                            "name": "reference",
                            "in": "query",
                            "schema": {"type": "string", "minLength": 1, "maxLength": 35, "pattern": TEXT_PATTERN},
                            "description": "the business unit's own reference, exact match",
                        },
                        {
                            "name": "status",
                            "in": "query",
                            "schema": {"type": "string", "pattern": _comma_list([s.value for s in Status])},
                            "description": "comma-separated statuses",
                        },
                        {
                            "name": "adapter",
                            "in": "query",
                            "schema": {"type": "string", "pattern": "^[a-z][a-z0-9_]{0,63}$"},
                            "description": "the partner adapter it was routed to, e.g. `iso20022_bank`",
                        },
                        {
                            "name": "created_from",
                            "in": "query",
                            "schema": _DATE_OR_DATETIME,
                            "description": "a date (from its start, UTC) or an RFC 3339 date-time",
                        },
                        {
                            "name": "created_to",
                            "in": "query",
                            "schema": _DATE_OR_DATETIME,
                            "description": "a date (to its end, UTC) or an RFC 3339 date-time",
                        },
                        {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 200}},
                        {
                            "name": "cursor",
                            "in": "query",
                            "schema": {"type": "string", "pattern": INSTRUCTION_ID_PATTERN},
                            "description": "next_cursor of the previous page",
                        },
                    ],
                    "responses": {
                        "200": {
                            "description": "A page",
                            "content": {
                                "application/json": {
                                    "schema": {
                                        "type": "object",
                                        "properties": {
                                            "items": {
                                                "type": "array",
                                                "items": {"$ref": "#/components/schemas/InstructionView"},
                                            },
                                            "next_cursor": {"type": ["string", "null"]},
                                        },
                                    }
                                }
                            },
                        },
                        **_problems(400, 401, 403),
                    },
                },
            },
            "/v1/instructions/{id}": {
                "get": {
                    "summary": "One instruction with its full event history",
                    "operationId": "getInstruction",
                    "security": bearer,
                    "parameters": [id_param],
                    "responses": {
                        "200": {
                            "description": "The instruction",
                            "content": {
                                "application/json": {"schema": {"$ref": "#/components/schemas/InstructionView"}}
                            },
                        },
                        **_problems(401, 403, 404),
                    },
                }
            },
            "/v1/instructions/{id}/events": {
                "get": {
                    "summary": "One instruction's events, oldest first, a page at a time",
                    "operationId": "listInstructionEvents",
                    "security": bearer,
                    "parameters": [
                        id_param,
                        {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 200}},
                        {
                            "name": "cursor",
                            "in": "query",
                            "schema": {"type": "string", "pattern": "^[0-9]{1,9}$"},
                            "description": "next_cursor of the last page (or the instruction's events_next_cursor)",
                        },
                    ],
                    "responses": {
                        "200": _json(_page("StatusEvent"), "A page of events"),
                        **_problems(400, 401, 403, 404),
                    },
                }
            },
            "/v1/instructions/{id}/partner-messages": {
                "get": {
                    "summary": "What the gateway sent the instruction's partner and what the partner answered, masked",
                    "description": (
                        "Oldest first (at most 200): submit requests and their answers, status queries, callbacks. "
                        "Bodies are masked (account numbers and IBANs show their last 4 characters, secrets "
                        "dropped, no headers) and cut at dispatch.partner_message_max_bytes (truncated). A bulk "
                        "message is listed for every payment it carries. A business unit's key reads its own "
                        "instructions (another's is 404); finance and admin keys read all."
                    ),
                    "operationId": "listPartnerMessages",
                    "security": bearer,
                    "parameters": [id_param],
                    "responses": {
                        "200": _json(
                            {
                                "type": "object",
                                "required": ["items"],
                                "properties": {
                                    "items": {"type": "array", "items": {"$ref": "#/components/schemas/PartnerMessage"}}
                                },
                            },
                            "The instruction's partner messages",
                        ),
                        **_problems(400, 401, 403, 404),
                    },
                }
            },
            "/v1/instructions/{id}/cancel": {
                "post": {
                    "summary": "Cancel an instruction that has not been submitted to a partner",
                    "operationId": "cancelInstruction",
                    "security": bearer,
                    "parameters": [id_param],
                    "responses": {
                        "200": {
                            "description": "Cancelled",
                            "content": {
                                "application/json": {"schema": {"$ref": "#/components/schemas/InstructionView"}}
                            },
                        },
                        **_problems(401, 403, 404, 409),
                    },
                }
            },
            "/v1/partners/{adapter}/callbacks": {
                "post": {
                    "summary": "Partner status callback (verified by the adapter's signature check)",
                    "description": (
                        "The body may be up to `server.callback_max_body_bytes` (default 4 MiB; `413` beyond): "
                        "a bank reports hundreds of payments in one status report."
                    ),
                    "operationId": "partnerCallback",
                    "parameters": [
                        {
                            "name": "adapter",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string", "enum": adapters or ["none"]},
                        }
                    ],
                    "requestBody": {"required": True, "content": {"*/*": {"schema": {}}}},
                    "responses": {
                        "200": {
                            "description": "Applied / ignored / unknown counts",
                            "content": {
                                "application/json": {
                                    "schema": {
                                        "type": "object",
                                        "properties": {
                                            k: {"type": "integer"} for k in ("applied", "ignored", "unknown")
                                        },
                                    }
                                }
                            },
                        },
                        **_problems(401, 404, 413, 422),
                    },
                }
            },
            "/healthz": {
                "get": {
                    "summary": "Health",
                    "operationId": "health",
                    "responses": {"200": {"description": "Healthy"}, "503": {"description": "Degraded"}},
                }
            },
            "/metrics": {
                "get": {
                    "summary": "Prometheus metrics",
                    "operationId": "metrics",
                    "responses": {"200": {"description": "Text exposition", "content": {"text/plain": {}}}},
                }
            },
            "/openapi.json": {
                "get": {
                    "summary": "This document",
                    "operationId": "openapi",
                    "responses": {"200": {"description": "OpenAPI 3.1", "content": {"application/json": {}}}},
                }
            },
            "/docs": {
                "get": {
                    "summary": "This document, browsable (Swagger UI, served by the gateway itself)",
                    "operationId": "docs",
                    "responses": {"200": {"description": "An HTML page", "content": {"text/html": {}}}},
                }
            },
            "/docs/assets/{name}": {
                "get": {
                    "summary": "A file of the browsable reference (Swagger UI, its licence)",
                    "operationId": "docsAsset",
                    "parameters": [{"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}],
                    "responses": {"200": {"description": "The file"}, **_problems(404)},
                }
            },
            "/": {
                "get": {
                    "summary": "Redirects to the browsable reference at /docs",
                    "operationId": "root",
                    "responses": {"302": {"description": "Location: /docs"}},
                }
            },
        },
    }


def render_markdown(doc: dict[str, Any]) -> str:
    """The API reference (docs/api.md), generated from the OpenAPI document."""
    lines = [
        f"# {doc['info']['title']} — API reference",
        "",
        "<!-- Generated by `gateway docs api` from the OpenAPI document; do not edit. -->",
        "",
        doc["info"]["description"],
        "",
        "The machine-readable document is served at `GET /openapi.json` (OpenAPI "
        f"{doc['openapi']}). Authentication: `Authorization: Bearer <key>`.",
        "",
        "| method | path | summary | responses |",
        "|---|---|---|---|",
    ]
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            codes = ", ".join(sorted(op["responses"]))
            lines.append(f"| {method.upper()} | `{path}` | {op['summary']} | {codes} |")
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            lines += ["", f"## {method.upper()} `{path}`", "", op["summary"] + "."]
            if op.get("description"):
                lines += ["", op["description"]]
            if op.get("security"):
                lines += ["", "Requires an API key."]
            params = op.get("parameters", [])
            if params:
                lines += ["", "| parameter | in | required | description |", "|---|---|---|---|"]
                for p in params:
                    desc = p.get("description", "")
                    lines.append(f"| `{p['name']}` | {p['in']} | {'yes' if p.get('required') else 'no'} | {desc} |")
            body = op.get("requestBody")
            if body:
                media = ", ".join(f"`{m}`" for m in body["content"])
                lines += ["", f"Request body: {media}."]
                refs = [m.get("schema", {}).get("$ref", "") for m in body["content"].values()]
                if any(r.endswith("/Instruction") for r in refs):
                    if body.get("description"):
                        lines += ["", body["description"]]
                    schema = doc["components"]["schemas"]["Instruction"]
                    lines += [
                        "",
                        f"Body fields of the latest version ({schema.get('x-version')}); every version, field by "
                        "field, with its change log: [docs/contracts/instruction.md](contracts/instruction.md).",
                        "",
                    ]
                    required = set(schema.get("required", []))
                    lines += ["| field | required | description |", "|---|---|---|"]
                    for name, prop in schema["properties"].items():
                        desc = prop.get("description", "")
                        lines.append(f"| `{name}` | {'yes' if name in required else 'no'} | {desc} |")
            lines += ["", "| status | meaning |", "|---|---|"]
            for code, resp in sorted(op["responses"].items()):
                meaning = resp.get("description") if "$ref" not in resp else "problem details (RFC 9457)"
                lines.append(f"| {code} | {meaning} |")
            for code, resp in sorted(op["responses"].items()):
                if resp.get("headers"):
                    lines += ["", f"Response headers ({code}):", "", "| header | description |", "|---|---|"]
                    lines += [f"| `{h}` | {spec['description']} |" for h, spec in resp["headers"].items()]
    lines += [
        "",
        "## Errors",
        "",
        "Every error is `application/problem+json` with `type`, `title`, `status`, `detail`,",
        "`instance` and, for invalid fields, `errors`: a list of `{pointer, detail}` where",
        "`pointer` is the RFC 6901 JSON pointer of the failing field, the most relevant first.",
        "Values are not echoed back at length: a message shows at most the first 80 characters.",
        "",
        "Every JSON body (API requests and partner callbacks) is read by one decoder. It answers",
        "`400` (`bad-request`, with the pointer where there is one) for a body that is not UTF-8",
        "(lone surrogates encoded as bytes included), starts with a byte order mark, is malformed,",
        "is nested more than 32 levels, holds an integer of more than 30 digits, a number literal of",
        "more than 40 characters, `NaN`/`Infinity`/an overflowing number, a string of more than",
        "65,536 characters or a duplicated key; and `422` (`forbidden-character`) for a string, key",
        "included, with a control character other than tab and line breaks (NUL included), a lone",
        "surrogate (`\\ud800`) or a bidirectional control (U+202A to U+202E, U+2066 to U+2069).",
        "Instruction fields refuse tabs and line breaks too. A body larger than",
        "`server.max_body_bytes` is `413`; one that stops arriving is `408` and the connection is",
        "closed (docs/configuration.md). A request the HTTP parser cannot read is a `400` problem",
        "(`malformed-http`).",
        "",
        "Formats named in the schemas beyond JSON Schema's own: `iban` (ISO 13616, check digits),",
        "`bic` (ISO 9362, known country), `aba-routing` (ABA check digit), `lei` (ISO 17442 check",
        "digits), `creditor-reference` (ISO 11649 check digits). Patterns are ECMA-262: `$` is the end",
        "of the string (a trailing line break does not match) and `\\d` is an ASCII digit.",
        "",
    ]
    return "\n".join(lines)


def _ledger_schemas() -> dict[str, Any]:
    balance = {
        "type": "object",
        "properties": {
            "currency": {"type": "string"},
            "debits": {"type": "string", "description": "decimal amount"},
            "credits": {"type": "string"},
            "balance": {"type": "string", "description": "debits minus credits"},
            "balance_minor": {"type": "integer", "description": "the balance in minor units"},
        },
    }
    return {
        "LedgerBalance": balance,
        "LedgerAccount": {
            "type": "object",
            "description": "A ledger account (docs/ledger.md) with its balance per currency.",
            "properties": {
                "name": {"type": "string", "examples": ["bu:erp-europe:receivable"]},
                "type": {"enum": ["asset", "liability", "income", "expense", "equity"]},
                "business_unit": {"type": ["string", "null"]},
                "as_of": {"type": ["string", "null"], "format": "date-time"},
                "balances": {"type": "array", "items": {"$ref": "#/components/schemas/LedgerBalance"}},
            },
        },
        "LedgerEntry": {
            "type": "object",
            "description": "A balanced journal entry; a debit is positive, a credit negative.",
            "properties": {
                "id": {"type": "integer"},
                "kind": {"type": "string", "description": "payment, or an event kind (fee, …)"},
                "memo": {"type": "string", "examples": ["submitted → settled"]},
                "instruction_id": {"type": ["string", "null"]},
                "business_unit": {"type": ["string", "null"]},
                "booked_at": {"type": "string", "format": "date-time"},
                "original_at": {"type": ["string", "null"], "format": "date-time", "description": "late entries"},
                "reverses": {"type": ["integer", "null"], "description": "the entry this one corrects"},
                "postings": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "account": {"type": "string"},
                            "currency": {"type": "string"},
                            "amount": {"type": "string"},
                            "amount_minor": {"type": "integer"},
                        },
                    },
                },
            },
        },
    }


def _ledger_paths(bearer: list[dict[str, list[str]]]) -> dict[str, Any]:
    problems, json_body, page = _problems, _json, _page
    scope = "Scope `finance` reads every account; a business unit's key only its own (others are 404)."
    page_params = [
        {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 200}},
    ]

    def cursor(pattern: str) -> dict[str, Any]:
        return {
            "name": "cursor",
            "in": "query",
            "schema": {"type": "string", "pattern": pattern},
            "description": "next_cursor of the last page",
        }

    return {
        "/v1/ledger/accounts": {
            "get": {
                "summary": "Ledger accounts with their current balances, by name",
                "description": scope,
                "operationId": "listLedgerAccounts",
                "security": bearer,
                "parameters": [*page_params, cursor(ACCOUNT_CURSOR.pattern)],
                "responses": {"200": json_body(page("LedgerAccount"), "A page of accounts"), **problems(400, 401, 403)},
            }
        },
        "/v1/ledger/accounts/{name}": {
            "get": {
                "summary": "One account's balance per currency, now or as of an instant",
                "description": scope,
                "operationId": "getLedgerAccount",
                "security": bearer,
                "parameters": [
                    {
                        "name": "name",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string", "pattern": ACCOUNT_CURSOR.pattern},
                    },
                    {
                        "name": "as_of",
                        "in": "query",
                        "schema": _DATE_OR_DATETIME,
                        "description": "an RFC 3339 date-time, or a date (its end, UTC)",
                    },
                ],
                "responses": {
                    "200": json_body({"$ref": "#/components/schemas/LedgerAccount"}, "The account"),
                    **problems(400, 401, 403, 404),
                },
            }
        },
        "/v1/ledger/entries": {
            "get": {
                "summary": "Journal entries in journal order",
                "description": scope + " `from`/`to` bound the booking time (dates: whole days, UTC).",
                "operationId": "listLedgerEntries",
                "security": bearer,
                "parameters": [
                    {"name": "instruction_id", "in": "query", "schema": {"type": "string", "pattern": TEXT_PATTERN}},
                    {"name": "account", "in": "query", "schema": {"type": "string", "pattern": TEXT_PATTERN}},
                    {"name": "from", "in": "query", "schema": _DATE_OR_DATETIME},
                    {"name": "to", "in": "query", "schema": _DATE_OR_DATETIME},
                    *page_params,
                    cursor(ENTRY_CURSOR.pattern),
                ],
                "responses": {"200": json_body(page("LedgerEntry"), "A page of entries"), **problems(400, 401, 403)},
            }
        },
    }


def _webhook_schemas() -> dict[str, Any]:
    endpoint = {
        "type": "object",
        "description": "A business unit's webhook endpoint: never its signing secret.",
        "properties": {
            "id": {"type": "string"},
            "business_unit": {"type": "string"},
            "url": {"type": "string"},
            "events": {"type": "array", "items": {"type": "string"}},
            "enabled": {"type": "boolean"},
            "disabled_reason": {"type": ["string", "null"]},
            "consecutive_failures": {"type": "integer", "description": "failed attempts in a row"},
            "previous_secret_valid_until": {
                "type": ["string", "null"],
                "format": "date-time",
                "description": "after a rotation: until when the previous secret signs too",
            },
            "created_at": {"type": "string", "format": "date-time"},
            "updated_at": {"type": "string", "format": "date-time"},
        },
    }
    issued = {
        "allOf": [
            {"$ref": "#/components/schemas/WebhookEndpoint"},
            {
                "type": "object",
                "required": ["secret"],
                "properties": {
                    "secret": {
                        "type": "string",
                        "description": "the signing secret: shown in this answer only, never again",
                    }
                },
            },
        ]
    }
    delivery = {
        "type": "object",
        "description": "One status event for one endpoint, and how sending it went.",
        "properties": {
            "id": {"type": "string"},
            "endpoint_id": {"type": "string"},
            "event_id": {"type": "string", "description": "the Gateway-Event-Id header: the same on every attempt"},
            "instruction_id": {"type": "string"},
            "sequence": {"type": "integer", "description": "the event's place in the instruction's history"},
            "status": {"enum": list(WEBHOOK_DELIVERY_STATES)},
            "attempts": {"type": "integer"},
            "next_attempt_at": {"type": ["string", "null"], "format": "date-time"},
            "last_status_code": {"type": ["integer", "null"]},
            "last_error": {"type": ["string", "null"]},
            "created_at": {"type": "string", "format": "date-time"},
            "delivered_at": {"type": ["string", "null"], "format": "date-time"},
        },
    }
    return {
        "WebhookEndpoint": endpoint,
        "IssuedWebhookEndpoint": issued,
        "WebhookDelivery": delivery,
        "WebhookEndpointCreate": WEBHOOK_CREATE_SCHEMA,
        "WebhookEndpointUpdate": WEBHOOK_UPDATE_SCHEMA,
        "WebhookSecretRotate": WEBHOOK_ROTATE_SCHEMA,
    }


def _webhook_paths(bearer: list[dict[str, list[str]]]) -> dict[str, Any]:
    scope = "Scope `instructions`: a business unit's own endpoints and deliveries only (others are 404)."
    endpoint = {"$ref": "#/components/schemas/WebhookEndpoint"}
    endpoint_id = {
        "name": "id",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "pattern": ENDPOINT_ID_RE.pattern},
        "description": "a webhook endpoint id (`whe_` + 26 characters); anything else is 404",
    }
    with_secret = {
        "headers": {"Cache-Control": {"description": "no-store", "schema": {"type": "string"}}},
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/IssuedWebhookEndpoint"}}},
    }

    def body(ref: str, required: bool) -> dict[str, Any]:
        return {
            "required": required,
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}},
        }

    def page(pattern: str) -> list[dict[str, Any]]:
        return [
            {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 200}},
            {
                "name": "cursor",
                "in": "query",
                "schema": {"type": "string", "pattern": pattern},
                "description": "next_cursor of the last page",
            },
        ]

    return {
        "/v1/webhook-endpoints": {
            "get": {
                "summary": "The business unit's webhook endpoints, newest first",
                "description": scope,
                "operationId": "listWebhookEndpoints",
                "security": bearer,
                "parameters": page(ENDPOINT_ID_RE.pattern),
                "responses": {
                    "200": _json(_page("WebhookEndpoint"), "A page of endpoints"),
                    **_problems(400, 401, 403),
                },
            },
            "post": {
                "summary": "Register a webhook endpoint; the answer holds its signing secret, shown once",
                "description": scope
                + " The URL must be http(s); unless the gateway allows private addresses (a development setting), "
                "a host on a loopback, private, link-local or otherwise non-public address is refused (422, "
                "pointer `/url`). Events: statuses, or `*` for every status change.",
                "operationId": "createWebhookEndpoint",
                "security": bearer,
                "requestBody": body("WebhookEndpointCreate", True),
                "responses": {
                    "201": {
                        "description": "The endpoint, with its secret",
                        **with_secret,
                        "headers": {
                            **with_secret["headers"],
                            "Location": {"description": "The endpoint's URL.", "schema": {"type": "string"}},
                        },
                    },
                    **_problems(400, 401, 403, 415, 422),
                },
            },
        },
        "/v1/webhook-endpoints/{id}": {
            "get": {
                "summary": "One webhook endpoint",
                "description": scope,
                "operationId": "getWebhookEndpoint",
                "security": bearer,
                "parameters": [endpoint_id],
                "responses": {"200": _json(endpoint, "The endpoint"), **_problems(401, 403, 404)},
            },
            "patch": {
                "summary": "Change a webhook endpoint's URL, events or enabled",
                "description": scope + " Enabling a disabled endpoint clears its failure count; its waiting "
                "deliveries are sent.",
                "operationId": "updateWebhookEndpoint",
                "security": bearer,
                "parameters": [endpoint_id],
                "requestBody": body("WebhookEndpointUpdate", True),
                "responses": {"200": _json(endpoint, "The endpoint"), **_problems(400, 401, 403, 404, 415, 422)},
            },
            "delete": {
                "summary": "Delete a webhook endpoint and its deliveries",
                "description": scope,
                "operationId": "deleteWebhookEndpoint",
                "security": bearer,
                "parameters": [endpoint_id],
                "responses": {"204": {"description": "Deleted"}, **_problems(401, 403, 404)},
            },
        },
        "/v1/webhook-endpoints/{id}/rotate-secret": {
            "post": {
                "summary": "A new signing secret; the old one also signs during the overlap",
                "description": scope + " `overlap_seconds` defaults to `webhooks.secret_overlap_seconds`; during "
                "it every request carries two `v1` signatures. A secret still in an overlap stops at the next "
                "rotation.",
                "operationId": "rotateWebhookSecret",
                "security": bearer,
                "parameters": [endpoint_id],
                "requestBody": body("WebhookSecretRotate", False),
                "responses": {
                    "200": {"description": "The endpoint, with its new secret", **with_secret},
                    **_problems(400, 401, 403, 404, 415, 422),
                },
            }
        },
        "/v1/webhook-deliveries": {
            "get": {
                "summary": "The business unit's webhook deliveries, newest first",
                "description": scope,
                "operationId": "listWebhookDeliveries",
                "security": bearer,
                "parameters": [
                    {"name": "status", "in": "query", "schema": {"enum": list(WEBHOOK_DELIVERY_STATES)}},
                    {
                        "name": "endpoint_id",
                        "in": "query",
                        "schema": {"type": "string", "pattern": ENDPOINT_ID_RE.pattern},
                    },
                    {
                        "name": "instruction_id",
                        "in": "query",
                        "schema": {"type": "string", "pattern": INSTRUCTION_ID_PATTERN},
                    },
                    *page(DELIVERY_ID_RE.pattern),
                ],
                "responses": {
                    "200": _json(_page("WebhookDelivery"), "A page of deliveries"),
                    **_problems(400, 401, 403),
                },
            }
        },
        "/v1/webhook-deliveries/{id}/redeliver": {
            "post": {
                "summary": "Send a delivery again now (same event id, same body)",
                "description": scope + " Whatever its state; 409 while its endpoint is disabled.",
                "operationId": "redeliverWebhook",
                "security": bearer,
                "parameters": [
                    {
                        "name": "id",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string", "pattern": DELIVERY_ID_RE.pattern},
                        "description": "a delivery id (`whd_` + 26 characters); anything else is 404",
                    }
                ],
                "responses": {
                    "202": _json({"$ref": "#/components/schemas/WebhookDelivery"}, "The delivery, pending"),
                    **_problems(401, 403, 404, 409),
                },
            }
        },
    }


def _recon_schemas() -> dict[str, Any]:
    return {
        "StatementImport": {
            "type": "object",
            "description": "What importing one statement file did (docs/reconciliation.md).",
            "required": ["format", "sha256", "statements", "stored", "lines", "gaps"],
            "properties": {
                "format": {"type": "string", "examples": ["camt.053"]},
                "sha256": {"type": "string", "description": "the file's digest"},
                "statements": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "source": {"type": "string", "description": "the adapter whose statement it is"},
                            "statement_id": {"type": "string"},
                            "format": {"type": "string"},
                            "lines": {"type": "integer"},
                            "stored": {"type": "boolean", "description": "false: imported before, nothing added"},
                            "gap": {"type": ["string", "null"], "description": "statements missing before this one"},
                        },
                    },
                },
                "stored": {"type": "integer", "description": "statements stored by this import"},
                "lines": {"type": "integer", "description": "lines stored by this import"},
                "gaps": {"type": "array", "items": {"type": "string"}},
            },
        },
        "MatchRun": {
            "type": "object",
            "description": "What one reconciliation run did (docs/reconciliation.md).",
            "required": ["lines", "confirmed", "suggested", "unmatched", "breaks_opened", "breaks_closed"],
            "properties": {
                "lines": {"type": "integer", "description": "unmatched booked statement lines looked at"},
                "confirmed": {"type": "integer", "description": "matches confirmed by the rules"},
                "suggested": {"type": "integer", "description": "matches waiting for finance"},
                "unmatched": {"type": "integer", "description": "lines no rule matched"},
                "breaks_opened": {"type": "integer"},
                "breaks_closed": {"type": "integer", "description": "open breaks the rules explain now"},
                "dry_run": {"const": True, "description": "only on a dry run: nothing was written"},
                "matches": {
                    "type": "array",
                    "description": "dry run: the matches a run would write, with the ids it would give them",
                    "items": {
                        "type": "object",
                        "required": [
                            "match",
                            "status",
                            "rule",
                            "lines",
                            "payments",
                            "lines_amount",
                            "payments_amount",
                            "difference",
                        ],
                        "properties": {
                            "match": {"type": "string"},
                            "status": {"enum": ["confirmed", "suggested"]},
                            "rule": {"type": "string"},
                            "lines": {"type": "array", "items": {"type": "string"}},
                            "payments": {"type": "array", "items": {"type": "string"}},
                            "lines_amount": {"type": "string"},
                            "payments_amount": {"type": "string"},
                            "difference": {"type": "string", "description": "money out positive: a fee, FX"},
                        },
                    },
                },
                "breaks_to_open": {
                    "type": "array",
                    "description": "dry run: the breaks a run would open",
                    "items": {
                        "type": "object",
                        "required": ["kind", "subject", "source", "amount", "currency", "detail"],
                        "properties": {
                            "kind": {"enum": list(BREAK_KINDS)},
                            "subject": {"type": "string"},
                            "source": {"type": "string"},
                            "amount": {"type": "string"},
                            "currency": {"type": "string"},
                            "detail": {"type": "string"},
                        },
                    },
                },
                "breaks_to_close": {
                    "type": "array",
                    "description": "dry run: the open breaks a run would close",
                    "items": {"type": "string", "pattern": BREAK_ID.pattern},
                },
            },
        },
        "Break": {
            "type": "object",
            "description": "Something reconciliation could not explain, and its workflow (docs/reconciliation.md).",
            "required": ["id", "kind", "state", "subject", "source", "currency", "amount", "age_days", "detail"],
            "properties": {
                "id": {"type": "string", "pattern": BREAK_ID.pattern},
                "kind": {"enum": list(BREAK_KINDS)},
                "state": {"enum": list(BREAK_STATES)},
                "subject": {
                    "type": "string",
                    "description": "a statement line (`ln_…`), a match (`m_…`), an instruction id, or bu/day/currency",
                },
                "source": {"type": "string", "description": "the partner (adapter), or `bu:<business unit>`"},
                "currency": {"type": "string"},
                "amount": {"type": "string", "description": "signed (money out is positive); a mismatch's difference"},
                "date": {"type": ["string", "null"], "format": "date"},
                "age_days": {"type": "integer", "description": "days since the break was opened"},
                "detail": {"type": "string"},
                "instruction_id": {"type": ["string", "null"]},
                "owner": {"type": ["string", "null"]},
                "opened_at": {"type": "string", "format": "date-time"},
                "closed_at": {"type": ["string", "null"], "format": "date-time"},
                "closed_by": {"type": ["string", "null"]},
                "reason": {"type": ["string", "null"]},
                "write_off_requested_by": {
                    "type": ["string", "null"],
                    "description": "who asked for a write-off above the threshold (another person approves)",
                },
                "comments": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "by": {"type": "string"},
                            "at": {"type": "string", "format": "date-time"},
                            "text": {"type": "string"},
                        },
                    },
                },
            },
        },
        "ReconSummary": {
            "type": "object",
            "description": "Matched share of statement lines, open breaks by kind and by age.",
            "required": [
                "statement_lines",
                "matched_lines",
                "matched_percent",
                "open_breaks",
                "by_kind",
                "by_age_days",
            ],
            "properties": {
                "statement_lines": {"type": "integer"},
                "matched_lines": {"type": "integer"},
                "matched_percent": {"type": "number"},
                "open_breaks": {"type": "integer"},
                "by_kind": {"type": "object", "additionalProperties": {"type": "integer"}},
                "by_age_days": {"type": "object", "additionalProperties": {"type": "integer"}},
            },
        },
        "BreakReason": with_text_rule(REASON_SCHEMA),
        "BreakOwner": with_text_rule(OWNER_SCHEMA),
        "BreakComment": with_text_rule(TEXT_SCHEMA),
        "HandMatch": with_text_rule(HAND_MATCH_SCHEMA),
        "ControlTotals": with_text_rule(CONTROL_TOTALS_SCHEMA),
    }


def _recon_paths(bearer: list[dict[str, list[str]]]) -> dict[str, Any]:
    report = {"$ref": "#/components/schemas/StatementImport"}
    brk = {"$ref": "#/components/schemas/Break"}
    break_param = {
        "name": "id",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "pattern": BREAK_ID.pattern},
        "description": "the break (`brk_<number>`); anything else is 404",
    }

    def action(operation: str, summary: str, body: str) -> dict[str, Any]:
        return {
            "post": {
                "summary": f"{summary} (scope finance)",
                "operationId": operation,
                "security": bearer,
                "parameters": [break_param],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{body}"}}},
                },
                "responses": {
                    "200": _json(brk, "The break after it"),
                    **_problems(400, 401, 403, 404, 409, 415, 422),
                },
            }
        }

    return {
        "/v1/statements": {
            "post": {
                "summary": "Import a partner statement file (scope finance)",
                "description": (
                    "The body is the file as the partner sent it (camt.053, MT940, NACHA, the card acquirer's "
                    "settlement report, or a format an installed adapter offers), in any media type; a CSV "
                    "statement through a column mapping configured by name (`mapping`). Its own control figures (entry "
                    "counts, sums, opening + movements = closing) are checked: a file that fails them, "
                    "or cannot be read, is refused with `422` and one line, and nothing of it is stored. "
                    "A statement imported before adds nothing (`200`); anything new answers `201`. "
                    "The body may be up to `reconciliation.statement_max_bytes` (default 32 MiB; `413` "
                    "beyond it); larger files are imported with `gateway recon import FILE`, which streams them."
                ),
                "operationId": "importStatement",
                "security": bearer,
                "parameters": [
                    {
                        "name": "format",
                        "in": "query",
                        "schema": {"type": "string", "pattern": FORMAT_PATTERN.pattern},
                        "description": "`auto` (default: recognised from the file), `camt.053`, `mt940`, `nacha`, "
                        "`ach_settlement`, `card_settlement`, `rtp.camt.053` (never recognised by `auto`), "
                        "`csv` (with `mapping`), …",
                    },
                    {
                        "name": "mapping",
                        "in": "query",
                        "schema": {"type": "string", "pattern": "^[a-z0-9][a-z0-9._-]{0,31}$"},
                        "description": "a CSV statement's column mapping, by its name in `reconciliation.csv_mappings` "
                        "(implies `format=csv`; `400` for a name not configured)",
                    },
                ],
                "requestBody": {"required": True, "content": {"*/*": {"schema": {}}}},
                "responses": {
                    "200": _json(report, "Every statement in the file was imported before; nothing added"),
                    "201": _json(report, "New statements stored"),
                    **_problems(400, 401, 403, 408, 409, 413, 422),
                },
            }
        },
        "/v1/recon/run": {
            "post": {
                "summary": "Run reconciliation: match, post to the ledger, sync the breaks (scope finance)",
                "description": "The rules of `config/reconciliation.yaml` in order (docs/reconciliation.md). "
                "`source` narrows the run to one partner, `date` to statement lines of that day. "
                "`dry_run=true` reports what the run would match and which breaks it would open or close, "
                "and writes nothing.",
                "operationId": "runReconciliation",
                "security": bearer,
                "parameters": [
                    {"name": "source", "in": "query", "schema": {"type": "string", "pattern": SOURCE_PATTERN.pattern}},
                    {"name": "date", "in": "query", "schema": {"type": "string", "format": "date"}},
                    {"name": "dry_run", "in": "query", "schema": {"enum": ["true", "false"]}},
                ],
                "responses": {
                    "200": _json({"$ref": "#/components/schemas/MatchRun"}, "What the run did (or would do)"),
                    **_problems(400, 401, 403, 409),
                },
            }
        },
        "/v1/recon/breaks": {
            "get": {
                "summary": "Reconciliation breaks, oldest first (scope finance)",
                "description": "`state`: `open` (default: open or pending a second person's write-off), "
                "one state, or `all`.",
                "operationId": "listBreaks",
                "security": bearer,
                "parameters": [
                    {"name": "kind", "in": "query", "schema": {"enum": list(BREAK_KINDS)}},
                    {"name": "state", "in": "query", "schema": {"enum": [*BREAK_STATES, "all"]}},
                    {"name": "source", "in": "query", "schema": {"type": "string", "pattern": "^[a-z0-9_:.-]{1,64}$"}},
                    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 200}},
                    {
                        "name": "cursor",
                        "in": "query",
                        "schema": {"type": "string", "pattern": BREAK_CURSOR.pattern},
                        "description": "next_cursor of the last page",
                    },
                ],
                "responses": {"200": _json(_page("Break"), "A page of breaks"), **_problems(400, 401, 403)},
            }
        },
        "/v1/recon/breaks/{id}": {
            "get": {
                "summary": "A break with its comments (scope finance)",
                "operationId": "getBreak",
                "security": bearer,
                "parameters": [break_param],
                "responses": {"200": _json(brk, "The break"), **_problems(400, 401, 403, 404)},
            }
        },
        "/v1/recon/breaks/{id}/assign": action("assignBreak", "Give a break an owner", "BreakOwner"),
        "/v1/recon/breaks/{id}/comments": action("commentBreak", "Comment on a break", "BreakComment"),
        "/v1/recon/breaks/{id}/resolve": action(
            "resolveBreak",
            "Close a break with a reason; a line in suspense is 409 (match it or write it off)",
            "BreakReason",
        ),
        "/v1/recon/breaks/{id}/write-off": action(
            "writeOffBreak",
            "Write a line's suspense off to `write_off:{adapter}`. Above the threshold of "
            "`config/reconciliation.yaml` the first call leaves it `pending_write_off` and another finance "
            "key must call again (the same key: 403 `four-eyes`)",
            "BreakReason",
        ),
        "/v1/recon/breaks/{id}/match": action(
            "matchBreak",
            "Match a break's statement line to settled payments by hand (the difference is posted as a fee)",
            "HandMatch",
        ),
        "/v1/recon/matches/{ref}/confirm": {
            "post": {
                "summary": "Confirm a suggested match and post it to the ledger (scope finance)",
                "operationId": "confirmMatch",
                "security": bearer,
                "parameters": [
                    {
                        "name": "ref",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string", "pattern": MATCH_REF.pattern},
                        "description": "the match (`m_<id>`) or one of its statement lines (`ln_<statement>_<line>`)",
                    }
                ],
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "required": ["match", "instruction_ids", "status"],
                            "properties": {
                                "match": {"type": "string"},
                                "instruction_ids": {"type": "array", "items": {"type": "string"}},
                                "status": {"const": "confirmed"},
                            },
                        },
                        "The match, confirmed",
                    ),
                    **_problems(400, 401, 403, 404, 409),
                },
            }
        },
        "/v1/recon/matches/{ref}/reject": {
            "post": {
                "summary": "Reject a suggested match: its lines and payments are free again (scope finance)",
                "description": "Only a suggested match (a confirmed one is posted: `409`). The match is kept as "
                "`rejected`, its break resolved with the reason, and the same pairing (the same lines with the "
                "same payments, amounts and references) is never suggested again.",
                "operationId": "rejectMatch",
                "security": bearer,
                "parameters": [
                    {
                        "name": "ref",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string", "pattern": MATCH_REF.pattern},
                        "description": "the match (`m_<id>`) or one of its statement lines (`ln_<statement>_<line>`)",
                    }
                ],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/BreakReason"}}},
                },
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "required": ["match", "status", "lines", "payments", "reason"],
                            "properties": {
                                "match": {"type": "string"},
                                "status": {"const": "rejected"},
                                "lines": {"type": "array", "items": {"type": "string"}},
                                "payments": {"type": "array", "items": {"type": "string"}},
                                "reason": {"type": "string"},
                            },
                        },
                        "The match, rejected",
                    ),
                    **_problems(400, 401, 403, 404, 409, 415, 422),
                },
            }
        },
        "/v1/recon/summary": {
            "get": {
                "summary": "Matched share and open breaks by kind and age (scope finance)",
                "operationId": "reconSummary",
                "security": bearer,
                "responses": {
                    "200": _json({"$ref": "#/components/schemas/ReconSummary"}, "The summary"),
                    **_problems(400, 401, 403),
                },
            }
        },
        "/v1/control-totals": {
            "post": {
                "summary": "A business unit's day: count and sum per currency (scope instructions or finance)",
                "description": "Stored per business unit, day and currency (sending them again replaces them); "
                "the next reconciliation run compares them with the gateway's own totals of payments received "
                "that day (UTC) and opens an `upstream_total_mismatch` break for a difference.",
                "operationId": "postControlTotals",
                "security": bearer,
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ControlTotals"}}},
                },
                "responses": {
                    "200": _json({"$ref": "#/components/schemas/ControlTotals"}, "The totals, stored"),
                    **_problems(400, 401, 403, 409, 415, 422),
                },
            }
        },
    }


COLLECTION_ID_PATTERN = "^col_[0-9A-Z]{26}$"


def _collection_schemas(contracts: ContractRegistry) -> dict[str, Any]:
    money = {
        "type": "object",
        "required": ["value", "currency"],
        "properties": {"value": {"type": "string"}, "currency": {"type": "string"}},
    }
    return {
        **narrow_collection(
            bundle(contracts.schema("collection", contracts.latest("collection")), "Collection"), "Collection"
        ),
        **bundle(contracts.schema("collection-event", "1.0"), "CollectionEvent"),
        "CollectionAccepted": {
            "type": "object",
            "required": ["id", "reference", "kind", "status", "created_at"],
            "properties": {
                "id": {"type": "string", "pattern": COLLECTION_ID_PATTERN},
                "reference": {"type": "string"},
                "kind": {"enum": list(COLLECTION_KINDS)},
                "status": {"const": "received"},
                "created_at": {"type": "string", "format": "date-time"},
            },
        },
        "CollectionRefund": {
            "type": "object",
            "description": "A refund of a collected charge: pending until the acquirer answers, then its outcome.",
            "required": ["id", "collection_id", "amount", "status", "created_at"],
            "properties": {
                "id": {"type": "string", "pattern": "^crf_[0-9A-Z]{26}$"},
                "collection_id": {"type": "string", "pattern": COLLECTION_ID_PATTERN},
                "amount": money,
                "status": {"enum": ["pending", "succeeded", "failed"]},
                "partner_reference": {"type": ["string", "null"]},
                "reason_code": {"type": ["string", "null"]},
                "reason": {"type": ["string", "null"]},
                "created_at": {"type": "string", "format": "date-time"},
                "updated_at": {"type": "string", "format": "date-time"},
            },
        },
        "CollectionRefundRequest": {
            "type": "object",
            "additionalProperties": False,
            "description": "Empty to refund all that is left; else the amount, in the collection's currency.",
            "properties": {
                "amount": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["value", "currency"],
                    "properties": {
                        "value": {"type": "string", "pattern": "^(0|[1-9][0-9]{0,14})(\\.[0-9]{1,3})?$"},
                        "currency": {"type": "string", "pattern": "^[A-Z]{3}$"},
                    },
                }
            },
        },
        "CollectionView": {
            "type": "object",
            "description": "A collection as stored; the payer's card token, wallet id or IBAN is masked.",
            "required": ["id", "reference", "kind", "amount", "status", "payer", "created_at"],
            "properties": {
                "id": {"type": "string", "pattern": COLLECTION_ID_PATTERN},
                "reference": {"type": "string"},
                "kind": {"enum": list(COLLECTION_KINDS)},
                "amount": money,
                "status": {"enum": [s.value for s in CollectionStatus]},
                "payer": {"type": "object", "additionalProperties": {"type": "string"}},
                "mandate": {"type": ["object", "null"]},
                "due_date": {
                    "type": ["string", "null"],
                    "format": "date",
                    "description": "direct_debit: the debit day asked for; null for the earliest the scheme allows",
                },
                "description": {"type": ["string", "null"]},
                "capture": {"enum": ["auto", "manual"]},
                "captured_at": {"type": ["string", "null"], "format": "date-time"},
                "refunded": {"type": "string", "description": "the amount refunded or being refunded"},
                "channel": {"type": ["string", "null"]},
                "metadata": {"type": "object", "additionalProperties": {"type": "string"}},
                "contract_version": {"type": "string"},
                "adapter": {"type": ["string", "null"]},
                "partner_reference": {"type": ["string", "null"]},
                "created_at": {"type": "string", "format": "date-time"},
                "updated_at": {"type": "string", "format": "date-time"},
                "events": {
                    "type": "array",
                    "description": "The first 100 events, oldest first (GET one collection only)",
                    "items": {"$ref": "#/components/schemas/CollectionEvent"},
                },
                "refunds": {
                    "type": "array",
                    "description": "Its refunds, oldest first (GET one collection only)",
                    "items": {"$ref": "#/components/schemas/CollectionRefund"},
                },
                "ledger_entries": {
                    "type": "string",
                    "description": "link to its journal entries (GET /v1/ledger/entries?instruction_id=…)",
                },
            },
        },
    }


def _intake_schemas() -> dict[str, Any]:
    """Batches and ERP files."""
    problem = {"$ref": "#/components/schemas/Problem"}
    file_head = {
        "id": {"type": "string", "description": "`fil_` + 26 characters"},
        "message_id": {"type": "string", "description": "the file's GrpHdr/MsgId"},
        "version": {"enum": list(PAIN001_VERSIONS)},
        "payments": {"type": "integer", "description": "transactions (CdtTrfTxInf) in the file"},
        "status": {
            "enum": ["accepted", "rejected"],
            "description": "`accepted`: at least one payment became an instruction; `rejected`: none did",
        },
        "created_at": {"type": "string", "format": "date-time"},
        "status_report": {"type": "string", "description": "where its pain.002 is (GET)"},
        "accepted": {"type": "integer", "description": "payments taken in as instructions"},
        "refused": {"type": "integer", "description": "payments refused on intake (each RJCT in the pain.002)"},
    }
    return {
        "InstructionBatch": {
            "type": "object",
            "required": ["instructions"],
            "properties": {
                "instructions": {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": MAX_BATCH_ITEMS,
                    "description": (
                        "Instruction documents (the `Instruction` schema of the negotiated contract version). "
                        "Each is validated on its own: an invalid one is answered in `items` with its problem, "
                        "and does not refuse the others unless `all_or_nothing` is asked."
                    ),
                    "items": {},
                },
                "all_or_nothing": {
                    "type": "boolean",
                    "default": False,
                    "description": "refuse the whole batch (422, nothing stored) if any item is refused",
                },
            },
            "additionalProperties": False,
        },
        "BatchAccepted": {
            "type": "object",
            "required": ["id", "created_at", "accepted", "refused", "all_or_nothing", "items"],
            "properties": {
                "id": {"type": "string", "description": "`bat_` + 26 characters"},
                "created_at": {"type": "string", "format": "date-time"},
                "accepted": {"type": "integer"},
                "refused": {"type": "integer"},
                "all_or_nothing": {"type": "boolean"},
                "items": {
                    "type": "array",
                    "description": "one per instruction sent, in the order sent",
                    "items": {
                        "oneOf": [
                            {
                                "type": "object",
                                "required": ["index", "id", "reference", "status"],
                                "properties": {
                                    "index": {"type": "integer"},
                                    "id": {"type": "string"},
                                    "reference": {"type": "string"},
                                    "status": {"const": "received"},
                                },
                            },
                            {
                                "type": "object",
                                "required": ["index", "problem"],
                                "properties": {
                                    "index": {"type": "integer"},
                                    "problem": {
                                        **problem,
                                        "description": "why it was refused; pointers start /instructions/{index}",
                                    },
                                },
                            },
                        ]
                    },
                },
            },
        },
        "BatchSummary": {
            "type": "object",
            "required": ["id", "created_at", "count", "by_status"],
            "properties": {
                "id": {"type": "string"},
                "created_at": {"type": "string", "format": "date-time"},
                "count": {"type": "integer", "description": "instructions the batch holds"},
                "by_status": {
                    "type": "object",
                    "description": "how many of them are in each status now",
                    "propertyNames": {"enum": [s.value for s in Status]},
                    "additionalProperties": {"type": "integer"},
                },
            },
        },
        "FileAccepted": {
            "type": "object",
            "required": ["id", "message_id", "version", "payments", "status", "created_at", "accepted", "refused"],
            "properties": file_head,
        },
        "FileView": {
            "type": "object",
            "required": ["id", "message_id", "version", "payments", "status", "by_status"],
            "properties": {
                **file_head,
                "reason": {"type": ["string", "null"], "description": "why a rejected file was refused"},
                "by_status": {
                    "type": "object",
                    "description": "the file's instructions in each status now",
                    "propertyNames": {"enum": [s.value for s in Status]},
                    "additionalProperties": {"type": "integer"},
                },
            },
        },
    }


def _collection_paths(bearer: list[dict[str, list[str]]]) -> dict[str, Any]:
    id_param = {
        "name": "id",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "pattern": COLLECTION_ID_PATTERN},
        "description": "a collection id (`col_` + 26 characters); anything else is 404",
    }
    key_param = {
        "name": "Idempotency-Key",
        "in": "header",
        "required": True,
        "description": "Same key + same request replays the first response; another request is 409.",
        "schema": {"type": "string", "pattern": "^[!-~]{1,255}$"},
    }
    view = {"application/json": {"schema": {"$ref": "#/components/schemas/CollectionView"}}}
    return {
        "/v1/collections": {
            "post": {
                "summary": "Submit a collection (money in: card or wallet charge, direct debit)",
                "operationId": "createCollection",
                "security": bearer,
                "description": (
                    "Contract `collection` (docs/contracts/collection.md). Durable before the 202; the dispatcher "
                    "routes it to an adapter that declares its kind (none: rejected NO_ROUTE). Cards travel as "
                    "acquirer tokens only; free text that reads like a card number is refused (422)."
                ),
                "parameters": [key_param],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Collection"}}},
                },
                "responses": {
                    "202": {
                        "description": "Accepted and durable",
                        "headers": {k: v for k, v in _RESPONSE_HEADERS.items() if k != "Location"}
                        | {"Location": {"description": "The new collection's URL.", "schema": {"type": "string"}}},
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/CollectionAccepted"}}
                        },
                    },
                    **_problems(400, 401, 403, 409, 413, 415, 422, 503),
                },
            },
            "get": {
                "summary": "List this business unit's collections (newest first)",
                "operationId": "listCollections",
                "security": bearer,
                "description": "Filters combine (AND) and work with cursor paging; a bad value is a 400 naming it.",
                "parameters": [
                    {
                        "name": "reference",
                        "in": "query",
                        "schema": {"type": "string", "minLength": 1, "maxLength": 35, "pattern": TEXT_PATTERN},
                        "description": "the business unit's own reference, exact match",
                    },
                    {
                        "name": "status",
                        "in": "query",
                        "schema": {"type": "string", "pattern": _comma_list([s.value for s in CollectionStatus])},
                        "description": "comma-separated statuses",
                    },
                    {"name": "kind", "in": "query", "schema": {"enum": list(COLLECTION_KINDS)}},
                    {
                        "name": "created_from",
                        "in": "query",
                        "schema": _DATE_OR_DATETIME,
                        "description": "a date (from its start, UTC) or an RFC 3339 date-time",
                    },
                    {
                        "name": "created_to",
                        "in": "query",
                        "schema": _DATE_OR_DATETIME,
                        "description": "a date (to its end, UTC) or an RFC 3339 date-time",
                    },
                    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 200}},
                    {
                        "name": "cursor",
                        "in": "query",
                        "schema": {"type": "string", "pattern": COLLECTION_ID_PATTERN},
                        "description": "next_cursor of the previous page",
                    },
                ],
                "responses": {
                    "200": _json(_page("CollectionView"), "A page"),
                    **_problems(400, 401, 403),
                },
            },
        },
        "/v1/collections/{id}": {
            "get": {
                "summary": "One collection with its events and refunds",
                "operationId": "getCollection",
                "security": bearer,
                "parameters": [id_param],
                "responses": {"200": {"description": "The collection", "content": view}, **_problems(401, 403, 404)},
            }
        },
        "/v1/collections/{id}/cancel": {
            "post": {
                "summary": "Cancel a collection the dispatcher has not taken yet (else 409)",
                "operationId": "cancelCollection",
                "security": bearer,
                "parameters": [id_param],
                "responses": {"200": {"description": "Cancelled", "content": view}, **_problems(401, 403, 404, 409)},
            }
        },
        "/v1/collections/{id}/capture": {
            "post": {
                "summary": "Capture an authorised card charge sent with capture manual",
                "operationId": "captureCollection",
                "security": bearer,
                "description": "202: the capture goes to the acquirer; asking again answers the same. Else 409.",
                "parameters": [id_param],
                "responses": {
                    "202": {"description": "Capture queued", "content": view},
                    **_problems(401, 403, 404, 409),
                },
            }
        },
        "/v1/collections/{id}/refund": {
            "post": {
                "summary": "Refund part or all of a collected card or wallet charge",
                "operationId": "refundCollection",
                "security": bearer,
                "description": (
                    "Never more than the collected amount less earlier refunds (409 naming /amount/value); "
                    "the refund goes to the acquirer with its own id as idempotency key."
                ),
                "parameters": [id_param, key_param],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/CollectionRefundRequest"}}
                    },
                },
                "responses": {
                    "202": _json({"$ref": "#/components/schemas/CollectionRefund"}, "Refund queued"),
                    **_problems(400, 401, 403, 404, 409, 413, 415, 422),
                },
            }
        },
    }


def _intake_paths(bearer: list[dict[str, list[str]]], instruction_headers: dict[str, Any]) -> dict[str, Any]:
    scope = "Scope `instructions`: a business unit's own batches and files only (others are 404)."
    key = {
        "name": "Idempotency-Key",
        "in": "header",
        "required": True,
        "description": "Same key + same body replays the first answer (nothing new is stored); another body is 409.",
        "schema": {"type": "string", "pattern": "^[!-~]{1,255}$"},
    }

    def path_id(prefix: str, what: str) -> dict[str, Any]:
        return {
            "name": "id",
            "in": "path",
            "required": True,
            "schema": {"type": "string", "pattern": f"^{prefix}_[0-9A-Z]{{26}}$"},
            "description": f"a {what} id (`{prefix}_` + 26 characters); anything else is 404",
        }

    xml = {"type": "string", "description": "the pain.001 file as the ERP wrote it"}
    return {
        "/v1/instruction-batches": {
            "post": {
                "summary": "Submit up to 10,000 instructions at once",
                "description": scope
                + " Each instruction is validated on its own by the instruction contract (the version is negotiated "
                "as for POST /v1/instructions) and answered in `items` with its id or its problem (pointers like "
                "`/instructions/3/amount`). All the accepted ones are stored in one transaction before the 202. "
                "With `all_or_nothing` (query or body) one refused item refuses the batch: 422 listing every "
                "item's problems, nothing stored. More than 10,000 items is one 422 at `/instructions`.",
                "operationId": "createInstructionBatch",
                "security": bearer,
                "parameters": [
                    key,
                    {
                        "name": "all_or_nothing",
                        "in": "query",
                        "schema": {"enum": ["true", "false"]},
                        "description": "as the body's `all_or_nothing`; either one asks for it",
                    },
                ],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/InstructionBatch"}}},
                },
                "responses": {
                    "202": {
                        "description": "Stored (the accepted items) and answered item by item",
                        "headers": {
                            **instruction_headers,
                            "Location": {"description": "The batch's URL.", "schema": {"type": "string"}},
                        },
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/BatchAccepted"}}},
                    },
                    **_problems(400, 401, 403, 408, 409, 413, 415, 422, 503),
                },
            }
        },
        "/v1/instruction-batches/{id}": {
            "get": {
                "summary": "A batch: its size and how many of its instructions are in each status",
                "description": scope,
                "operationId": "getInstructionBatch",
                "security": bearer,
                "parameters": [path_id("bat", "batch")],
                "responses": {
                    "200": _json({"$ref": "#/components/schemas/BatchSummary"}, "The batch now"),
                    **_problems(400, 401, 403, 404),
                },
            }
        },
        "/v1/files": {
            "post": {
                "summary": "Submit an ERP payment file (pain.001.001.03 or .09)",
                "description": scope
                + " The file is read safely (no DTD, no entities, size-limited), validated against the XSD of its "
                "version, and its control figures (NbOfTxs, CtrlSum; group header and each PmtInf) are checked. "
                "Each payment becomes an instruction (docs/files.md), all in one transaction. The same file "
                "again is answered as the first time and stores nothing; another file with a message id used "
                "before is 409. A file whose control figures do not add up is refused whole: 422 with the "
                "pointer of the figure, `file_id` and `status_report` (a pain.002 RJCT saying why). The "
                "Idempotency-Key header is optional: a file is idempotent by message id and content.",
                "operationId": "submitFile",
                "security": bearer,
                "parameters": [
                    {**key, "required": False, "description": "optional; files are idempotent by MsgId + content"}
                ],
                "requestBody": {
                    "required": True,
                    "content": {"application/xml": {"schema": xml}, "text/xml": {"schema": xml}},
                },
                "responses": {
                    "202": {
                        "description": "Taken in (the payments refused on intake are RJCT in its pain.002)",
                        "headers": {"Location": {"description": "The file's URL.", "schema": {"type": "string"}}},
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/FileAccepted"}}},
                    },
                    **_problems(400, 401, 403, 408, 409, 413, 415, 422, 503),
                },
            }
        },
        "/v1/files/{id}": {
            "get": {
                "summary": "A file: its header, payments taken in or refused, and their statuses now",
                "description": scope,
                "operationId": "getFile",
                "security": bearer,
                "parameters": [path_id("fil", "file")],
                "responses": {
                    "200": _json({"$ref": "#/components/schemas/FileView"}, "The file now"),
                    **_problems(400, 401, 403, 404),
                },
            }
        },
        "/v1/files/{id}/status-report": {
            "get": {
                "summary": "The file's pain.002.001.03 status report as of now",
                "description": scope
                + " TxSts per payment: ACCP (taken in), ACSP (with the bank), ACSC (settled), RJCT (refused, "
                "rejected, failed, returned or cancelled, with the reason). A copy is kept in the outbox folder "
                "(files.outbox_dir), rewritten as the payments progress.",
                "operationId": "getFileStatusReport",
                "security": bearer,
                "parameters": [path_id("fil", "file")],
                "responses": {
                    "200": {
                        "description": "The report",
                        "content": {"application/xml": {"schema": {"type": "string"}}},
                    },
                    **_problems(400, 401, 403, 404),
                },
            }
        },
    }


def _report_schemas() -> dict[str, Any]:
    return {
        "ReportSummary": {
            "type": "object",
            "description": "A report written to the reports folder (docs/reports.md).",
            "required": ["id", "name", "title", "period", "generated_at", "formats"],
            "properties": {
                "id": {"type": "string", "pattern": REPORT_ID_RE.pattern, "examples": ["settlement.2026-12"]},
                "name": {"type": "string", "description": "the report (settlement, risk, reconciliation, partners)"},
                "title": {"type": "string"},
                "period": {"type": "string", "description": "a day (2026-12-05), a month (2026-12) or a quarter"},
                "generated_at": {"type": "string", "format": "date-time"},
                "formats": {"type": "array", "items": {"enum": list(FORMATS)}},
            },
        },
        "Report": {
            "type": "object",
            "description": "A report's content: tables (amounts are decimal strings) and the charts' data.",
            "required": ["id", "name", "title", "period", "from", "to", "generated_at", "sections", "charts"],
            "properties": {
                "id": {"type": "string"},
                "name": {"type": "string"},
                "title": {"type": "string"},
                "period": {"type": "string"},
                "from": {"type": "string", "format": "date-time"},
                "to": {"type": "string", "format": "date-time", "description": "exclusive"},
                "generated_at": {"type": "string", "format": "date-time"},
                "notes": {"type": "array", "items": {"type": "string"}},
                "sections": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "name": {"type": "string"},
                            "title": {"type": "string"},
                            "columns": {"type": "array", "items": {"type": "string"}},
                            "rows": {
                                "type": "array",
                                "items": {
                                    "type": "object",
                                    "additionalProperties": {"type": ["string", "integer", "null"]},
                                },
                            },
                        },
                    },
                },
                "charts": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "title": {"type": "string"},
                            "unit": {"type": "string"},
                            "bars": {
                                "type": "array",
                                "items": {
                                    "type": "object",
                                    "properties": {"label": {"type": "string"}, "value": {"type": "string"}},
                                },
                            },
                        },
                    },
                },
            },
        },
    }


def _report_paths(bearer: list[dict[str, list[str]]]) -> dict[str, Any]:
    report_id = {
        "name": "id",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "pattern": REPORT_ID_RE.pattern},
        "description": "`NAME.PERIOD`, e.g. `settlement.2026-12`; anything else is 404",
    }
    contents = {
        "description": "The report",
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/Report"}},
            "text/html": {"schema": {"type": "string"}},
            "text/csv": {"schema": {"type": "string"}},
        },
    }
    return {
        "/v1/reports": {
            "get": {
                "summary": "Reports written (scheduled or by `gateway reports run`), by id (scope finance)",
                "operationId": "listReports",
                "security": bearer,
                "parameters": [
                    {
                        "name": "name",
                        "in": "query",
                        "schema": {"type": "string", "pattern": NAME_RE.pattern},
                        "description": "only this report's periods",
                    },
                    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 200}},
                    {
                        "name": "cursor",
                        "in": "query",
                        "schema": {"type": "string", "pattern": REPORT_ID_RE.pattern},
                        "description": "next_cursor of the last page",
                    },
                ],
                "responses": {"200": _json(_page("ReportSummary"), "A page of reports"), **_problems(400, 401, 403)},
            }
        },
        "/v1/reports/{id}": {
            "get": {
                "summary": "One report: JSON (default), HTML with its charts, or CSV (scope finance)",
                "operationId": "getReport",
                "security": bearer,
                "parameters": [
                    report_id,
                    {"name": "format", "in": "query", "schema": {"enum": list(FORMATS)}, "description": "json default"},
                ],
                "responses": {"200": contents, **_problems(400, 401, 403, 404)},
            }
        },
        "/v1/reports/{id}/{format}": {
            "get": {
                "summary": "One report in one format, a path a browser can open (scope finance)",
                "operationId": "getReportFormat",
                "security": bearer,
                "parameters": [
                    report_id,
                    {"name": "format", "in": "path", "required": True, "schema": {"enum": list(FORMATS)}},
                ],
                "responses": {"200": contents, **_problems(400, 401, 403, 404)},
            }
        },
    }
