"""The OpenAPI 3.1 document, built from the live contracts (never hand-copied schemas).

A test checks that every route the app serves is described here.
"""

from __future__ import annotations

from typing import Any

from gateway import __version__
from gateway.contracts import ContractRegistry
from gateway.ledger import api as ledger_api
from gateway.versioning import VERSION_HEADER, VersionInfo, compatibility_lines

__all__ = ["build_openapi"]

_PROBLEM = {"$ref": "#/components/responses/Problem"}


def _problems(*codes: int) -> dict[str, Any]:
    return {str(c): _PROBLEM for c in codes}


def _instruction_versions(contracts: ContractRegistry) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Schema components, the request body, and the Contract-Version parameter for every instruction version."""
    versions = contracts.versions("instruction")
    latest = versions[-1]
    default = compatibility_lines(contracts, "instruction")[0][-1]

    def component(version: str) -> str:
        return "Instruction" if version == latest else f"Instruction-{version}"

    schemas = {component(v): contracts.schema("instruction", v) for v in reversed(versions)}
    media: dict[str, Any] = {"application/json": {"schema": {"$ref": f"#/components/schemas/{component(default)}"}}}
    notes = []
    for version in reversed(versions):
        info = VersionInfo.of(contracts, "instruction", version)
        ref = f"#/components/schemas/{component(version)}"
        media[f"application/json; version={version}"] = {"schema": {"$ref": ref}}
        if info.deprecated:
            notes.append(f"{version} is deprecated since {info.deprecated}, retired on {info.sunset or 'a later date'}")
    parameter = {
        "name": VERSION_HEADER,
        "in": "header",
        "required": False,
        "description": (
            f"Instruction contract version: {', '.join(versions)}. Same as the media-type parameter "
            "`Content-Type: application/json; version=X`; if both are sent they must agree (else 400). "
            f"Unknown or retired versions are 400. {'; '.join(notes)}."
        ),
        "schema": {"type": "string", "enum": versions},
    }
    body = {
        "required": True,
        "description": (
            "A payment instruction in the version named by `Contract-Version` or `version=`; with neither, the "
            f"business unit's pinned version, else {default} (the newest version of the oldest compatibility line "
            "still served, so a new breaking version never changes what an unversioned request means)."
        ),
        "content": media,
    }
    return schemas, body, parameter


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
    from gateway.api.risk import DECISION_SCHEMA, LIMIT_SCHEMA

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
        "HoldDecision": DECISION_SCHEMA,
        "Alert": {
            "type": "object",
            "properties": {
                "id": {"type": "string"},
                "instruction_id": {"type": "string"},
                "reference": {"type": "string"},
                "business_unit": {"type": "string"},
                "amount": {"type": "string"},
                "currency": {"type": "string"},
                "outcome": {"enum": ["flag", "hold", "reject"]},
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
        "CreditLimitChange": LIMIT_SCHEMA,
    }


def _risk_paths(bearer: list[dict[str, list[str]]], id_param: dict[str, Any]) -> dict[str, Any]:
    page_params = [
        {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 200}},
        {"name": "cursor", "in": "query", "schema": {"type": "string"}, "description": "next_cursor of the last page"},
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
                "description": "Scope `finance`. Four eyes: the key that submitted the payment gets 403.",
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
                    *page_params,
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
                "summary": "Screening alerts (flagged, held, rejected payments), newest first (scope finance)",
                "operationId": "listAlerts",
                "security": bearer,
                "parameters": [
                    {"name": "outcome", "in": "query", "schema": {"type": "string"}, "description": "flag,hold,reject"},
                    {"name": "rule", "in": "query", "schema": {"type": "string"}, "description": "a rule's name"},
                    *page_params,
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
                    {"name": "counterparty", "in": "path", "required": True, "schema": {"type": "string"}},
                    {"name": "currency", "in": "path", "required": True, "schema": {"type": "string"}},
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


def build_openapi(contracts: ContractRegistry, adapters: list[str]) -> dict[str, Any]:
    instruction_schemas, instruction_body, version_parameter = _instruction_versions(contracts)
    event = contracts.schema("status-event")
    bearer = [{"apiKey": []}]
    id_param = {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}
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
                **ledger_api.openapi_schemas(),
                "StatusEvent": event,
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
                        "events": {"type": "array", "items": {"$ref": "#/components/schemas/StatusEvent"}},
                        "ledger_entries": {
                            "type": "string",
                            "description": "link to its journal entries (GET /v1/ledger/entries?instruction_id=…)",
                        },
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
            **ledger_api.openapi_paths(bearer, _problems, _json, _page),
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
                            "schema": {"type": "string", "maxLength": 255},
                        },
                        version_parameter,
                    ],
                    "requestBody": instruction_body,
                    "responses": {
                        "202": {
                            "description": "Accepted and durable",
                            "headers": _RESPONSE_HEADERS,
                            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Accepted"}}},
                        },
                        **_problems(400, 401, 403, 409, 413, 415, 422, 503),
                    },
                },
                "get": {
                    "summary": "List this business unit's instructions (newest first)",
                    "operationId": "listInstructions",
                    "security": bearer,
                    "parameters": [
                        {
                            "name": "status",
                            "in": "query",
                            "schema": {"type": "string"},
                            "description": "comma-separated statuses",
                        },
                        {
                            "name": "created_from",
                            "in": "query",
                            "schema": {"type": "string"},
                            "description": "ISO date or date-time",
                        },
                        {"name": "created_to", "in": "query", "schema": {"type": "string"}},
                        {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 200}},
                        {
                            "name": "cursor",
                            "in": "query",
                            "schema": {"type": "string"},
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
                        **_problems(401, 404, 422),
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
        "",
    ]
    return "\n".join(lines)
