"""Proof that ``gateway.contracts.fastcheck`` gives jsonschema's verdict wherever it claims to.

Two independent proofs:

1. The JSON Schema Test Suite (draft 2020-12, vendored under
   ``tests/data/json-schema-test-suite``, see its ``SOURCES.md``): for every case whose
   schema the guard admits, the fast check, jsonschema and the suite's expected verdict agree.
2. Differential fuzzing of the shipped contracts (``contracts/*/*.json``, read only):
   thousands of seeded mutations of valid documents, fast verdict == jsonschema verdict.

Plus: the guard rejects the constructs known to differ, and those differences are real
(shown against raw fastjsonschema), so the guard is not decorative.
"""

from __future__ import annotations

import collections
import copy
import json
import random
from pathlib import Path
from typing import Any

import fastjsonschema
import pytest
from jsonschema import Draft202012Validator

from gateway.contracts.fastcheck import compile_fast, compile_fast_properties, exclusive, ineligibility
from gateway.contracts.strict_schema import FORMAT_CHECKER, StrictValidator
from tests.support import example_instruction

REPO = Path(__file__).resolve().parents[2]
SUITE = REPO / "tests" / "data" / "json-schema-test-suite" / "tests" / "draft2020-12"
CONTRACTS = REPO / "contracts"
DRAFT_07 = "http://json-schema.org/draft-07/schema#"

SUITE_FILES = sorted(p.relative_to(SUITE).as_posix() for p in SUITE.rglob("*.json"))

# Files that must have a substantial number of cases actually run through the fast check.
MIN_EXERCISED = {
    "type.json": 70,
    "required.json": 15,
    "properties.json": 15,
    "additionalProperties.json": 8,
    "enum.json": 40,
    "const.json": 50,
    "pattern.json": 10,
    "minLength.json": 7,
    "maxLength.json": 7,
    "oneOf.json": 25,
    "anyOf.json": 15,
    "allOf.json": 20,
    "not.json": 10,
    "ref.json": 20,
    "optional/format/date.json": 70,
    "optional/format/date-time.json": 25,
}


def _reference_gap(rel: str) -> bool:
    """Where jsonschema itself, as installed, does not implement the suite's expectation.

    ``date-time`` is only checked by jsonschema when ``rfc3339-validator`` is installed;
    without it jsonschema accepts any string, and so (deliberately) does the fast check.
    """
    return rel == "optional/format/date-time.json" and "date-time" not in FORMAT_CHECKER.checkers


def _run_suite_file(rel: str) -> collections.Counter[str]:
    counts: collections.Counter[str] = collections.Counter()
    for group in json.loads((SUITE / rel).read_text(encoding="utf-8")):
        schema = group["schema"]
        fast = compile_fast(schema)
        if fast is None:
            counts["skipped"] += len(group["tests"])
            assert ineligibility(schema) is not None, group["description"]
            continue
        reference = StrictValidator(schema, format_checker=FORMAT_CHECKER)
        for case in group["tests"]:
            where = f"{rel} / {group['description']} / {case['description']}"
            data = case["data"]
            before = copy.deepcopy(data)
            verdict = fast(data)
            assert data == before, f"fast check modified the instance: {where}"
            expected = reference.is_valid(data)
            assert verdict == expected, f"fast={verdict} jsonschema={expected}: {where}"
            if expected == case["valid"]:
                counts["exercised"] += 1
            else:
                assert _reference_gap(rel), f"jsonschema disagrees with the suite: {where}"
                counts["reference-gap"] += 1
    return counts


@pytest.mark.parametrize("rel", SUITE_FILES)
def test_suite_file_agrees(rel: str) -> None:
    counts = _run_suite_file(rel)
    assert counts["exercised"] + counts["reference-gap"] >= MIN_EXERCISED.get(rel, 0), counts


def test_suite_exercises_hundreds_of_cases() -> None:
    totals: collections.Counter[str] = collections.Counter()
    for rel in SUITE_FILES:
        totals.update(_run_suite_file(rel))
    assert len(SUITE_FILES) >= 24
    assert totals["exercised"] >= 450, totals
    assert totals["skipped"] >= 50, totals  # the guard does refuse things (remote refs, prefixItems, ...)
    assert totals["reference-gap"] <= 20, totals


# --- the guard ---------------------------------------------------------------------------------

INELIGIBLE: list[tuple[str, dict[str, Any]]] = [
    ("$ref with an assertion sibling", {"$defs": {"a": {"type": "string"}}, "$ref": "#/$defs/a", "maxLength": 2}),
    ("$ref with an applicator sibling", {"properties": {"x": {"$ref": "#", "properties": {}}}}),
    ("remote $ref", {"$ref": "https://json-schema.org/draft/2020-12/schema"}),
    ("relative $ref", {"$ref": "other.json"}),
    ("anchor $ref", {"$ref": "#node", "$defs": {"n": {"$anchor": "node"}}}),
    ("escaped pointer", {"$defs": {"a/b": {}}, "$ref": "#/$defs/a~1b"}),
    ("pointer into enum data", {"enum": [{"type": "string"}], "$ref": "#/enum/0"}),
    ("pointer to nothing", {"$ref": "#/$defs/missing"}),
    ("nested $id", {"properties": {"a": {"$id": "http://example.com/a"}}}),
    ("$schema draft-07", {"$schema": DRAFT_07, "type": "string"}),
    ("prefixItems", {"prefixItems": [{"type": "string"}]}),
    ("items array form", {"items": [{"type": "string"}]}),
    ("unevaluatedProperties", {"unevaluatedProperties": False}),
    ("dependentSchemas", {"dependentSchemas": {"a": {}}}),
    ("if/then/else", {"if": {"type": "string"}, "then": {"minLength": 1}}),
    ("$dynamicRef", {"$dynamicRef": "#meta"}),
    ("patternProperties", {"patternProperties": {"^a": {}}}),
    ("multipleOf", {"multipleOf": 0.01}),
    ("uniqueItems", {"uniqueItems": True}),
    ("unmapped format", {"format": "email"}),
    ("non-Python regex", {"pattern": "^\\p{Letter}+$"}),
    ("draft-04 boolean exclusiveMinimum", {"minimum": 1, "exclusiveMinimum": True}),
    ("infinite bound", {"maximum": float("inf")}),
    ("x- key below the top level", {"properties": {"a": {"x-note": 1}}}),
    ("unknown keyword", {"propertiesx": {}}),
]


@pytest.mark.parametrize(("case", "schema"), INELIGIBLE, ids=[c for c, _ in INELIGIBLE])
def test_guard_rejects(case: str, schema: dict[str, Any]) -> None:
    assert ineligibility(schema) is not None, case
    assert compile_fast(schema) is None, case


def test_guard_admits_every_shipped_contract() -> None:
    paths = sorted(CONTRACTS.glob("*/*.json"))
    assert len(paths) >= 4
    for path in paths:
        schema = json.loads(path.read_text(encoding="utf-8"))
        assert ineligibility(schema) is None, path
        assert compile_fast(schema) is not None, path


def _closed(required: list[str], *allowed: str) -> dict[str, Any]:
    props = {name: {"type": "string"} for name in (*required, *allowed)}
    return {"type": "object", "additionalProperties": False, "required": required, "properties": props}


ONE_OF_SHAPES: list[tuple[str, list[Any], bool]] = [
    ("the account forms", [_closed(["iban"]), _closed(["number", "routing"]), _closed(["wallet"])], True),
    ("a required member the other allows both ways", [_closed(["a"], "b"), _closed(["b"], "a")], False),
    ("one shape inside the other", [_closed(["a"]), _closed(["a"], "b")], False),
    ("open object", [_closed(["a"]), {**_closed(["b"]), "additionalProperties": True}], False),
    ("not typed as an object", [_closed(["a"]), {k: v for k, v in _closed(["b"]).items() if k != "type"}], False),
    ("nothing required", [_closed([]), _closed(["b"])], False),
    ("patternProperties", [_closed(["a"]), {**_closed(["b"]), "patternProperties": {"^a$": {}}}], False),
    ("a $ref branch", [_closed(["a"]), {"$ref": "#/$defs/b"}], False),
]


@pytest.mark.parametrize(("case", "branches", "expected"), ONE_OF_SHAPES, ids=[c for c, _, _ in ONE_OF_SHAPES])
def test_one_of_is_compiled_as_any_of_only_when_the_branches_exclude_each_other(
    case: str, branches: list[Any], expected: bool
) -> None:
    assert exclusive(branches) is expected, case
    schema = {"oneOf": copy.deepcopy(branches), "$defs": {"b": _closed(["b"], "a")}}
    fast = compile_fast(schema)
    if fast is None:  # the guard refuses the schema anyway
        assert case == "patternProperties" and ineligibility(schema) is not None
        return
    reference = StrictValidator(schema, format_checker=FORMAT_CHECKER)
    instances: list[Any] = [
        {"a": "x"},
        {"b": "x"},
        {"a": "x", "b": "y"},
        {"iban": "x"},
        {"number": "1", "routing": "2"},
        {"iban": "x", "wallet": "w"},
        {"wallet": "w"},
        {},
        "a",
        None,
        [],
    ]
    for instance in instances:  # where two branches hold, oneOf says no, and so must the fast check
        assert fast(instance) == reference.is_valid(instance), (case, instance)


def _raw_fastjsonschema(schema: dict[str, Any]) -> Any:
    return fastjsonschema.compile({**schema, "$schema": DRAFT_07}, use_default=False)


def _raw_ok(validate: Any, instance: Any) -> bool:
    try:
        validate(instance)
    except fastjsonschema.JsonSchemaValueException:
        return False
    return True


def test_ref_siblings_really_differ_so_the_guard_is_needed() -> None:
    schema = {"$defs": {"a": {"type": "array"}}, "properties": {"foo": {"$ref": "#/$defs/a", "maxItems": 2}}}
    instance = {"foo": [1, 2, 3]}
    assert not Draft202012Validator(schema).is_valid(instance)
    assert _raw_ok(_raw_fastjsonschema(schema), instance)  # draft-07 ignores the sibling: a false "valid"
    assert compile_fast(schema) is None


def test_pattern_dollar_is_the_end_of_the_string_as_in_ecma_262() -> None:
    schema = {"type": "string", "pattern": "^[A-Z]{3}$"}
    assert Draft202012Validator(schema).is_valid("EUR\n")  # plain jsonschema: Python's $ matches before a newline
    reference = StrictValidator(schema)
    assert not reference.is_valid("EUR\n")  # the gateway's validator: ECMA-262 $, the very end
    fast = compile_fast(schema)
    assert fast is not None
    for value in ("EUR", "EUR\n", "EUR\n\n", "eur", "EURO", "\nEUR"):
        assert fast(value) == reference.is_valid(value), value


def test_pattern_digits_are_ascii_as_in_ecma_262() -> None:
    schema = {"type": "string", "pattern": "^\\d{1,3}$"}
    reference = StrictValidator(schema)
    fast = compile_fast(schema)
    assert fast is not None
    for value, valid in (("12", True), ("\u0661\u0662", False), ("\uff11", False)):
        assert reference.is_valid(value) is valid, value
        assert fast(value) is valid, value


def test_format_uses_jsonschemas_checker() -> None:
    schema = {"type": "string", "format": "date"}
    fast = compile_fast(schema)
    assert fast is not None
    assert fast("2026-02-28")
    assert not fast("2026-02-30")
    assert not fast("2026-13-01")
    assert fast("2026-02-30") == FORMAT_CHECKER.conforms("2026-02-30", "date")


def test_defaults_are_not_inserted() -> None:
    schema = json.loads((CONTRACTS / "instruction" / "1.0.json").read_text(encoding="utf-8"))
    fast = compile_fast(schema)
    assert fast is not None
    body = copy.deepcopy(schema["examples"][0])
    del body["urgency"]  # has "default": "standard"
    before = copy.deepcopy(body)
    assert fast(body)
    assert body == before


def test_fast_check_never_raises() -> None:
    fast = compile_fast({"properties": {"a": {"$ref": "#"}}})
    assert fast is not None
    deep: dict[str, Any] = {}
    node = deep
    for _ in range(5000):
        node["a"] = {}
        node = node["a"]
    assert fast(deep) in (True, False)  # RecursionError is swallowed: jsonschema decides


# --- differential fuzzing of the shipped contracts ------------------------------------------------

STATUS_EVENT = {
    "instruction_id": "ins_01HX",
    "reference": "INV-2026-000123",
    "sequence": 1,
    "status": "accepted",
    "previous_status": None,
    "applied": True,
    "outcome": "applied",
    "source": "api",
    "adapter": "iso20022_bank",
    "partner_reference": None,
    "partner_status": "ACSC",
    "reason_code": None,
    "reason": None,
    "occurred_at": "2026-11-27T10:00:00Z",
}

SUPPORT_INSTRUCTION = example_instruction(reference="INV-0123456789AB")  # fixed reference: deterministic fuzzing

# Values a field may plausibly hold: valid ones (so documents stay valid) and boundary breakers.
VALID_LEAVES: dict[str, list[Any]] = {
    "reference": ["A", "INV-1", "x" * 35, "a/b?c:d(e).f,g'h+i j-k"],
    "type": ["credit_transfer", "payout", "refund"],
    "amount": ["0", "1", "1250.5", "999999999999999.999", "10.00"],
    "currency": ["EUR", "USD", "JPY", "BHD"],
    "name": ["A", "Zürich Zahlungen AG", "n" * 140],
    "iban": ["DE89370400440532013000", "x" * 15, "y" * 42],
    "number": ["1", "12345678901234567"],
    "routing": ["021000021", "123456789"],
    "wallet": ["abc", "w" * 64],
    "bic": ["COBADEFF", "COBADEFFXXX", "NDEASESSXXX"],
    "lei": ["529900T8BM49AURSDO55", "ABCDEFGHIJKLMNOPQR12"],
    "remittance_information": ["", "Invoice 123", "r" * 140],
    "unstructured": ["", "Invoice 123", "u" * 140],
    "creditor_reference": ["RF18539007547034", "RF00A", "RF99" + "Z" * 21],
    "purpose": ["SUPP", "SALA", "TRAD"],
    "requested_execution_date": ["2026-11-27", "2024-02-29", "2026-12-31", "0001-01-01"],
    "urgency": ["standard", "instant"],
    "channel": ["iso20022_bank", "a", "z" * 64],
    "sequence": [1, 2, 10**12, 1.0],
    "status": ["received", "settled", "cancelled"],
    "previous_status": [None, "received", "returned"],
    "outcome": ["applied", "duplicate", "stale", "illegal"],
    "source": ["api", "poll", "operator"],
    "applied": [True, False],
    "occurred_at": ["2026-11-27T10:00:00Z", "2026-11-27T10:00:00.123+01:00"],
    "reason": [None, "", "r" * 500],
}

BREAKING_STRINGS = [
    "",
    " ",
    "a",
    "ab",
    "abc",
    "x" * 14,
    "x" * 16,
    "x" * 17,
    "x" * 18,
    "x" * 34,
    "x" * 36,
    "x" * 43,
    "x" * 63,
    "x" * 65,
    "x" * 139,
    "x" * 141,
    "x" * 256,
    "x" * 257,
    "x" * 501,
    "EUR\n",
    "eur",
    "EURO",
    "EU",
    "E€R",
    "INV-1\n",
    "INV_1",
    "INV#1",
    "INV-1<script>",
    "Zürich",
    "💸💸💸",
    "a\u0000b",
    "\n",
    "1250.001",
    "01250.00",
    "1250.",
    ".5",
    "-1",
    "1e3",
    "1 250.00",
    "1250.00\n",
    "1234567890123456",
    "RF18 5390",
    "RF1",
    "rf18539007547034",
    "SCOR",
    "scor",
    "cobadeffxxx",
    "COBADEF",
    "COBADEFFXX",
    "COBADEFFXXX\n",
    "12345678",
    "1234567890",
    "12345678\n",
    "529900T8BM49AURSDO5",
    "SUP",
    "SUPPL",
    "supp",
    "Iso20022",
    "9channel",
    "2026-02-30",
    "2026-13-01",
    "2026-00-10",
    "2026-1-01",
    "20261127",
    "2026-11-27\n",
    "2026-11-27T10:00:00Z",
    "2026-11-27 10:00:00",
    "not-a-date",
    "1998-12-31T23:59:61Z",
    "standard ",
    "Standard",
    "credit transfer",
    "received\n",
]

OTHER_VALUES: list[Any] = [
    None,
    True,
    False,
    0,
    1,
    -1,
    1.5,
    1.0,
    0.0,
    2**64,
    1e308,
    float("nan"),
    float("inf"),
    [],
    ["x"],
    [{"iban": "DE89370400440532013000"}],
    {},
    {"a": "b"},
    {"iban": "DE89370400440532013000"},
]

UNKNOWN_KEYS = ["extra", "Reference", "reference ", "iban2", "$ref", "__proto__", "k" * 65, "", "\n"]


def _paths(node: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [path]
    if isinstance(node, dict):
        for key, value in node.items():
            out.extend(_paths(value, (*path, key)))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            out.extend(_paths(value, (*path, i)))
    return out


def _get(doc: Any, path: tuple[Any, ...]) -> Any:
    for part in path:
        doc = doc[part]
    return doc


def _set(doc: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    _get(doc, path[:-1])[path[-1]] = value
    return doc


def _account(rng: random.Random) -> dict[str, Any]:
    fields = {k: VALID_LEAVES[k] for k in ("iban", "number", "routing", "wallet")}
    keys = rng.sample(sorted(fields), rng.choice([1, 1, 1, 2, 2, 3]))
    pool = lambda k: fields[k] + BREAKING_STRINGS[:8]  # noqa: E731
    return {k: rng.choice(pool(k)) for k in keys}


def _mutate(doc: Any, rng: random.Random) -> Any:
    paths = _paths(doc)
    path = rng.choice(paths)
    target = _get(doc, path)
    field = next((p for p in reversed(path) if isinstance(p, str)), "")
    op = rng.random()
    if op < 0.30 and field in VALID_LEAVES:  # a valid alternative for this field
        return _set(doc, path, copy.deepcopy(rng.choice(VALID_LEAVES[field])))
    if op < 0.45 and isinstance(target, dict) and target:  # delete a key
        del target[rng.choice(sorted(target))]
        return doc
    if op < 0.55 and isinstance(target, dict):  # add an unknown key (or a known one, elsewhere)
        key = rng.choice([*UNKNOWN_KEYS, *VALID_LEAVES])
        target[key] = rng.choice([rng.choice(BREAKING_STRINGS), *OTHER_VALUES[:4]])
        return doc
    if op < 0.62 and field in ("account", "debtor", "creditor", "ultimate_debtor", "ultimate_creditor"):
        if field == "account":
            return _set(doc, path, _account(rng))
        return _set(doc, path, {"name": rng.choice(VALID_LEAVES["name"]), "account": _account(rng)})
    if op < 0.68 and field == "metadata" and path:
        size = rng.choice([0, 1, 19, 20, 21])
        return _set(
            doc, path, {f"k{i}" * rng.choice([1, 12]): rng.choice(["v", "x" * 256, "x" * 257, 1]) for i in range(size)}
        )
    if op < 0.88:
        return _set(doc, path, rng.choice(BREAKING_STRINGS))
    return _set(doc, path, copy.deepcopy(rng.choice(OTHER_VALUES)))


def _bases(schema: dict[str, Any], message: str) -> list[Any]:
    bases = [copy.deepcopy(e) for e in schema.get("examples", [])]
    if message == "instruction":
        bases.append(copy.deepcopy(SUPPORT_INSTRUCTION))
    if message == "status-event":
        bases.append(copy.deepcopy(STATUS_EVENT))
    return bases


CONTRACT_PATHS = sorted(CONTRACTS.glob("*/*.json"))
MUTATIONS_PER_CONTRACT = 2500


@pytest.mark.parametrize("path", CONTRACT_PATHS, ids=[f"{p.parent.name}/{p.stem}" for p in CONTRACT_PATHS])
def test_fuzzed_contract_documents_agree(path: Path) -> None:
    schema = json.loads(path.read_text(encoding="utf-8"))
    fast = compile_fast(schema)
    assert fast is not None
    split = compile_fast_properties(schema)
    assert split is not None
    reference = StrictValidator(schema, format_checker=FORMAT_CHECKER)
    bases = [b for b in _bases(schema, path.parent.name) if reference.is_valid(b)]  # 2.0 changed remittance
    assert bases
    rng = random.Random(f"fastcheck:{path.parent.name}/{path.stem}")
    verdicts: collections.Counter[bool] = collections.Counter()
    for i in range(MUTATIONS_PER_CONTRACT):
        doc = copy.deepcopy(bases[i % len(bases)])
        for _ in range(rng.choice([1, 1, 1, 2, 2, 3])):
            doc = _mutate(doc, rng)
        snapshot = copy.deepcopy(doc)
        expected = reference.is_valid(doc)
        assert fast(doc) == expected, f"mutation {i}: {json.dumps(snapshot, default=str)[:2000]}"
        # split per property: the same verdict, also when properties checked once before are skipped
        assert split(doc) == expected, f"mutation {i} (split): {json.dumps(snapshot, default=str)[:2000]}"
        proven = {k for k, v in doc.items() if split.check(k, v)} if isinstance(doc, dict) else set()
        assert split(doc, proven) == expected, f"mutation {i} (proven {sorted(proven)})"
        assert repr(doc) == repr(snapshot)  # not modified (repr: NaN != NaN)
        verdicts[expected] += 1
    assert verdicts[True] >= MUTATIONS_PER_CONTRACT // 10, verdicts
    assert verdicts[False] >= MUTATIONS_PER_CONTRACT // 10, verdicts


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "object", "properties": {"a": {"type": "string"}}},  # open: additionalProperties absent
        {"type": "object", "additionalProperties": True, "properties": {"a": {"type": "string"}}},
        {"type": "object", "additionalProperties": False, "properties": {}, "allOf": [{"required": ["a"]}]},
        {"type": "object", "additionalProperties": False, "maxProperties": 1, "properties": {}},
        {"additionalProperties": False, "properties": {"a": {"type": "string"}}},  # not only objects
        {"type": "object", "additionalProperties": False, "properties": {"a": {"$ref": "#/properties/b"}, "b": {}}},
        {"type": "object", "additionalProperties": False, "properties": {"a": {"if": {}}}},
    ],
    ids=["open", "additional-true", "top-level-allOf", "maxProperties", "no-type", "ref-to-sibling", "ineligible"],
)
def test_property_split_only_for_closed_objects(schema: dict[str, Any]) -> None:
    assert compile_fast_properties({"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}) is None


def test_property_split_checks_each_property_alone() -> None:
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "additionalProperties": False,
        "required": ["a"],
        "properties": {"a": {"$ref": "#/$defs/short"}, "b": True, "c": False},
        "$defs": {"short": {"type": "string", "maxLength": 2}},
    }
    split = compile_fast_properties(schema)
    assert split is not None
    assert split({"a": "ok", "b": [1]}) and split.check("a", "ok")
    assert not split({"a": "long"}) and not split.check("a", "long")
    assert split({"a": "long"}, proven={"a"})  # the caller vouches for "a"
    assert not split({"b": 1}) and not split({"a": "ok", "c": 1}) and not split({"a": "ok", "d": 1})
    assert not split(["a"]) and not split.check("d", 1)
