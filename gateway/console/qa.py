"""QA (development only, admin): the partner simulators this process started, driven through their ``/_sim`` API.

The gateway is in development when it started partner simulators itself (``gateway serve
--with-simulators``, ``make run``, ``gateway demo``, the in-process harness): ``create_app``
then knows their addresses (``SIMULATORS``). Otherwise every ``/console/qa`` URL is 404, the
same answer as a page that does not exist, whoever asks.

The console calls the simulators' control endpoints server-side, at the loopback addresses it
was given only (a simulator on any other address is listed, never called); the browser never
talks to a simulator. Switching a scenario fetches the shipped one (``GET /_sim/scenarios/{name}``)
and ``PUT``s it as the scenario; injecting a fault adds it to the current scenario's faults (the
simulator checks it against the scenario schema: a bad one is refused and nothing changes).
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import json
import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web

from gateway.api.appkeys import SIMULATORS
from gateway.console.web import PREFIX, Page, page, redirect
from gateway.errors import BadRequestError, NotFoundError, ServiceUnavailableError

__all__ = ["development", "loopback_simulators", "routes"]

log = logging.getLogger(__name__)
routes = web.RouteTableDef()

#: rows of a simulator's journal on its page (the newest)
JOURNAL_ROWS = 100
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_SCENARIO = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")
_TIMEOUT = aiohttp.ClientTimeout(total=5)
_EXCHANGES = ("submit", "status", "any")
_HTTP_ERRORS = ("429", "500", "502", "503", "504")
_JOURNAL_FILTERS = ("instruction_id", "kind", "direction")


def _is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def loopback_simulators(app: web.Application) -> dict[str, str]:
    """The simulators this process started that the console may call: name → base URL, loopback only."""
    return {name: url for name, url in app[SIMULATORS].items() if _is_loopback(url)}


RequestHandler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def development(handler: RequestHandler) -> RequestHandler:
    """404 unless this process started simulators (development), before the session is even looked at."""

    @functools.wraps(handler)
    async def run(request: web.Request) -> web.StreamResponse:
        if not request.app[SIMULATORS]:
            raise web.HTTPNotFound()
        return await handler(request)

    return run


def _base(p: Page) -> tuple[str, str]:
    name = p.request.match_info["name"]
    url = loopback_simulators(p.request.app).get(name) if _NAME.fullmatch(name) else None
    if url is None:
        raise NotFoundError(f"no simulator {name[:64]!r} on loopback")
    return name, url


async def _call(url: str, method: str, path: str, body: Any = None, **params: str) -> tuple[int, Any]:
    """One control call to a simulator: (status, JSON answer); an unreachable simulator is a 503."""
    try:
        async with (
            aiohttp.ClientSession(timeout=_TIMEOUT) as http,
            http.request(method, url + path, params=params or None, json=body) as resp,
        ):
            text = await resp.text()
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise ServiceUnavailableError(f"the simulator at {url} does not answer ({type(exc).__name__})") from None
    try:
        return resp.status, json.loads(text) if text else None
    except ValueError:
        return resp.status, None


def _refusal(answer: Any, fallback: str) -> str:
    error = answer.get("error") if isinstance(answer, Mapping) else None
    if isinstance(error, Mapping):
        return str(error.get("message") or fallback)[:500]
    return fallback


async def _overview(name: str, url: str) -> dict[str, Any]:
    """What the page shows of one simulator; an unreachable one says so instead of failing the page."""
    view: dict[str, Any] = {"name": name, "url": url, "reachable": True, "scenarios": [], "fault_kinds": []}
    try:
        _, view["status"] = await _call(url, "GET", "/_sim/status")
        _, scenario = await _call(url, "GET", "/_sim/scenario")
        found, catalogue = await _call(url, "GET", "/_sim/scenarios")
    except ServiceUnavailableError as exc:
        return {**view, "reachable": False, "problem": exc.message}
    document = (scenario or {}).get("document") or {}
    view["scenario"] = (scenario or {}).get("name")
    view["seed"] = (scenario or {}).get("seed")
    view["faults"] = [json.dumps(f, sort_keys=True) for f in document.get("faults") or []]
    if found == 200 and isinstance(catalogue, Mapping):
        view["scenarios"] = list(catalogue.get("scenarios") or [])
        view["fault_kinds"] = list(catalogue.get("fault_kinds") or [])
    return view


@routes.get(PREFIX + "/qa")
@development
@page("admin")
async def qa(p: Page) -> web.StreamResponse:
    """Every simulator this process started: its scenario, faults, and the forms to change them."""
    started = p.request.app[SIMULATORS]
    callable_ = loopback_simulators(p.request.app)
    sims = await asyncio.gather(*(_overview(name, url) for name, url in sorted(callable_.items())))
    elsewhere = sorted(set(started) - set(callable_))
    return p.render(
        "qa.html",
        sims=sims,
        elsewhere=elsewhere,
        exchanges=_EXCHANGES,
        http_errors=_HTTP_ERRORS,
        notice=p.request.query.get("n", "")[:200],
    )


async def _put_scenario(url: str, document: Mapping[str, Any]) -> str:
    status, answer = await _call(url, "PUT", "/_sim/scenario", dict(document))
    if status != 200:
        raise BadRequestError(_refusal(answer, f"the simulator refused the scenario ({status})"))
    return str(answer.get("name") if isinstance(answer, Mapping) else "")


def _audit(p: Page, name: str, what: str) -> None:
    actor = p.session.principal.key_id
    log.info("simulator %s: %s in the console by key %s", name, what, actor, extra={"simulator": name, "actor": actor})


@routes.post(PREFIX + "/qa/{name}/scenario")
@development
@page("admin")
async def switch_scenario(p: Page) -> web.StreamResponse:
    """Play a shipped scenario from now on (payments in flight keep the timeline they were given)."""
    form = await p.form()
    name, url = _base(p)
    wanted = form.get("scenario", "").strip()
    if not _SCENARIO.fullmatch(wanted):
        raise BadRequestError("scenario: choose one from the list")
    status, shipped = await _call(url, "GET", f"/_sim/scenarios/{wanted}")
    if status != 200 or not isinstance(shipped, Mapping):
        raise BadRequestError(_refusal(shipped, f"no shipped scenario {wanted!r} for {name}"))
    playing = await _put_scenario(url, shipped["document"])
    _audit(p, name, f"scenario switched to {playing}")
    return redirect(f"{PREFIX}/qa?n={name}+plays+{playing}#sim-{name}")


def _fault(form: Mapping[str, str], kinds: list[str]) -> dict[str, Any]:
    """The fault the form describes (the simulator checks the rest against its schema)."""
    kind = form.get("kind", "")
    if kind not in kinds:
        raise BadRequestError("fault: choose a kind from the list")
    fault: dict[str, Any] = {"kind": kind}
    exchange = form.get("exchange", "submit")
    if exchange not in _EXCHANGES:
        raise BadRequestError("exchange: submit, status or any")
    if not kind.startswith("callback_"):
        fault["exchange"] = exchange
    try:
        probability = Decimal(form.get("probability", "").strip() or "1")
        times = int(form.get("times", "").strip() or "1")
        seconds = Decimal(form.get("seconds", "").strip() or "1")
    except (InvalidOperation, ValueError):
        raise BadRequestError("probability, times and seconds: numbers (0.5, 2, 1.5)") from None
    if not (0 <= probability <= 1 and 1 <= times <= 1000 and 0 <= seconds <= 30):
        raise BadRequestError("probability from 0 to 1, times from 1 to 1000, seconds from 0 to 30")
    fault["probability"] = float(probability)  # a chance, not money: JSON numbers are what the schema takes
    fault["times"] = times
    if kind in ("latency", "callback_late"):
        fault["delay"] = float(seconds)
    if kind == "hang":
        fault["seconds"] = float(seconds)
    if kind == "http_error":
        status = form.get("http_status", "503")
        if status not in _HTTP_ERRORS:
            raise BadRequestError(f"HTTP status: one of {', '.join(_HTTP_ERRORS)}")
        fault["status"] = int(status)
    return fault


async def _current(url: str) -> dict[str, Any]:
    _, scenario = await _call(url, "GET", "/_sim/scenario")
    document = (scenario or {}).get("document") if isinstance(scenario, Mapping) else None
    return dict(document or {"name": "console", "description": "faults injected in the console"})


@routes.post(PREFIX + "/qa/{name}/faults")
@development
@page("admin")
async def inject_fault(p: Page) -> web.StreamResponse:
    """Add a fault to the scenario the simulator plays (for every payment from now on)."""
    form = await p.form()
    name, url = _base(p)
    _, catalogue = await _call(url, "GET", "/_sim/scenarios")
    kinds = list(catalogue.get("fault_kinds") or []) if isinstance(catalogue, Mapping) else []
    fault = _fault(form, kinds)
    document = await _current(url)
    document["faults"] = [*(document.get("faults") or []), fault]
    await _put_scenario(url, document)
    _audit(p, name, f"fault {json.dumps(fault, sort_keys=True)} injected")
    return redirect(f"{PREFIX}/qa?n={name}+injects+{fault['kind']}#sim-{name}")


@routes.post(PREFIX + "/qa/{name}/faults/clear")
@development
@page("admin")
async def clear_faults(p: Page) -> web.StreamResponse:
    """Take every scenario-wide fault away (the rules' own faults stay: they are the scenario)."""
    await p.form()
    name, url = _base(p)
    document = await _current(url)
    document["faults"] = []
    await _put_scenario(url, document)
    _audit(p, name, "scenario-wide faults cleared")
    return redirect(f"{PREFIX}/qa?n={name}+faults+cleared#sim-{name}")


@routes.post(PREFIX + "/qa/{name}/reset")
@development
@page("admin")
async def reset(p: Page) -> web.StreamResponse:
    """Forget the simulator's payments, journal and fault counters (``POST /_sim/reset``)."""
    await p.form()
    name, url = _base(p)
    status, answer = await _call(url, "POST", "/_sim/reset")
    if status != 200:
        raise BadRequestError(_refusal(answer, f"the simulator refused the reset ({status})"))
    _audit(p, name, "reset")
    return redirect(f"{PREFIX}/qa?n={name}+reset#sim-{name}")


@routes.get(PREFIX + "/qa/{name}/journal")
@development
@page("admin")
async def journal(p: Page) -> web.StreamResponse:
    """The newest entries of a simulator's journal (bodies as the simulator keeps them: IBANs masked), filtered."""
    name, url = _base(p)
    f = {k: p.request.query.get(k, "").strip()[:64] for k in _JOURNAL_FILTERS}
    if f["kind"] and f["kind"] not in ("submit", "status", "callback", "statement", "file"):
        raise BadRequestError("kind: submit, status, callback, statement or file")
    if f["direction"] and f["direction"] not in ("in", "out"):
        raise BadRequestError("direction: in or out")
    status, answer = await _call(url, "GET", "/_sim/journal", **{k: v for k, v in f.items() if v})
    if status != 200 or not isinstance(answer, Mapping):
        raise BadRequestError(_refusal(answer, f"the simulator refused the journal query ({status})"))
    entries = list(answer.get("entries") or [])
    return p.render(
        "qa_journal.html",
        name=name,
        f=f,
        total=len(entries),
        entries=list(reversed(entries[-JOURNAL_ROWS:])),
    )
