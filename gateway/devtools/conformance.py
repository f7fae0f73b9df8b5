"""The conformance kit: a standard suite every adapter must pass against its simulator.

As a pytest plugin::

    pytest -p gateway.devtools.conformance --adapter my_bank [--adapter other_bank]

adds one test per (adapter, check). From an adapter package's own tests::

    from gateway.devtools.conformance import CHECKS, run_check

    @pytest.mark.parametrize("check", sorted(CHECKS))
    async def test_conformance(check: str) -> None:
        await run_check("my_bank", check)

The adapter says how to drive it with ``Adapter.conformance_profile()`` (a
``gateway.adapter.ConformanceProfile``). Each check raises ``AssertionError``
with what is wrong, skips (``pytest.skip``) only with a stated reason, and
otherwise returns notes (a weaker-but-allowed behaviour, e.g. a plain
``TransientPartnerError`` where ``OutcomeUnknownError`` is preferred).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import aiohttp
import jsonschema
import pytest
import xmlschema
from aiohttp import web
from aiohttp.test_utils import TestServer

from gateway.domain.money import Money
from gateway.domain.status import Status
from gateway.errors import (
    OutcomeUnknownError,
    PartnerUnreachableError,
    PermanentPartnerError,
    SignatureError,
    TransientPartnerError,
)
from gateway.partners.adapter import (
    Adapter,
    AdapterContext,
    ConformanceProfile,
    PaymentOrder,
    StatusUpdate,
    SubmitResult,
)
from gateway.partners.signing import sign_payload
from gateway.plugins.manager import Plugins

__all__ = [
    "CHECKS",
    "ConformanceRig",
    "conformance_rig",
    "open_rig",
    "pytest_addoption",
    "pytest_collection_modifyitems",
    "run_check",
]

#: how long a check waits for the partner to reach a final status
FINAL_STATUS_WAIT = 5.0
#: the request timeout the kit sets when it points an adapter at a partner that never answers
HANG_TIMEOUT = 0.3
_FINAL = frozenset({Status.SETTLED, Status.REJECTED, Status.FAILED, Status.RETURNED, Status.CANCELLED})
_OTHER_CURRENCIES = ("EUR", "USD", "GBP", "CHF", "SEK", "NOK")
_CALLBACK_URL = "http://127.0.0.1:9/conformance-callbacks"  # nothing listens: the kit polls


Notes = list[str]


@dataclass
class ConformanceRig:
    """One adapter class, its profile and its simulator on loopback; adapters made here are closed on exit."""

    name: str
    adapter_cls: type[Adapter]
    profile: ConformanceProfile
    simulator: web.Application
    base_url: str
    workdir: Path
    _adapters: list[Adapter] = field(default_factory=list)
    _servers: list[TestServer] = field(default_factory=list)

    async def adapter(self, base_url: str | None = None, **overrides: Any) -> Adapter:
        """A started adapter pointed at the simulator (or ``base_url``), settings ``overrides`` applied."""
        scratch = Path(tempfile.mkdtemp(prefix="adapter-", dir=self.workdir))
        settings = {**self.profile.adapter_settings(base_url or self.base_url, scratch), **overrides}
        adapter = self.adapter_cls.from_settings(settings, AdapterContext(callback_url=_CALLBACK_URL))
        self._adapters.append(adapter)
        await adapter.start()
        return adapter

    def order(self, *, creditor_name: str = "Conformance Ltd") -> PaymentOrder:
        """A fresh sample order (new instruction id)."""
        return self.profile.sample_order(f"ins_conf_{uuid.uuid4().hex[:16]}", creditor_name)

    async def deliver(self, adapter: Adapter) -> None:
        if self.profile.deliver is not None:
            await self.profile.deliver(adapter)

    def payments_at_partner(self, order: PaymentOrder) -> int | None:
        """How many payments the simulator booked for ``order``, or ``None`` if the kit cannot tell."""
        if self.profile.payments_at_partner is not None:
            return self.profile.payments_at_partner(self.simulator, order)
        # the simulator core keeps its engine under an AppKey; found by shape, so the core imports no simulator
        for key in self.simulator:
            journal = getattr(self.simulator[key], "journal", None)
            if callable(getattr(journal, "select", None)):
                filters = {"kind": "submit", "instruction_id": order.id, "outcome": "created"}
                return len(journal.select(filters))
        return None

    async def serve(self, app: web.Application) -> str:
        """Serve another app on loopback for the rest of the rig's life; its base URL."""
        server = TestServer(app)
        await server.start_server()
        self._servers.append(server)
        return str(server.make_url("")).rstrip("/")

    async def final_status(
        self, adapter: Adapter, order: PaymentOrder, first: SubmitResult, *, expect: Status
    ) -> tuple[Status | None, str | None]:
        """Poll until the payment reaches a final status (``settled`` does not end a wait for ``returned``)."""
        final = _FINAL - {Status.SETTLED} if expect is Status.RETURNED else _FINAL
        status, reason = first.status, first.reason_code
        if status in final:
            return status, reason
        known = replace(order, partner_reference=first.partner_reference)
        deadline = time.monotonic() + FINAL_STATUS_WAIT
        while time.monotonic() < deadline:
            update = await adapter.poll(known)
            if update is not None and update.status is not None:
                status, reason = update.status, update.reason_code
                if status in final:
                    return status, reason
            await asyncio.sleep(0.05)
        return status, reason


@contextlib.asynccontextmanager
async def open_rig(
    name: str, *, plugins: Plugins | None = None, workdir: Path | None = None
) -> AsyncIterator[ConformanceRig]:
    """Start adapter ``name``'s simulator on loopback and yield a rig; everything is stopped afterwards."""
    plugins = plugins or Plugins()
    classes = plugins.adapter_classes()
    assert name in classes, f"no adapter named {name!r} is installed (installed: {', '.join(classes) or 'none'})"
    adapter_cls = classes[name]
    profile = adapter_cls.conformance_profile()
    assert profile is not None, f"{name}: the adapter has no conformance_profile(); see docs/adapters.md"
    simulators = plugins.simulator_factories()
    assert name in simulators, f"{name}: no simulator named {name!r} is registered (gateway_simulators hook)"
    simulator = simulators[name](dict(profile.simulator_settings))
    with tempfile.TemporaryDirectory(prefix=f"conformance-{name}-", dir=workdir) as tmp:
        server = TestServer(simulator)
        await server.start_server()
        rig = ConformanceRig(name, adapter_cls, profile, simulator, str(server.make_url("")).rstrip("/"), Path(tmp))
        try:
            yield rig
        finally:
            for adapter in rig._adapters:
                await adapter.close()
            for other in rig._servers:
                await other.close()
            await server.close()


# -- the checks -----------------------------------------------------------------------------


async def check_capabilities(rig: ConformanceRig) -> Notes:
    """The sample order fits the declared capabilities; an order in an undeclared currency is refused."""
    adapter = await rig.adapter()
    caps = adapter.capabilities
    order = rig.order()
    refusal = caps.refusal(order)
    assert refusal is None, f"{rig.name}: the profile's sample order is refused by the declared capabilities: {refusal}"
    if not caps.currencies:
        return ["declares every currency: the undeclared-currency refusal was not checked"]
    other = next(c for c in _OTHER_CURRENCIES if c not in caps.currencies)
    foreign = replace(order, money=Money(str(order.money.amount), other))
    assert caps.refusal(foreign) is not None, (
        f"{rig.name}: declares currencies {sorted(caps.currencies)} but does not refuse an order in {other}"
    )
    return []


def _load_contract(path: Path) -> None:
    if path.suffix == ".json":
        schema = json.loads(path.read_text(encoding="utf-8"))
        jsonschema.validators.validator_for(schema).check_schema(schema)
    elif path.suffix == ".xsd":
        xmlschema.XMLSchema(str(path))
    else:
        path.read_bytes()


async def check_contracts(rig: ConformanceRig) -> Notes:
    """Every declared partner contract file exists and loads (JSON Schema or XSD)."""
    contracts = rig.adapter_cls.partner_contracts
    if not contracts:
        pytest.skip(f"{rig.name}: declares no partner_contracts, so there is no contract file to check")
    for message, location in contracts.items():
        path = Path(location)
        assert path.is_file(), f"{rig.name}: contract {message!r} names {location}, which does not exist"
        try:
            _load_contract(path)
        except Exception as exc:
            raise AssertionError(f"{rig.name}: contract {message!r} ({location}) does not load: {exc}") from None
    return []


async def check_idempotent_submit(rig: ConformanceRig) -> Notes:
    """Submitting the same order twice gives the same partner reference and books one payment."""
    adapter = await rig.adapter()
    order = rig.order()
    first = await adapter.submit(order)
    await rig.deliver(adapter)
    second = await adapter.submit(order)
    await rig.deliver(adapter)
    assert second.partner_reference == first.partner_reference, (
        f"{rig.name}: the same order submitted twice got partner references "
        f"{first.partner_reference!r} and {second.partner_reference!r}: order.id is not used as idempotency key"
    )
    booked = rig.payments_at_partner(order)
    if booked is None:
        return ["the simulator has no journal the kit can read: only partner references were compared"]
    assert booked == 1, f"{rig.name}: the same order submitted twice was booked {booked} times at the partner"
    return []


async def check_forged_callback(rig: ConformanceRig) -> Notes:
    """A callback without a signature, or signed with the wrong secret, raises ``SignatureError``."""
    if rig.profile.no_callbacks_reason:
        pytest.skip(f"{rig.name}: signature check not applicable: {rig.profile.no_callbacks_reason}")
    adapter = await rig.adapter()
    body = b'{"forged": true}'
    forgeries: dict[str, Mapping[str, str]] = {
        "no signature": {"Content-Type": "application/json"},
        "wrong secret": {rig.profile.signature_header: sign_payload(b"not-the-partner-secret", body)},
    }
    for what, headers in forgeries.items():
        try:
            adapter.parse_callback(headers, body)
        except SignatureError:
            continue
        except Exception as exc:
            raise AssertionError(
                f"{rig.name}: a forged callback ({what}) raised {type(exc).__name__}, not SignatureError "
                "(verify the signature before reading the body)"
            ) from None
        raise AssertionError(f"{rig.name}: a forged callback ({what}) was accepted")
    return []


async def check_rejection(rig: ConformanceRig) -> Notes:
    """A payment the simulator refuses ends in the profile's rejection status, with a reason code."""
    adapter = await rig.adapter()
    order = rig.order(creditor_name=rig.profile.reject_marker)
    expect = rig.profile.rejection_status
    first = await adapter.submit(order)
    await rig.deliver(adapter)
    status, reason_code = await rig.final_status(adapter, order, first, expect=expect)
    assert status is expect, (
        f"{rig.name}: the simulator refused the payment ({rig.profile.reject_marker}) "
        f"but the adapter reported {status}, not {expect}"
    )
    assert reason_code, f"{rig.name}: a {expect} payment was reported without a reason code"
    return []


def _hanging_partner() -> tuple[web.Application, asyncio.Event]:
    """An app that takes every request and never answers (until ``release`` is set)."""
    release = asyncio.Event()

    async def hang(request: web.Request) -> web.StreamResponse:
        await request.read()
        await release.wait()
        return web.Response(status=503)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", hang)
    return app, release


async def check_timeout_is_unknown(rig: ConformanceRig) -> Notes:
    """A partner that takes the request and never answers gives ``TransientPartnerError``, never a verdict."""
    app, release = _hanging_partner()
    url = await rig.serve(app)
    adapter = await rig.adapter(url, **{rig.profile.timeout_setting: HANG_TIMEOUT})
    order = rig.order()
    notes: Notes = []
    try:
        try:
            result = await adapter.submit(order)
        except OutcomeUnknownError:
            return notes
        except TransientPartnerError:
            return ["a timeout raised TransientPartnerError; OutcomeUnknownError is preferred"]
        except PermanentPartnerError as exc:
            raise AssertionError(
                f"{rig.name}: a timeout raised PermanentPartnerError ({exc}): the partner may have taken "
                "the payment, so the gateway must retry with the same key, not fail it"
            ) from None
        if rig.profile.deliver is None:
            raise AssertionError(
                f"{rig.name}: submit to a partner that never answered returned {result.status} "
                "instead of raising TransientPartnerError"
            )
        # a queueing adapter: submit never contacts the partner, delivery does
        assert result.status is Status.SUBMITTED, f"{rig.name}: a queued submit reported {result.status}"
        try:
            await rig.deliver(adapter)
            update = await adapter.poll(replace(order, partner_reference=result.partner_reference))
        except TransientPartnerError:
            return notes
        except PermanentPartnerError as exc:
            raise AssertionError(f"{rig.name}: a delivery timeout raised PermanentPartnerError ({exc})") from None
        reported = update.status if update is not None else None
        assert reported not in _FINAL, f"{rig.name}: after a delivery timeout the adapter reported {reported}"
        return ["submit only queues: the timeout was checked on delivery and poll"]
    finally:
        release.set()


async def check_polling_agrees(rig: ConformanceRig) -> Notes:
    """A sample payment settles, and polling reports the same final status as the submit answer."""
    adapter = await rig.adapter()
    order = rig.order()
    first = await adapter.submit(order)
    await rig.deliver(adapter)
    status, _ = await rig.final_status(adapter, order, first, expect=Status.SETTLED)
    assert status is Status.SETTLED, f"{rig.name}: the sample payment ended {status}, not settled"
    update: StatusUpdate | None = await adapter.poll(replace(order, partner_reference=first.partner_reference))
    polled = update.status if update is not None else None
    assert polled is Status.SETTLED, f"{rig.name}: the payment settled but polling reports {polled}"
    if first.status in _FINAL:
        assert first.status is polled, f"{rig.name}: submit said {first.status}, polling says {polled}"
    return []


@dataclass(frozen=True)
class _FaultCase:
    """One simulator-core fault on the submit exchange and the reaction it must get."""

    name: str
    fault: Mapping[str, Any]
    #: ``unknown``: TransientPartnerError (OutcomeUnknownError preferred); ``throttled``: TransientPartnerError
    #: with retry_after; ``no_verdict``: no final status; ``answer``: a normal SubmitResult
    expect: str
    #: drive it with the adapter whose request timeout is ``HANG_TIMEOUT``
    short_timeout: bool = False


#: every fault stays on for the whole faulted submit (``times``), so an adapter's own retries meet it too
_FAULT_TIMES = 100
FAULT_CASES: tuple[_FaultCase, ...] = (
    _FaultCase("hang", {"kind": "hang", "after": True, "seconds": HANG_TIMEOUT * 4}, "unknown", short_timeout=True),
    _FaultCase("reset", {"kind": "reset", "after": True}, "unknown"),
    _FaultCase("truncated_body", {"kind": "truncated_body"}, "unknown"),
    _FaultCase("wrong_content_type", {"kind": "wrong_content_type"}, "unknown"),
    _FaultCase("wrong_amount", {"kind": "wrong_amount", "amount_delta": "1.00"}, "unknown"),
    _FaultCase("wrong_currency", {"kind": "wrong_currency"}, "unknown"),
    _FaultCase("http_500", {"kind": "http_error", "status": 500, "retry_after": 1}, "unknown"),
    _FaultCase("http_503", {"kind": "http_error", "status": 503, "retry_after": 1}, "unknown"),
    _FaultCase("http_429", {"kind": "http_error", "status": 429, "retry_after": 2}, "throttled"),
    _FaultCase("unknown_status", {"kind": "unknown_status", "code": "ZZZZ"}, "no_verdict"),
    _FaultCase("latency", {"kind": "latency", "delay": HANG_TIMEOUT / 4}, "answer", short_timeout=True),
)


def _core_engine(simulator: web.Application) -> Any | None:
    """The simulator core's engine (found by shape, like the journal), or ``None`` for another simulator."""
    for key in simulator:
        engine = simulator[key]
        if callable(getattr(engine, "use_scenario", None)) and callable(
            getattr(getattr(engine, "journal", None), "select", None)
        ):
            return engine
    return None


async def _play_scenario(rig: ConformanceRig, document: Mapping[str, Any]) -> None:
    """Give the simulator a scenario document (``PUT /_sim/scenario``)."""
    url = f"{rig.base_url}/_sim/scenario"
    async with aiohttp.ClientSession() as session, session.put(url, json=dict(document)) as resp:
        answer = await resp.text()
    assert resp.status == 200, f"{rig.name}: the simulator refused the scenario {document['name']}: {answer}"


async def _react(rig: ConformanceRig, adapter: Adapter, order: PaymentOrder, case: _FaultCase) -> Notes:
    """Submit ``order`` under ``case``'s fault; what is wrong raises ``AssertionError``, what is weak is a note."""
    what = f"{rig.name}: under fault {case.name} ({dict(case.fault)}) submit"
    try:
        result = await adapter.submit(order)
    except PartnerUnreachableError as exc:
        if case.expect in ("unknown", "no_verdict"):
            raise AssertionError(
                f"{what} raised PartnerUnreachableError ({exc}): the partner read the request, so it may have "
                "executed it; the gateway must not treat it as never sent (OutcomeUnknownError)"
            ) from None
        if case.expect == "answer":
            raise AssertionError(f"{what} raised PartnerUnreachableError ({exc}) instead of answering") from None
        return [] if exc.retry_after is not None else [f"{case.name}: Retry-After was not carried in retry_after"]
    except OutcomeUnknownError as exc:
        if case.expect == "answer":
            raise AssertionError(f"{what} raised OutcomeUnknownError ({exc}) instead of answering") from None
        if case.expect == "throttled" and exc.retry_after is None:
            return [f"{case.name}: TransientPartnerError without retry_after (the partner sent Retry-After)"]
        return []
    except TransientPartnerError as exc:
        if case.expect == "answer":
            raise AssertionError(f"{what} raised {type(exc).__name__} ({exc}) instead of answering") from None
        if case.expect == "throttled":
            if exc.retry_after is None:
                return [f"{case.name}: TransientPartnerError without retry_after (the partner sent Retry-After)"]
            return []
        if case.expect == "unknown":
            return [
                f"{case.name}: raised a plain {type(exc).__name__}; OutcomeUnknownError is preferred "
                "(the partner may have processed the request)"
            ]
        return []
    except PermanentPartnerError as exc:
        raise AssertionError(
            f"{what} raised PermanentPartnerError ({exc}): the partner may have taken the payment, "
            "so the gateway must retry with the same key, not fail it"
        ) from None
    except Exception as exc:
        raise AssertionError(
            f"{what} raised {type(exc).__name__} ({exc}), not TransientPartnerError: a broken answer must be "
            "an unknown outcome"
        ) from None
    if case.expect == "answer":
        return []
    if case.expect == "no_verdict":
        assert result.status not in _FINAL, (
            f"{what} returned {result.status} from an answer with a status code nobody knows ({case.fault})"
        )
        return []
    raise AssertionError(
        f"{what} returned a SubmitResult ({result.status}, partner reference {result.partner_reference!r}) "
        "built from a wrong or broken answer instead of raising TransientPartnerError"
    )


#: faults that change what a status report says; a queueing adapter's delivery answer (a file
#: acknowledgement) reports no payment, so only the transport and malformed-answer faults apply to it
_REPORT_FAULT_CASES = frozenset({"wrong_amount", "wrong_currency", "unknown_status"})
_VERDICTS = frozenset({Status.REJECTED, Status.FAILED, Status.CANCELLED})


async def _check_faults_on_delivery(rig: ConformanceRig, engine: Any) -> Notes:
    """``check_faults`` for an adapter whose submit only queues: the faults strike the delivery.

    Under each fault the delivery must not fail the payment (it may have been taken: the outcome
    stays unknown), polling must not give a verdict, and a clean delivery afterwards must leave
    exactly one payment booked at the partner.
    """
    normal = await rig.adapter()
    short = await rig.adapter(**{rig.profile.timeout_setting: HANG_TIMEOUT})
    for case in FAULT_CASES:
        if case.name in _REPORT_FAULT_CASES:
            continue
        adapter = short if case.short_timeout else normal
        # each case on a partner that forgot the last: two adapters' spools may name their files alike
        forgotten = engine.reset()
        if inspect.isawaitable(forgotten):
            await forgotten
        order = rig.order()
        first = await adapter.submit(order)
        fault = {"times": _FAULT_TIMES, **case.fault}
        await _play_scenario(rig, {"name": f"conformance-fault-{case.name.replace('_', '-')}", "faults": [fault]})
        since = len(engine.journal.entries)
        what = f"{rig.name}: under fault {case.name} ({dict(case.fault)}) the delivery"
        try:
            await rig.deliver(adapter)
        except TransientPartnerError:
            pass
        except PermanentPartnerError as exc:
            raise AssertionError(
                f"{what} raised PermanentPartnerError ({exc}): the partner may have taken the payment"
            ) from None
        struck = engine.journal.select({"fault": str(fault["kind"]), "since": str(since)})
        assert struck, (
            f"{rig.name}: the simulator journal shows no exchange hit by fault {case.name} during the delivery: "
            "the kit could not inject it, so the reaction says nothing"
        )
        known = replace(order, partner_reference=first.partner_reference)
        try:
            update = await adapter.poll(known)
        except TransientPartnerError:
            update = None
        verdict = update.status if update is not None else None
        assert verdict not in _VERDICTS, f"{what} was followed by a poll reporting {verdict}: a verdict from no answer"
        await _play_scenario(rig, {"name": "conformance-no-faults"})
        try:
            await rig.deliver(adapter)
        except Exception as exc:
            raise AssertionError(
                f"{rig.name}: after fault {case.name}, a clean delivery raised {type(exc).__name__} ({exc})"
            ) from None
        booked = rig.payments_at_partner(order)
        assert booked == 1, (
            f"{rig.name}: after fault {case.name} and a clean delivery, the partner booked {booked} payments "
            f"for {order.id}, not exactly one (a resent delivery must carry the same idempotency key)"
        )
    return []


async def check_faults(rig: ConformanceRig) -> Notes:
    """Under each simulator-core fault on submit, the adapter's reaction is safe; a clean retry books one payment.

    For an adapter whose submit only queues (``ConformanceProfile.deliver``), the faults strike the delivery.
    """
    engine = _core_engine(rig.simulator)
    if engine is None:
        pytest.skip(
            f"{rig.name}: the simulator plays no scenarios the kit can swap (no use_scenario and journal), "
            "so the kit cannot inject its faults"
        )
    if rig.profile.deliver is not None:
        original = engine.scenario
        try:
            return await _check_faults_on_delivery(rig, engine)
        finally:
            engine.use_scenario(original)
    normal = await rig.adapter()
    short = await rig.adapter(**{rig.profile.timeout_setting: HANG_TIMEOUT})
    original = engine.scenario
    notes: Notes = []
    try:
        for case in FAULT_CASES:
            order = rig.order()
            fault = {"times": _FAULT_TIMES, **case.fault}
            await _play_scenario(rig, {"name": f"conformance-fault-{case.name.replace('_', '-')}", "faults": [fault]})
            notes += await _react(rig, short if case.short_timeout else normal, order, case)
            struck = engine.journal.select({"kind": "submit", "instruction_id": order.id, "fault": fault["kind"]})
            assert struck, (
                f"{rig.name}: the simulator journal shows no submit of {order.id} hit by fault {case.name}: "
                "the kit could not inject it, so the reaction says nothing"
            )
            await _play_scenario(rig, {"name": "conformance-no-faults"})
            try:
                await normal.submit(order)
            except Exception as exc:
                raise AssertionError(
                    f"{rig.name}: after fault {case.name}, a retry of the same order without faults raised "
                    f"{type(exc).__name__} ({exc})"
                ) from None
            booked = rig.payments_at_partner(order)
            assert booked == 1, (
                f"{rig.name}: after fault {case.name} and a clean retry, the partner booked {booked} payments "
                f"for {order.id}, not exactly one (the retry must carry the same idempotency key)"
            )
    finally:
        engine.use_scenario(original)
    return notes


#: every check by name, in the order they run
CHECKS: dict[str, Callable[[ConformanceRig], Awaitable[Notes]]] = {
    "capabilities": check_capabilities,
    "contracts": check_contracts,
    "idempotent_submit": check_idempotent_submit,
    "forged_callback": check_forged_callback,
    "rejection": check_rejection,
    "timeout_is_unknown": check_timeout_is_unknown,
    "polling_agrees": check_polling_agrees,
    "faults": check_faults,
}


async def run_check(name: str, check: str, *, plugins: Plugins | None = None, workdir: Path | None = None) -> Notes:
    """Run one check against adapter ``name``; its notes. ``AssertionError`` if it fails."""
    async with open_rig(name, plugins=plugins, workdir=workdir) as rig:
        return await CHECKS[check](rig)


# -- the pytest plugin ------------------------------------------------------------------------


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("gateway-conformance", "gateway adapter conformance kit")
    group.addoption(
        "--adapter",
        action="append",
        default=[],
        metavar="NAME",
        help="run the conformance suite against installed adapter NAME (repeatable)",
    )


class ConformanceItem(pytest.Item):
    """One check against one adapter."""

    def __init__(self, *, adapter: str, check: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.adapter = adapter
        self.check = check

    def runtest(self) -> None:
        notes = asyncio.run(run_check(self.adapter, self.check))
        for note in notes:
            self.add_report_section("call", "conformance note", note)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        if isinstance(excinfo.value, AssertionError):
            return f"{self.adapter} fails conformance check {self.check!r}: {excinfo.value}"
        return super().repr_failure(excinfo)

    def reportinfo(self) -> tuple[Path, int, str]:
        return Path(__file__), 0, f"conformance[{self.adapter}-{self.check}]"


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    for adapter in config.getoption("adapter") or []:
        for check in CHECKS:
            items.append(
                ConformanceItem.from_parent(
                    session, name=f"conformance[{adapter}-{check}]", adapter=adapter, check=check
                )
            )


@pytest.fixture
def conformance_rig() -> Callable[..., contextlib.AbstractAsyncContextManager[ConformanceRig]]:
    """``async with conformance_rig("my_bank") as rig:`` a rig (see ``open_rig``) for an adapter's own checks."""
    return open_rig
