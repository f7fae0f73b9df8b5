"""The decoder's fast cleanliness check (``_clean``) says exactly what the walk with pointers would report."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.contracts import safejson
from gateway.contracts.safejson import DEFAULT_LIMITS, FORBIDDEN_TEXT, BodyError, TextError, decode_json


def _reference(value: Any, max_chars: int, depth: int, texts: bool = True) -> bool:
    """The check as it was written first (recursive, one call per value): the specification."""
    if isinstance(value, str):
        return len(value) <= max_chars and (not texts or FORBIDDEN_TEXT.search(value) is None)
    if isinstance(value, dict):
        if depth <= 0 or isinstance(value, safejson._Duplicated):
            return False
        return all(
            _reference(key, max_chars, 0, texts) and _reference(item, max_chars, depth - 1, texts)
            for key, item in value.items()
        )
    if isinstance(value, list):
        return depth > 0 and all(_reference(item, max_chars, depth - 1, texts) for item in value)
    return not isinstance(value, safejson._Refused)


def _nested(levels: int, leaf: Any = "x") -> Any:
    node = leaf
    for i in range(levels):
        node = {"k": node} if i % 2 else [node]
    return node


def _duplicated() -> Any:
    marked = safejson._Duplicated({"a": 1})
    marked.duplicate = "a"
    return marked


CASES: list[Any] = [
    "plain",
    "x" * 10,
    "x" * 11,
    {"k" * 11: "v"},
    {"k": ["x" * 11]},
    {"a\u202eb": "v"},
    ["fine", "bad\u0007"],
    {"a": {"b": [1, 2.5, True, None, "\ud800"]}},
    {"a": [safejson._Refused("1e999 is out of range")]},
    [{"a": _duplicated()}],
    safejson._Refused("NaN"),
    _duplicated(),
    [],
    {},
    0,
    None,
    *(_nested(n) for n in (3, 4, 5)),
    *(_nested(n, {}) for n in (3, 4)),
    *(_nested(n, []) for n in (3, 4)),
]


@pytest.mark.parametrize("texts", [True, False])
@pytest.mark.parametrize("value", CASES)
def test_clean_agrees_with_the_recursive_check(value: Any, texts: bool) -> None:
    for depth in range(7):
        assert safejson._clean(value, 10, depth, texts) is _reference(value, 10, depth, texts), (value, depth)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=30,
)


@settings(max_examples=200, deadline=None)
@given(value=JSON, depth=st.integers(0, 6), texts=st.booleans())
def test_clean_agrees_with_the_recursive_check_on_any_json(value: Any, depth: int, texts: bool) -> None:
    assert safejson._clean(value, 8, depth, texts) is _reference(value, 8, depth, texts)


def test_nesting_limit_is_exact_through_decode_json() -> None:
    limit = DEFAULT_LIMITS.max_depth
    assert decode_json(json.dumps(_nested(limit)).encode()) == _nested(limit)
    with pytest.raises(BodyError, match="levels deep"):
        decode_json(json.dumps(_nested(limit + 1)).encode())


def test_a_bad_string_deep_in_a_batch_is_reported_with_its_pointer() -> None:
    body = {"instructions": [{"reference": "ok"}, {"debtor": {"name": "Nordic \u202e AB"}}]}
    with pytest.raises(TextError) as caught:
        decode_json(json.dumps(body, ensure_ascii=False).encode())
    assert caught.value.errors[0].pointer == "/instructions/1/debtor/name"
