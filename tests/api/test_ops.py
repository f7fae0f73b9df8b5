"""Health, metrics, and an OpenAPI document that covers every route."""

from __future__ import annotations

from aiohttp import web
from jsonschema import Draft202012Validator

from gateway.api.openapi import build_openapi
from gateway.config import load_settings
from gateway.contracts.registry import contracts
from gateway.runtime import create_app
from tests.support import LiveGateway, example_instruction


def _served_routes(app: web.Application) -> set[tuple[str, str]]:
    out = set()
    for route in app.router.routes():
        if route.method in ("HEAD", "OPTIONS"):
            continue
        resource = route.resource
        assert resource is not None
        if resource.canonical == "/console" or resource.canonical.startswith("/console/"):
            continue  # the operations console's HTML pages are not the API (docs/console.md)
        out.add((resource.canonical, route.method.lower()))
    return out


def test_openapi_document_describes_every_route() -> None:
    app = create_app(load_settings(env={}))
    doc = build_openapi(contracts(), ["iso20022_bank"])
    documented = {(path, method) for path, ops in doc["paths"].items() for method in ops}
    assert _served_routes(app) == documented
    assert doc["openapi"].startswith("3.1")
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            assert op.get("summary") and op.get("operationId"), (path, method)


def test_openapi_embeds_the_live_instruction_contract() -> None:
    doc = build_openapi(contracts(), [])
    contract = contracts().schema("instruction")
    schema = doc["components"]["schemas"]["Instruction"]
    assert set(schema["properties"]) == set(contract["properties"])
    assert schema["required"] == contract["required"]
    assert "$id" not in schema and "$defs" not in schema  # bundled: resolvable inside the OpenAPI document
    # every version's schema resolves with nothing but the document, and its contract's examples fit it
    latest = contracts().latest("instruction")
    for version in contracts().versions("instruction"):
        name = "Instruction" if version == latest else f"Instruction-{version}"
        bundled = {"$ref": f"#/components/schemas/{name}", "components": doc["components"]}
        Draft202012Validator.check_schema(bundled)
        validator = Draft202012Validator(bundled, format_checker=Draft202012Validator.FORMAT_CHECKER)
        examples = contracts().schema("instruction", version).get("examples", [])
        assert examples
        for example in examples:
            assert not list(validator.iter_errors(example)), (version, example)


async def test_openapi_healthz_and_metrics_are_served(intake_gateway: LiveGateway) -> None:
    async with intake_gateway.session.get(f"{intake_gateway.url}/openapi.json") as resp:
        assert resp.status == 200
        assert "/v1/instructions" in (await resp.json())["paths"]
    async with intake_gateway.session.get(f"{intake_gateway.url}/healthz") as resp:
        assert resp.status == 200
        assert (await resp.json())["checks"]["database"] == "ok"
    assert (await intake_gateway.post_instruction(example_instruction())).status == 202
    async with intake_gateway.session.get(f"{intake_gateway.url}/metrics") as resp:
        text = await resp.text()
    assert resp.status == 200
    assert 'gateway_intake_total{outcome="created"} 1.0' in text
    assert "gateway_outbox_depth 1.0" in text
    assert 'route="/v1/instructions"' in text


def test_api_reference_in_docs_is_generated_from_the_openapi_document() -> None:
    from gateway.api.openapi import render_markdown
    from gateway.plugins.manager import Plugins
    from tests.support import REPO

    expected = render_markdown(build_openapi(contracts(), sorted(Plugins().adapter_classes())))
    current = (REPO / "docs" / "api.md").read_text()
    assert current == expected, "docs/api.md is stale: run `gateway docs api`"
