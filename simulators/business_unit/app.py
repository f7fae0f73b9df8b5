"""The business-unit simulator's aiohttp app: ``POST /webhooks`` (any path below it too) and the admin API.

Admin (for QA and tests, unsigned):

- ``GET /_sim/journal`` — every webhook request: event id, delivery id, instruction id, sequence,
  status, verified, taken, duplicate, outcome, faults; filters ``event_id``, ``delivery_id``,
  ``instruction_id``, ``status``, ``outcome``, ``fault``, ``since``
- ``GET /_sim/events`` — the events taken, once each, by instruction, ordered by sequence
- ``POST /_sim/reset`` — forget the journal and the events (secrets and scenario stay)
- ``GET /_sim/scenario``, ``PUT /_sim/scenario`` — read or swap the scenario (YAML or JSON body)
- ``PUT /_sim/secrets`` — ``{"secrets": ["whsec_…", …]}``: the secrets signatures are checked with
- ``GET /_sim/status`` — counts
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiohttp import web

from gateway_simulators.business_unit.receiver import (
    DELIVERY_ID_HEADER,
    EVENT_ID_HEADER,
    BusinessUnit,
    Receipt,
    ReceiverSettings,
    parse_receiver_scenario,
)
from gateway_simulators.core.scenario import Fault, ScenarioError

__all__ = ["BUSINESS_UNIT", "create_app"]

#: the receiver's state in its app
BUSINESS_UNIT = web.AppKey("business_unit", BusinessUnit)
#: the longest webhook body read (the gateway's events are a few hundred bytes)
_MAX_BODY = 256 * 1024


class _Dropped(Exception):
    """The connection was closed without an answer."""


class _ErrorStatus(Exception):
    """A fault answers with an error status."""

    def __init__(self, fault: Fault) -> None:
        super().__init__(fault.status)
        self.status = fault.status
        self.retry_after = fault.retry_after if fault.retry_after is not None else 1


async def _transport(
    request: web.Request, unit: BusinessUnit, receipt: Receipt, subject: str, faults: tuple[tuple[int, Fault], ...]
) -> None:
    """Play the faults in the order the scenario lists them; an error status or a dropped connection ends it."""
    for index, fault in faults:
        unit.played(subject, index)
        receipt.faults.append(fault.kind)
        if fault.kind in ("latency", "hang"):
            await unit.pause(fault, subject)
        if fault.kind in ("hang", "reset"):
            if request.transport is not None:
                request.transport.abort()
            raise _Dropped
        if fault.kind == "http_error":
            raise _ErrorStatus(fault)


async def receive(request: web.Request) -> web.StreamResponse:
    """Take one webhook: faults before, the signature, the event (journalled once per event id), faults after."""
    unit = request.app[BUSINESS_UNIT]
    receipt = unit.record(request.path_qs)
    receipt.event_id = request.headers.get(EVENT_ID_HEADER)
    receipt.delivery_id = request.headers.get(DELIVERY_ID_HEADER)
    subject = receipt.event_id or f"request-{receipt.seq}"
    try:
        try:
            body = await request.read()  # whole, up to client_max_size
        except web.HTTPRequestEntityTooLarge:
            return _answer(receipt, 413, "bad_request", f"the body is larger than {_MAX_BODY} bytes")
        await _transport(request, unit, receipt, subject, unit.strike(subject, after=False))
        reason = unit.verify(request.headers, body)
        if reason is not None:
            return _answer(receipt, 401, "refused", reason)
        receipt.verified = True
        reason = unit.take(receipt, body)
        if reason is not None:
            return _answer(receipt, 400, "bad_request", reason)
        await _transport(request, unit, receipt, subject, unit.strike(subject, after=True))
    except _Dropped:
        receipt.outcome = "dropped"
        return web.Response(status=204)  # the transport is gone: nothing is sent
    except _ErrorStatus as exc:
        headers = {"Retry-After": str(exc.retry_after)} if exc.status in (429, 503) else {}
        return _answer(receipt, exc.status, "failed", f"simulated HTTP {exc.status}", headers)
    return _answer(receipt, 200, "duplicate" if receipt.duplicate else "accepted", None)


def _answer(
    receipt: Receipt, status: int, outcome: str, detail: str | None, headers: Mapping[str, str] | None = None
) -> web.Response:
    receipt.http_status, receipt.outcome, receipt.detail = status, outcome, detail
    return web.json_response({"outcome": outcome, "detail": detail}, status=status, headers=headers)


async def get_journal(request: web.Request) -> web.Response:
    try:
        found = request.app[BUSINESS_UNIT].select(request.query)
    except (KeyError, ValueError) as exc:
        return web.json_response({"error": {"code": "BAD_FILTER", "message": f"unknown filter {exc}"}}, status=400)
    return web.json_response({"entries": [r.as_dict() for r in found]})


async def get_events(request: web.Request) -> web.Response:
    unit = request.app[BUSINESS_UNIT]
    return web.json_response({"instructions": unit.by_instruction(), "late_events": unit.late_events()})


async def reset(request: web.Request) -> web.Response:
    request.app[BUSINESS_UNIT].reset()
    return web.json_response({"reset": True})


async def get_scenario(request: web.Request) -> web.Response:
    unit = request.app[BUSINESS_UNIT]
    scenario = unit.scenario
    return web.json_response(
        {
            "name": scenario.name if scenario else None,
            "source": scenario.source if scenario else None,
            "seed": unit.seed,
            "document": dict(scenario.document) if scenario else None,
        }
    )


async def put_scenario(request: web.Request) -> web.Response:
    """Swap the scenario; a bad one is a 400 naming the line and the field, and changes nothing."""
    unit = request.app[BUSINESS_UNIT]
    try:
        scenario = parse_receiver_scenario(await request.text(), source="PUT /_sim/scenario")
    except ScenarioError as exc:
        error = {
            "code": "INVALID_SCENARIO",
            "message": exc.message,
            "line": exc.line,
            "pointer": exc.pointer,
            "errors": [{"pointer": e.pointer, "message": e.message} for e in exc.errors],
        }
        return web.json_response({"error": error}, status=400)
    unit.use_scenario(scenario)
    return web.json_response({"name": scenario.name, "seed": unit.seed})


async def put_secrets(request: web.Request) -> web.Response:
    """Replace the secrets signatures are checked with (the answer says how many, never which)."""
    try:
        body: Any = await request.json()
    except ValueError:
        body = None
    secrets = body.get("secrets") if isinstance(body, dict) else None
    if not isinstance(secrets, list) or not secrets or not all(isinstance(s, str) and s for s in secrets):
        message = 'expected {"secrets": ["whsec_…", …]} with at least one secret'
        return web.json_response({"error": {"code": "BAD_REQUEST", "message": message}}, status=400)
    request.app[BUSINESS_UNIT].secrets = tuple(s.encode() for s in secrets)
    return web.json_response({"secrets": len(secrets)})


async def status(request: web.Request) -> web.Response:
    unit = request.app[BUSINESS_UNIT]
    return web.json_response(
        {
            "simulator": "business_unit",
            "scenario": unit.scenario.name if unit.scenario else None,
            "seed": unit.seed,
            "secrets": len(unit.secrets),
            "requests": len(unit.journal),
            "events": len(unit.events),
            "late_events": unit.late_events(),
        }
    )


def create_app(settings: Mapping[str, Any]) -> web.Application:
    """The business-unit simulator. Settings (``ConfigError`` on bad ones): ``secrets`` (a list of the
    endpoint's ``whsec_…`` secrets), ``signature_tolerance_seconds`` (300), ``scenario`` (a shipped
    receiver scenario's name, a YAML file, or a mapping) and ``seed``."""
    app = web.Application(client_max_size=_MAX_BODY)
    app[BUSINESS_UNIT] = BusinessUnit(ReceiverSettings.from_mapping(settings))
    app.router.add_post("/webhooks", receive)
    app.router.add_post("/webhooks/{tail:.*}", receive)
    app.router.add_get("/_sim/journal", get_journal)
    app.router.add_get("/_sim/events", get_events)
    app.router.add_post("/_sim/reset", reset)
    app.router.add_get("/_sim/scenario", get_scenario)
    app.router.add_put("/_sim/scenario", put_scenario)
    app.router.add_put("/_sim/secrets", put_secrets)
    app.router.add_get("/_sim/status", status)
    return app
