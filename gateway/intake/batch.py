"""Documents → intake items: each validated on its own by the instruction contract, problems kept per item.

The fast path of ``POST /v1/instruction-batches`` and of ERP files: the compiled
pre-check (``ContractRegistry.errors`` runs ``gateway.contracts.fastcheck`` first),
one parse, one row per valid document, and the whole group handed to the
group-committing writer (``IntakeWriter.submit_group``) for ONE transaction.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Any

from gateway.contracts.registry import ContractRegistry
from gateway.contracts.versions import parse_as_latest
from gateway.domain.ids import new_ids
from gateway.domain.instruction import InstructionData, parse_instruction
from gateway.domain.status import Status
from gateway.errors import ContractError, DomainError, FieldError, GatewayError
from gateway.store.codec import InstructionCodec
from gateway.store.intake import IntakeItem

__all__ = ["MAX_ITEMS", "Prepared", "prepare"]

#: most instructions in one batch request or one file
MAX_ITEMS = 10_000
#: documents prepared between two yields to the event loop (a 10,000-item batch must not stall other requests)
_SLICE = 500
_RECEIVED = Status.RECEIVED.value


@dataclass(slots=True)
class Prepared:
    """A group's documents as intake items (``items[k]`` came from ``index[k]``) and the refused ones' problems."""

    items: list[IntakeItem] = field(default_factory=list)
    index: list[int] = field(default_factory=list)
    problems: dict[int, GatewayError] = field(default_factory=dict)


def _prefixed(exc: GatewayError, prefix: str) -> GatewayError:
    """The same error with every pointer below ``prefix`` (``/instructions/3`` + ``/amount``)."""
    errors = [FieldError(prefix + e.pointer, e.message) for e in exc.errors] or [FieldError(prefix, exc.message)]
    refused = ContractError(f"{errors[0].pointer}: {errors[0].message}", errors=errors)
    refused.slug, refused.status = exc.slug, exc.status
    return refused


async def prepare(
    contracts: ContractRegistry,
    codec: InstructionCodec,
    docs: Sequence[Any],
    *,
    version: str,
    business_unit_id: str,
    submitted_by: str | None,
    group_id: str,
    now: datetime,
    prefix: str = "/instructions",
    plain_text: bool = False,
) -> Prepared:
    """Validate and parse every document; the valid ones become intake items of group ``group_id``.

    ``plain_text``: no string in ``docs`` holds a control character (``parse_instruction``).
    The documents go in slices of a few hundred, the event loop served between two; each
    slice's ids come from one ``new_ids`` and its accounts are encrypted in one go (``new_rows``).
    """
    out = Prepared()
    fast = contracts.fast_check("instruction", version)
    parse = partial(parse_instruction, plain_text=plain_text)
    for start in range(0, len(docs), _SLICE):
        if start:
            await asyncio.sleep(0)
        parsed: list[tuple[int, InstructionData]] = []
        for index in range(start, min(start + _SLICE, len(docs))):
            doc = docs[index]
            pointer = f"{prefix}/{index}"
            if not isinstance(doc, dict):
                out.problems[index] = ContractError(
                    f"{pointer}: an instruction is an object", errors=[FieldError(pointer, "expected an object")]
                )
                continue
            if fast is None or not fast(doc):  # the compiled pre-check says yes to a valid document; else jsonschema
                errors = contracts.errors("instruction", doc, version)
                if errors:
                    out.problems[index] = _prefixed(ContractError(errors[0].message, errors=errors), pointer)
                    continue
            try:
                parsed.append((index, parse_as_latest(contracts, "instruction", version, doc, parse)))
            except DomainError as exc:
                out.problems[index] = _prefixed(exc, pointer)
        ids = new_ids("ins", len(parsed))
        rows = codec.new_rows(
            [(instruction_id, data) for instruction_id, (_, data) in zip(ids, parsed, strict=True)],
            business_unit_id,
            version,
            now,
            submitted_by,
        )
        for (index, data), row in zip(parsed, rows, strict=True):
            row["batch_id"] = group_id
            out.items.append(
                IntakeItem.received(
                    business_unit_id=business_unit_id,
                    idempotency_key=f"{group_id}/{index}",
                    request_hash="",
                    instruction=row,
                    response={"id": row["id"], "reference": data.reference, "status": _RECEIVED},
                    now=now,
                )
            )
            out.index.append(index)
    return out
