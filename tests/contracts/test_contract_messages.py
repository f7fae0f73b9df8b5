"""Contract errors in words: every pattern the shipped contracts use has a sentence, and the API says it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from gateway.contracts.messages import PATTERN_WORDS
from gateway.contracts.registry import contracts
from tests.support import LiveGateway, example_instruction


def _patterns(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        if isinstance(node.get("pattern"), str):
            yield node["pattern"]
        for value in node.values():
            yield from _patterns(value)
    elif isinstance(node, list):
        for value in node:
            yield from _patterns(value)


def test_every_pattern_in_the_shipped_contracts_has_words() -> None:
    registry = contracts()
    used = {p for m in registry.messages() for v in registry.versions(m) for p in _patterns(registry.schema(m, v))}
    assert used and used <= set(PATTERN_WORDS), sorted(used - set(PATTERN_WORDS))


# (body change, pointer, message): what a business unit reads instead of a regular expression
CASES = [
    (
        {"amount": "-5.00"},
        "/amount",
        'amount must be a positive decimal string such as "1250.00" '
        "(digits, an optional point and up to 3 decimals; no sign)",
    ),
    ({"amount": 1250.5}, "/amount", 'amount must be a string, not a JSON number: put it in quotes, e.g. "1250.00"'),
    (
        {"currency": "eur"},
        "/currency",
        'currency must be a three-letter ISO 4217 currency code in capitals, such as "EUR"',
    ),
    ({"type": "gift"}, "/type", 'type must be one of "credit_transfer", "payout", "refund"'),
    ({"reference": "R" * 36}, "/reference", "reference must be at most 35 characters long (it has 36)"),
    ({"urgency": 1}, "/urgency", 'urgency must be one of "standard", "instant"'),
]


@pytest.mark.parametrize(("change", "pointer", "message"), CASES, ids=[c[1] + str(i) for i, c in enumerate(CASES)])
async def test_the_api_says_what_a_field_must_be(
    intake_gateway: LiveGateway, change: dict[str, Any], pointer: str, message: str
) -> None:
    resp = await intake_gateway.post_instruction(example_instruction(**change))
    assert resp.status == 422
    problem = await resp.json()
    assert problem["type"].endswith("/contract-violation")
    assert problem["errors"][0] == {"pointer": pointer, "detail": message}
    assert problem["detail"] == f"{pointer}: {message}"
    assert "^" not in json.dumps(problem)  # no regular expression reaches the caller
