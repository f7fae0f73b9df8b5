"""A fast yes/no pre-check for JSON contracts, compiled with ``fastjsonschema``.

The contracts are JSON Schema 2020-12 and ``jsonschema`` stays the reference
implementation: it produces every error message the API returns. Validating a
typical instruction with ``Draft202012Validator.iter_errors`` costs a few hundred
microseconds, which is a large share of intake CPU. ``fastjsonschema`` compiles a
schema to plain Python and answers in a few microseconds, but it implements
drafts 4/6/7, not 2020-12.

So :func:`compile_fast` only compiles a schema that an *eligibility guard* proves
lies in the subset where draft-07 (as fastjsonschema implements it) and 2020-12 (as
jsonschema implements it) give the same verdict, and returns ``None`` for every
other schema. Callers use it like this::

    fast = compile_fast(schema)
    if fast is not None and fast(instance):
        return []  # valid: jsonschema would report no error either
    ...  # run jsonschema for the verdict and the detailed errors

A ``False`` from the fast check never rejects anything on its own: jsonschema
decides. The guard walks the whole schema (``$defs`` included) and refuses:

* any keyword outside :data:`ASSERTIONS`, :data:`APPLICATORS` and
  :data:`ANNOTATIONS` (``prefixItems``, ``unevaluated*``, ``dependent*``,
  ``if``/``then``/``else``, ``$anchor``, ``$dynamicRef``, ``patternProperties``,
  ``contains``, ``multipleOf``, ``uniqueItems``, ``minItems``/``maxItems`` ... are
  out: none is needed by the contracts and none is proven equivalent here);
* ``$schema`` other than 2020-12, ``$id`` or ``x-*`` keys below the top level;
* ``$ref`` that is not a local JSON pointer (``#`` or ``#/a/b`` made of plain
  segments) to a schema position the guard itself walked, or a ``$ref`` with an
  assertion or applicator sibling (2020-12 applies siblings, draft-07 ignores them);
* ``items`` in array form, a ``format`` other than :data:`FORMATS`, a ``pattern``
  Python's ``re`` cannot compile, malformed keyword values, non-finite numbers.

Three differences between the libraries are neutralised when compiling, and one
rewrite makes the check cheaper without changing its verdict:

* ``pattern``: fastjsonschema rewrites every ``$`` to ``\\Z`` while the gateway's
  validator gives patterns their ECMA-262 meaning (``gateway.contracts.strict_schema``:
  ASCII classes, a final ``$`` at the very end). Each ``pattern`` is therefore
  compiled as a custom format running the validator's own ``compile_pattern``.
* ``format``: fastjsonschema's own regexes differ from jsonschema's checkers, so
  each allowed format is mapped to the very ``FormatChecker`` jsonschema is given.
  (``gateway.strict_schema.FORMAT_CHECKER`` checks ``date-time`` with
  ``gateway.datetimes.parse_datetime``; pass it to both.)
* ``default``: fastjsonschema inserts defaults into the instance unless told not
  to; it is compiled with ``use_default=False`` and annotations are stripped.
* ``oneOf`` whose branches are mutually exclusive closed objects (:func:`exclusive`:
  the account's IBAN / US / wallet forms) is compiled as ``anyOf``: with at most one
  branch able to hold, "exactly one" and "at least one" are the same verdict, and
  ``anyOf`` stops at the first branch that holds instead of trying every other one
  (fastjsonschema tries a branch by raising an exception from it: half the cost of
  checking an instruction went there).

The proofs are in ``tests/contracts/test_fastcheck.py``: the official JSON Schema
Test Suite (draft 2020-12) and differential fuzzing of the shipped contracts.
"""

from __future__ import annotations

import copy
import math
import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

import fastjsonschema
from jsonschema import FormatChecker

from gateway.contracts.strict_schema import FORMAT_CHECKER, compile_pattern

__all__ = [
    "ANNOTATIONS",
    "APPLICATORS",
    "ASSERTIONS",
    "FORMATS",
    "PropertyChecks",
    "compile_fast",
    "compile_fast_properties",
    "exclusive",
    "ineligibility",
]

DRAFT_2020_12 = "https://json-schema.org/draft/2020-12/schema"
_DRAFT_07 = "http://json-schema.org/draft-07/schema#"

#: Keywords with no effect on the verdict; stripped before compiling.
ANNOTATIONS = frozenset(
    {"title", "description", "examples", "default", "deprecated", "readOnly", "writeOnly", "$comment"}
)
#: Keywords that hold subschemas, walked by the guard.
APPLICATORS = frozenset(
    {"properties", "additionalProperties", "propertyNames", "items", "not", "allOf", "anyOf", "oneOf", "$defs"}
)
#: Keywords that assert on the instance itself.
ASSERTIONS = frozenset(
    {
        "type",
        "required",
        "enum",
        "const",
        "pattern",
        "format",
        "minLength",
        "maxLength",
        "minimum",
        "maximum",
        "exclusiveMinimum",
        "exclusiveMaximum",
        "minProperties",
        "maxProperties",
    }
)
#: Formats the fast check delegates to jsonschema's format checker.
FORMATS = frozenset({"date", "date-time"})

_TYPES = frozenset({"null", "boolean", "object", "array", "number", "string", "integer"})
_COUNTS = frozenset({"minLength", "maxLength", "minProperties", "maxProperties"})
_BOUNDS = frozenset({"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"})
_SEGMENT = re.compile(r"[A-Za-z0-9_$.-]+")
_PATTERN_FORMAT = "x-fastcheck-pattern-{}"


class _Ineligible(Exception):
    """The schema uses something outside the proven-equivalent subset."""


def _is_count(value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return math.isfinite(value) and value >= 0 and float(value).is_integer()


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _is_json_value(value: Any) -> bool:
    """Plain JSON data (what ``enum``/``const`` may hold), with finite numbers only."""
    if value is None or isinstance(value, str | bool | int):
        return True
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, list):
        return all(_is_json_value(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _is_json_value(v) for k, v in value.items())
    return False


class _Guard:
    """Walks a schema, raising ``_Ineligible`` at the first construct outside the subset."""

    def __init__(self) -> None:
        self.positions: set[tuple[str, ...]] = set()
        self.refs: list[tuple[str, ...]] = []

    def walk(self, node: Any, path: tuple[str, ...]) -> None:
        self.positions.add(path)
        if isinstance(node, bool):
            return
        if not isinstance(node, dict):
            raise _Ineligible(f"{_show(path)}: a schema must be an object or a boolean")
        top = not path
        for key, value in node.items():
            if key in ANNOTATIONS:
                continue
            if key == "$schema" and top:
                if value != DRAFT_2020_12:
                    raise _Ineligible(f"$schema {value!r} is not 2020-12")
            elif key == "$id" and top:
                if not isinstance(value, str):
                    raise _Ineligible("$id must be a string")
            elif top and isinstance(key, str) and key.startswith("x-"):
                continue
            elif key == "$ref":
                self._ref(node, value, path)
            elif key in ASSERTIONS:
                self._assertion(key, value, path)
            elif key in APPLICATORS:
                self._applicator(key, value, path)
            else:
                raise _Ineligible(f"{_show(path)}: keyword {key!r} is not in the proven subset")

    def _ref(self, node: dict[str, Any], ref: Any, path: tuple[str, ...]) -> None:
        if not isinstance(ref, str) or not ref.startswith("#"):
            raise _Ineligible(f"{_show(path)}: $ref {ref!r} is not a local JSON pointer")
        pointer = ref[1:]
        if pointer and not pointer.startswith("/"):
            raise _Ineligible(f"{_show(path)}: $ref {ref!r} is an anchor, not a JSON pointer")
        segments = tuple(pointer.split("/")[1:]) if pointer else ()
        if not all(_SEGMENT.fullmatch(s) for s in segments):
            raise _Ineligible(f"{_show(path)}: $ref {ref!r} has escaped or unusual pointer segments")
        siblings = set(node) - ANNOTATIONS - {"$ref", "$defs"}
        if not path:  # top-level identity and extension keys are not constraints
            siblings = {s for s in siblings if s not in ("$schema", "$id") and not str(s).startswith("x-")}
        if siblings:
            raise _Ineligible(f"{_show(path)}: $ref has sibling keywords {sorted(siblings)} (2020-12 applies them)")
        self.refs.append(segments)

    def _assertion(self, key: str, value: Any, path: tuple[str, ...]) -> None:
        where = _show(path)
        if key == "type":
            types = value if isinstance(value, list) else [value]
            if not types or not all(isinstance(t, str) and t in _TYPES for t in types) or len(set(types)) < len(types):
                raise _Ineligible(f"{where}: malformed type {value!r}")
        elif key == "required":
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise _Ineligible(f"{where}: malformed required {value!r}")
        elif key == "enum":
            if not isinstance(value, list) or not all(_is_json_value(v) for v in value):
                raise _Ineligible(f"{where}: malformed enum")
        elif key == "const":
            if not _is_json_value(value):
                raise _Ineligible(f"{where}: malformed const")
        elif key == "pattern":
            if not isinstance(value, str):
                raise _Ineligible(f"{where}: malformed pattern {value!r}")
            try:
                re.compile(value)
            except re.error as exc:
                raise _Ineligible(f"{where}: pattern {value!r} is not a Python regex ({exc})") from None
        elif key == "format":
            if value not in FORMATS:
                raise _Ineligible(f"{where}: format {value!r} is not mapped to jsonschema's checker")
        elif key in _COUNTS:
            if not _is_count(value):
                raise _Ineligible(f"{where}: malformed {key} {value!r}")
        elif key in _BOUNDS and not _is_number(value):
            raise _Ineligible(f"{where}: {key} {value!r} must be a finite number")

    def _applicator(self, key: str, value: Any, path: tuple[str, ...]) -> None:
        if key in ("properties", "$defs"):
            if not isinstance(value, dict):
                raise _Ineligible(f"{_show(path)}: {key} must be an object")
            for name, sub in value.items():
                self.walk(sub, (*path, key, name))
        elif key in ("allOf", "anyOf", "oneOf"):
            if not isinstance(value, list) or not value:
                raise _Ineligible(f"{_show(path)}: {key} must be a non-empty array")
            for i, sub in enumerate(value):
                self.walk(sub, (*path, key, str(i)))
        else:  # additionalProperties, propertyNames, items, not: one schema
            if key == "items" and not isinstance(value, dict | bool):
                raise _Ineligible(f"{_show(path)}: items in array form (draft-07 tuple semantics differ)")
            self.walk(value, (*path, key))


def _show(path: tuple[str, ...]) -> str:
    return "#" + "".join("/" + p for p in path)


def ineligibility(schema: Any) -> str | None:
    """Why ``schema`` cannot use the fast check, or ``None`` when it can."""
    if not isinstance(schema, Mapping):
        return "the top-level schema must be an object"
    guard = _Guard()
    try:
        guard.walk(dict(schema), ())
        for segments in guard.refs:
            if segments not in guard.positions:
                raise _Ineligible(f"$ref {_show(segments)} does not point at a schema the guard checked")
    except _Ineligible as exc:
        return str(exc)
    except RecursionError:
        return "schema nested too deeply"
    return None


def _prepare(node: Any, formats: dict[str, Callable[[str], Any]], top: bool) -> Any:
    """Copy of an eligible schema for fastjsonschema: annotations dropped, patterns as formats."""
    if isinstance(node, bool):
        return node
    out: dict[str, Any] = {}
    extra: list[dict[str, Any]] = []
    for key, value in node.items():
        if key in ANNOTATIONS or key in ("$schema", "$id") or (top and key.startswith("x-")):
            continue
        if key in ("properties", "$defs"):
            out[key] = {name: _prepare(sub, formats, False) for name, sub in value.items()}
        elif key == "oneOf" and exclusive(value):  # at most one branch can hold: the first that does decides
            extra.append({"anyOf": [_prepare(sub, formats, False) for sub in value]})
        elif key in ("allOf", "anyOf", "oneOf"):
            out[key] = [_prepare(sub, formats, False) for sub in value]
        elif key in ("additionalProperties", "propertyNames", "items", "not"):
            out[key] = _prepare(value, formats, False)
        elif key == "pattern":
            name = _PATTERN_FORMAT.format(len(formats))
            formats[name] = compile_pattern(value).search  # exactly the validator's (gateway.contracts.strict_schema)
            extra.append({"format": name})
        else:  # a copy: fastjsonschema's resolver rewrites "$ref" strings it finds in nested dicts
            out[key] = copy.deepcopy(value)
    if extra:
        out["allOf"] = [*out.get("allOf", []), *extra]
    return out


def exclusive(branches: list[Any]) -> bool:
    """Whether no instance can satisfy two of these ``oneOf`` branches, by their shape alone.

    True when every branch is a closed object (``"type": "object"``, ``"additionalProperties":
    false``, no ``patternProperties``) and, for any two branches, one
    of the first's ``required`` members is not among the second's ``properties``: an object
    valid against the first has that member, which the second does not allow. Other keywords
    in a branch only narrow it further.
    """
    shapes = []
    for branch in branches:
        if (
            not isinstance(branch, dict)
            or branch.get("type") != "object"
            or branch.get("additionalProperties") is not False
            or "patternProperties" in branch
        ):
            return False
        required, properties = branch.get("required"), branch.get("properties", {})
        if not isinstance(required, list) or not isinstance(properties, dict):
            return False
        shapes.append((set(required), set(properties)))
    return all(
        not required <= allowed
        for i, (required, _) in enumerate(shapes)
        for j, (_, allowed) in enumerate(shapes)
        if i != j
    )


def _no_remote(uri: str) -> Any:
    raise ValueError(f"remote $ref {uri!r} is not allowed in a fast check")


#: The guard admits local pointers only; should anything else reach the resolver, never fetch it.
_NO_REMOTE = {scheme: _no_remote for scheme in ("http", "https", "file", "ftp", "urn", "data")}


def _format(checker: FormatChecker, name: str) -> Callable[[str], bool]:
    def conforms(value: str) -> bool:
        return checker.conforms(value, name)

    return conforms


def compile_fast(
    schema: Mapping[str, Any], format_checker: FormatChecker | None = None
) -> Callable[[Any], bool] | None:
    """A ``instance -> bool`` check equivalent to jsonschema 2020-12's verdict, or ``None``.

    ``None`` means the schema is not in the proven-equivalent subset (see the module
    docstring); the caller must then use jsonschema. ``format_checker`` must be the
    checker given to jsonschema (default: ``gateway.strict_schema.FORMAT_CHECKER``).
    The returned function never raises and never modifies the instance; ``False``
    means "not proven valid" — let jsonschema decide and explain.
    """
    if ineligibility(schema) is not None:
        return None
    checker = format_checker if format_checker is not None else FORMAT_CHECKER
    formats: dict[str, Callable[[str], Any]] = {name: _format(checker, name) for name in FORMATS}
    definition = _prepare(schema, formats, True)
    definition["$schema"] = _DRAFT_07
    validate = None
    # detailed_exceptions=False is faster, but fastjsonschema cannot generate ``const`` in that mode.
    for detailed in (False, True):
        try:
            validate = fastjsonschema.compile(
                definition, handlers=_NO_REMOTE, formats=formats, use_default=False, detailed_exceptions=detailed
            )
            break
        except Exception:  # a definition fastjsonschema cannot compile is simply not eligible
            continue
    if validate is None:
        return None

    def fast(instance: Any) -> bool:
        try:
            validate(instance)
        except Exception:  # JsonSchemaValueException, or anything unexpected: let jsonschema decide
            return False
        return True

    return fast


#: Top-level keywords a closed object schema may have for :func:`compile_fast_properties` (plus identity,
#: ``x-*`` extensions, ``$defs`` and annotations).
_OBJECT_KEYWORDS = frozenset({"type", "additionalProperties", "required", "properties"})


@dataclass(frozen=True)
class PropertyChecks:
    """A closed object schema's fast check, split into one check per property.

    For a schema of only ``type: object``, ``additionalProperties: false``,
    ``required`` and ``properties`` (and ``$defs``), 2020-12 defines the verdict
    property by property: an instance is valid exactly when it is an object, has
    every required key, no key outside ``properties``, and each value is valid
    against its property's schema. So a caller that meets the same value again (a
    history import pays the same parties thousands of times) may check it once and
    pass its name in ``proven``.
    """

    required: frozenset[str]
    properties: Mapping[str, Callable[[Any], bool]]

    def __call__(self, instance: Any, proven: Collection[str] = ()) -> bool:
        """Whether ``instance`` is valid (``True`` is certain), taking the properties in ``proven`` as valid."""
        if not isinstance(instance, dict) or not self.required.issubset(instance):
            return False
        checks = self.properties
        for name, value in instance.items():
            check = checks.get(name)
            if check is None or (name not in proven and not check(value)):
                return False
        return True

    def check(self, name: str, value: Any) -> bool:
        """Whether ``value`` is valid for property ``name`` (``True`` is certain; unknown names are not)."""
        check = self.properties.get(name)
        return check is not None and check(value)


def _constant(verdict: bool) -> Callable[[Any], bool]:
    def fixed(instance: Any) -> bool:
        return verdict

    return fixed


def compile_fast_properties(
    schema: Mapping[str, Any], format_checker: FormatChecker | None = None
) -> PropertyChecks | None:
    """:class:`PropertyChecks` for a closed object schema, or ``None`` (not that shape, or not eligible).

    Each property's check is :func:`compile_fast` of its subschema beside the
    schema's ``$defs`` (a ``$ref`` elsewhere makes it ineligible), so the split
    verdict is the whole schema's verdict (``tests/contracts/test_fastcheck.py``).
    """
    if ineligibility(schema) is not None or schema.get("type") != "object":
        return None
    keywords = {
        k for k in schema if k not in ANNOTATIONS and k not in ("$schema", "$id", "$defs") and not k.startswith("x-")
    }
    if keywords - _OBJECT_KEYWORDS or schema.get("additionalProperties") is not False:
        return None
    properties = schema.get("properties", {})
    checks: dict[str, Callable[[Any], bool]] = {}
    for name, sub in properties.items():
        if isinstance(sub, bool):
            checks[name] = _constant(sub)
            continue
        alone = {**sub, "$schema": DRAFT_2020_12, "$defs": schema.get("$defs", {})}
        check = compile_fast(alone, format_checker=format_checker)
        if check is None:
            return None
        checks[name] = check
    return PropertyChecks(frozenset(schema.get("required", ())), checks)
