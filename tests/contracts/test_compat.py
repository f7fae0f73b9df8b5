"""The schema diff: every rule, in both directions (request senders vs event receivers)."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.contracts.diff import Change, Effect, breaks, diff


def _obj(properties: dict[str, Any], required: list[str] | None = None, closed: bool = True) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": properties, "required": required or []}
    if closed:
        schema["additionalProperties"] = False
    return schema


S = {"type": "string"}

# (case, old schema, new schema, expected (pointer, keyword, effect) changes)
RULES: list[tuple[str, Any, Any, list[tuple[str, str, Effect]]]] = [
    ("identical", _obj({"a": S}), _obj({"a": S}), []),
    (
        "annotations-only",
        _obj({"a": {"type": "string", "description": "x"}}),
        _obj({"a": {"type": "string", "description": "y", "examples": ["z"], "x-note": 1}}),
        [],
    ),
    (
        "optional-property-added-to-closed",
        _obj({"a": S}),
        _obj({"a": S, "b": S}),
        [("/b", "properties", Effect.WIDENS)],
    ),
    (
        "property-added-to-open-object",
        _obj({"a": S}, closed=False),
        _obj({"a": S, "b": S}, closed=False),
        [("/b", "schema", Effect.NARROWS)],
    ),
    (
        "required-property-added",
        _obj({"a": S}),
        _obj({"a": S, "b": S}, ["b"]),
        [("/b", "properties", Effect.WIDENS), ("/b", "required", Effect.NARROWS)],
    ),
    ("field-made-optional", _obj({"a": S}, ["a"]), _obj({"a": S}), [("/a", "required", Effect.WIDENS)]),
    ("property-removed-from-closed", _obj({"a": S, "b": S}), _obj({"a": S}), [("/b", "properties", Effect.NARROWS)]),
    (
        "property-removed-from-open",
        _obj({"a": S, "b": S}, closed=False),
        _obj({"a": S}, closed=False),
        [("/b", "schema", Effect.WIDENS)],
    ),
    ("object-closed", _obj({"a": S}, closed=False), _obj({"a": S}), [("/*", "additionalProperties", Effect.NARROWS)]),
    ("object-opened", _obj({"a": S}), _obj({"a": S}, closed=False), [("/*", "additionalProperties", Effect.WIDENS)]),
    (
        "maxLength-tightened",
        {"type": "string", "maxLength": 140},
        {"type": "string", "maxLength": 70},
        [("/", "maxLength", Effect.NARROWS)],
    ),
    (
        "maxLength-loosened",
        {"type": "string", "maxLength": 70},
        {"type": "string", "maxLength": 140},
        [("/", "maxLength", Effect.WIDENS)],
    ),
    ("maxLength-added", S, {"type": "string", "maxLength": 5}, [("/", "maxLength", Effect.NARROWS)]),
    (
        "minLength-raised",
        {"type": "string", "minLength": 1},
        {"type": "string", "minLength": 3},
        [("/", "minLength", Effect.NARROWS)],
    ),
    (
        "minimum-lowered",
        {"type": "integer", "minimum": 5},
        {"type": "integer", "minimum": 1},
        [("/", "minimum", Effect.WIDENS)],
    ),
    ("maximum-removed", {"type": "integer", "maximum": 5}, {"type": "integer"}, [("/", "maximum", Effect.WIDENS)]),
    (
        "maxProperties-tightened",
        {"type": "object", "maxProperties": 20},
        {"type": "object", "maxProperties": 10},
        [("/", "maxProperties", Effect.NARROWS)],
    ),
    (
        "maxItems-loosened",
        {"type": "array", "maxItems": 2},
        {"type": "array", "maxItems": 3},
        [("/", "maxItems", Effect.WIDENS)],
    ),
    ("pattern-added", S, {"type": "string", "pattern": "^[A-Z]+$"}, [("/", "pattern", Effect.NARROWS)]),
    ("pattern-removed", {"type": "string", "pattern": "^[A-Z]+$"}, S, [("/", "pattern", Effect.WIDENS)]),
    (
        "pattern-replaced",
        {"type": "string", "pattern": "^[A-Z]+$"},
        {"type": "string", "pattern": "^[a-z]+$"},
        [("/", "pattern", Effect.CHANGES)],
    ),
    ("format-added", S, {"type": "string", "format": "date"}, [("/", "format", Effect.NARROWS)]),
    ("enum-value-added", {"enum": ["a", "b"]}, {"enum": ["a", "b", "c"]}, [("/", "enum", Effect.WIDENS)]),
    ("enum-value-removed", {"enum": ["a", "b"]}, {"enum": ["a"]}, [("/", "enum", Effect.NARROWS)]),
    ("enum-introduced", S, {"type": "string", "enum": ["a"]}, [("/", "enum", Effect.NARROWS)]),
    ("const-to-enum", {"const": "a"}, {"enum": ["a", "b"]}, [("/", "enum", Effect.WIDENS)]),
    ("type-narrowed", {"type": ["string", "null"]}, S, [("/", "type", Effect.NARROWS)]),
    ("type-widened", S, {"type": ["string", "null"]}, [("/", "type", Effect.WIDENS)]),
    ("number-to-integer", {"type": "number"}, {"type": "integer"}, [("/", "type", Effect.NARROWS)]),
    ("type-swapped", S, {"type": "object", "properties": {"x": S}}, [("/", "type", Effect.CHANGES)]),
    (
        "default-changed",
        {"enum": ["a", "b"], "default": "a"},
        {"enum": ["a", "b"], "default": "b"},
        [("/", "default", Effect.CHANGES)],
    ),
    ("unknown-keyword-changed", {"not": {"const": 1}}, {"not": {"const": 2}}, [("/", "not", Effect.CHANGES)]),
    (
        "multipleOf-finer",
        {"type": "number", "multipleOf": 0.5},
        {"type": "number", "multipleOf": 0.25},
        [("/", "multipleOf", Effect.WIDENS)],
    ),
    (
        "uniqueItems-added",
        {"type": "array"},
        {"type": "array", "uniqueItems": True},
        [("/", "uniqueItems", Effect.NARROWS)],
    ),
    (
        "array-items-narrowed",
        {"type": "array", "items": {"type": "string", "maxLength": 9}},
        {"type": "array", "items": {"type": "string", "maxLength": 3}},
        [("/*", "maxLength", Effect.NARROWS)],
    ),
    (
        "map-values-loosened",
        {"type": "object", "additionalProperties": {"type": "string", "maxLength": 10}},
        {"type": "object", "additionalProperties": {"type": "string", "maxLength": 20}},
        [("/*", "maxLength", Effect.WIDENS)],
    ),
    (
        "property-names-tightened",
        {"type": "object", "propertyNames": {"maxLength": 64}},
        {"type": "object", "propertyNames": {"maxLength": 32}},
        [("/*", "propertyNames/maxLength", Effect.NARROWS)],
    ),
    (
        "oneOf-branch-added",
        {"oneOf": [_obj({"iban": S}, ["iban"]), _obj({"wallet": S}, ["wallet"])]},
        {"oneOf": [_obj({"iban": S}, ["iban"]), _obj({"wallet": S}, ["wallet"]), _obj({"card": S}, ["card"])]},
        [("/", "oneOf", Effect.WIDENS)],
    ),
    (
        "oneOf-branch-removed",
        {"oneOf": [_obj({"iban": S}, ["iban"]), _obj({"wallet": S}, ["wallet"])]},
        {"oneOf": [_obj({"iban": S}, ["iban"])]},
        [("/", "oneOf", Effect.NARROWS)],
    ),
    (
        "change-inside-a-oneOf-branch",
        {"oneOf": [_obj({"iban": {"type": "string", "maxLength": 42}}, ["iban"]), _obj({"wallet": S}, ["wallet"])]},
        {"oneOf": [_obj({"wallet": S}, ["wallet"]), _obj({"iban": {"type": "string", "maxLength": 34}}, ["iban"])]},
        [("/iban", "maxLength", Effect.NARROWS)],
    ),
    (
        "oneOf-to-anyOf",
        {"oneOf": [S, {"type": "null"}]},
        {"anyOf": [S, {"type": "null"}]},
        [("/", "anyOf", Effect.WIDENS)],
    ),
]


@pytest.mark.parametrize(("case", "old", "new", "expected"), RULES, ids=[r[0] for r in RULES])
def test_each_rule_classifies_the_change(
    case: str, old: Any, new: Any, expected: list[tuple[str, str, Effect]]
) -> None:
    assert sorted((c.pointer, c.keyword, c.effect) for c in diff(old, new)) == sorted(expected)


@pytest.mark.parametrize(
    ("effect", "for_request", "for_event"),
    [
        (Effect.NARROWS, "breaking", "compatible"),
        (Effect.WIDENS, "compatible", "breaking"),
        (Effect.CHANGES, "breaking", "breaking"),
    ],
)
def test_classification_depends_on_who_validates(effect: Effect, for_request: str, for_event: str) -> None:
    change = Change("/x", "enum", effect, "")
    assert (change.classification("request"), change.classification("event")) == (for_request, for_event)
    assert breaks(effect, "request") is (for_request == "breaking")


def test_a_new_enum_value_is_compatible_for_senders_and_breaks_receivers() -> None:
    (change,) = diff({"enum": ["settled"]}, {"enum": ["settled", "returned"]})
    assert change.classification("request") == "compatible"
    assert change.classification("event") == "breaking"


def test_a_new_required_field_breaks_senders_but_not_receivers() -> None:
    changes = diff(_obj({"a": S}, closed=False), _obj({"a": S, "b": S}, ["b"], closed=False))
    assert {c.classification("request") for c in changes} == {"breaking"}
    assert {c.classification("event") for c in changes} == {"compatible"}


def test_refs_into_defs_are_followed_and_reported_at_every_use() -> None:
    def doc(max_name: int) -> dict[str, Any]:
        return {
            "type": "object",
            "properties": {
                "debtor": {"$ref": "#/$defs/party"},
                "creditor": {"$ref": "#/$defs/party", "description": "x"},
            },
            "$defs": {"party": _obj({"name": {"type": "string", "maxLength": max_name}})},
        }

    changes = diff(doc(140), doc(70))
    assert [(c.pointer, c.keyword, c.effect) for c in changes] == [
        ("/debtor/name", "maxLength", Effect.NARROWS),
        ("/creditor/name", "maxLength", Effect.NARROWS),
    ]


def test_recursive_schemas_terminate() -> None:
    def tree(max_label: int) -> dict[str, Any]:
        node = {
            "type": "object",
            "properties": {
                "label": {"type": "string", "maxLength": max_label},
                "children": {"type": "array", "items": {"$ref": "#/$defs/node"}},
            },
        }
        return {"$ref": "#/$defs/node", "$defs": {"node": node}}

    assert [(c.pointer, c.effect) for c in diff(tree(10), tree(5))] == [("/label", Effect.NARROWS)]


def test_string_becoming_an_object_with_alternatives_is_breaking_for_senders() -> None:
    old = _obj({"remittance": {"type": "string", "maxLength": 140}})
    new = _obj(
        {
            "remittance": {
                "oneOf": [_obj({"unstructured": S}, ["unstructured"]), _obj({"structured": S}, ["structured"])]
            }
        }
    )
    changes = diff(old, new)
    assert {c.pointer for c in changes} == {"/remittance"}
    assert "breaking" in {c.classification("request") for c in changes}
