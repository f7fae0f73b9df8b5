"""A test-only adapter that breaks the adapter contract on purpose: the conformance kit must fail it.

It is the ISO 20022 bank adapter with four flaws: a fresh idempotency key on every
submit, ``PermanentPartnerError`` when the bank does not answer, rejections reported
as settled, and callbacks accepted without a signature. Registered only by the tests
that need it (``Plugins(extra=[broken_adapter])``).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from aiohttp import web

from gateway.domain.status import Status
from gateway.errors import PermanentPartnerError, TransientPartnerError
from gateway.partners.adapter import Adapter, PaymentOrder, StatusUpdate, SubmitResult
from gateway.plugins.hookspecs import hookimpl
from gateway_adapters.iso20022_bank import Iso20022BankAdapter, create_app


class BrokenBank(Iso20022BankAdapter):
    name = "broken_bank"

    async def submit(self, order: PaymentOrder) -> SubmitResult:
        resent = replace(order, id=f"{order.id}-{uuid.uuid4().hex[:6]}")  # flaw: a new key every time
        try:
            result = await super().submit(resent)
        except TransientPartnerError as exc:  # flaw: "no answer" taken as "no"
            raise PermanentPartnerError(str(exc)) from None
        if result.status is Status.REJECTED:  # flaw: a rejection reported as settled
            return replace(result, status=Status.SETTLED, reason_code=None)
        return result

    async def poll(self, order: PaymentOrder) -> StatusUpdate | None:
        update = await super().poll(order)
        if update is not None and update.status is Status.REJECTED:
            return replace(update, status=Status.SETTLED, reason_code=None)
        return update

    def parse_callback(self, headers: Mapping[str, str], body: bytes) -> list[StatusUpdate]:
        return []  # flaw: never verifies the signature


@hookimpl
def gateway_adapter_classes() -> list[type[Adapter]]:
    return [BrokenBank]


@hookimpl
def gateway_simulators() -> Mapping[str, Callable[[Mapping[str, Any]], web.Application]]:
    return {"broken_bank": create_app}
