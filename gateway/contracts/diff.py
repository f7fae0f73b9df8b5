"""Schema diff: every change between two versions of a contract, classified by who validates.

Each change has an *effect* on the set of instances the schema accepts:

- ``widens``: the new version accepts instances the old one rejected
  (new optional property on a closed object, enum value added, looser bound);
- ``narrows``: the new version rejects instances the old one accepted
  (new required field, property removed from a closed object, tighter bound,
  enum value removed, type narrowed);
- ``changes``: neither is a superset (type swapped, pattern replaced, default
  changed, or a keyword this diff cannot reason about): breaking either way.

Whether an effect breaks depends on the contract's ``x-direction``:

- ``request`` (senders build instances, the gateway validates): narrowing
  rejects what senders already send, so it breaks; widening is compatible.
- ``event`` (the gateway builds instances, receivers validate against the
  version they know): widening lets the gateway send what receivers reject, so
  it breaks; narrowing is compatible.

The walk follows ``$ref`` (into ``$defs`` or other registered documents), merges
``allOf``, pairs ``oneOf``/``anyOf`` branches by similarity, and compares
``type``, ``enum``/``const``, every numeric/length/count bound, ``pattern``,
``format``, ``multipleOf``, ``properties``/``required``/``additionalProperties``/
``propertyNames``, ``items``/``prefixItems``/``uniqueItems``. Annotations
(``description``, ``examples``, ``title``, ``x-*`` …) are not changes.
Pointers are instance locations (RFC 6901); ``*`` stands for any key or item.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

__all__ = ["Change", "Effect", "breaks", "diff"]

Schema = Mapping[str, Any] | bool


class Effect(StrEnum):
    """What a change does to the set of valid instances."""

    WIDENS = "widens"
    NARROWS = "narrows"
    CHANGES = "changes"


def breaks(effect: Effect, direction: str) -> bool:
    """Whether a change with ``effect`` breaks the other side of a ``direction`` (request|event) contract."""
    if effect is Effect.CHANGES:
        return True
    return effect is (Effect.NARROWS if direction == "request" else Effect.WIDENS)


@dataclass(frozen=True)
class Change:
    """One difference between two schema versions."""

    pointer: str
    keyword: str
    effect: Effect
    detail: str

    def classification(self, direction: str) -> str:
        return "breaking" if breaks(self.effect, direction) else "compatible"


_ANNOTATIONS = frozenset(
    {
        "$schema",
        "$id",
        "$anchor",
        "$comment",
        "$defs",
        "definitions",
        "title",
        "description",
        "examples",
        "deprecated",
        "readOnly",
        "writeOnly",
        "contentMediaType",
        "contentEncoding",
    }
)
_LOWER = ("minLength", "minimum", "exclusiveMinimum", "minItems", "minProperties", "minContains")
_UPPER = ("maxLength", "maximum", "exclusiveMaximum", "maxItems", "maxProperties", "maxContains")
_HANDLED = frozenset(
    {
        "$ref",
        "type",
        "enum",
        "const",
        "pattern",
        "format",
        "multipleOf",
        "uniqueItems",
        "properties",
        "required",
        "additionalProperties",
        "propertyNames",
        "items",
        "prefixItems",
        "allOf",
        "oneOf",
        "anyOf",
        *_LOWER,
        *_UPPER,
    }
)
_ALL_TYPES = frozenset({"null", "boolean", "object", "array", "number", "string", "integer"})
_MAX_DEPTH = 64


def _escape(part: str) -> str:
    return part.replace("~", "~0").replace("/", "~1")


def _canon(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


@dataclass(frozen=True)
class _Node:
    """A (sub)schema and the resolver its ``$ref`` values resolve against."""

    schema: Schema
    resolver: Any
    #: identities of the ``$ref`` targets followed to get here (guards recursive schemas)
    refs: tuple[int, ...] = ()


def _resolve(node: _Node) -> _Node:
    """Follow ``$ref`` (siblings of ``$ref`` win) and merge ``allOf`` into one schema."""
    schema, resolver, refs = node.schema, node.resolver, node.refs
    for _ in range(_MAX_DEPTH):
        if not isinstance(schema, Mapping) or "$ref" not in schema:
            break
        resolved = resolver.lookup(schema["$ref"])
        target = resolved.contents
        refs = (*refs, id(target))
        siblings = {k: v for k, v in schema.items() if k != "$ref"}
        schema = {**target, **siblings} if isinstance(target, Mapping) else target
        resolver = resolved.resolver
    if isinstance(schema, Mapping) and "allOf" in schema:
        merged: dict[str, Any] = {k: v for k, v in schema.items() if k != "allOf"}
        for part in schema["allOf"]:
            sub = _resolve(_Node(part, resolver, refs)).schema
            if sub is False:
                return _Node(False, resolver, refs)
            if not isinstance(sub, Mapping):
                continue
            for key, value in sub.items():
                if key == "properties":
                    merged["properties"] = {**merged.get("properties", {}), **value}
                elif key == "required":
                    merged["required"] = sorted({*merged.get("required", []), *value})
                else:
                    merged.setdefault(key, value)
        schema = merged
    return _Node(schema, resolver, refs)


def _types(schema: Mapping[str, Any]) -> frozenset[str]:
    """The JSON types a schema admits (declared, or implied by ``const``/``enum``); every type if unconstrained."""
    if "type" in schema:
        declared = schema["type"]
        types = {declared} if isinstance(declared, str) else set(declared)
        return frozenset(types | ({"integer"} if "number" in types else set()))
    if "const" in schema:
        return frozenset({_json_type(schema["const"])})
    if "enum" in schema:
        return frozenset(_json_type(v) for v in schema["enum"])
    return _ALL_TYPES


def _enum(schema: Mapping[str, Any]) -> list[Any] | None:
    if "const" in schema:
        return [schema["const"]]
    return list(schema["enum"]) if "enum" in schema else None


def _branches(schema: Schema) -> tuple[str | None, list[Schema]]:
    if isinstance(schema, Mapping):
        for keyword in ("oneOf", "anyOf"):
            if keyword in schema:
                base = {k: v for k, v in schema.items() if k != keyword}
                return keyword, [{**base, "allOf": [b]} if base else b for b in schema[keyword]]
    return None, [schema]


def _describe(schema: Schema) -> str:
    if isinstance(schema, bool):
        return "anything" if schema else "nothing"
    props = list(schema.get("properties", {}))
    if props:
        return "object with " + ", ".join(props)
    types = _types(schema)
    return "any value" if types == _ALL_TYPES else _show(types)


def _show(types: frozenset[str]) -> str:
    return "/".join(sorted(types - {"integer"} if "number" in types else types))


def _similarity(old: Schema, new: Schema) -> float:
    if isinstance(old, bool) or isinstance(new, bool):
        return 1.0 if old == new else 0.0
    if not (_types(old) & _types(new)):
        return 0.0
    score = 0.1 + len(_types(old) & _types(new)) / len(_types(old) | _types(new))
    old_props, new_props = set(old.get("properties", {})), set(new.get("properties", {}))
    if old_props or new_props:
        score += 2 * len(old_props & new_props) / len(old_props | new_props)
    if _canon(old) == _canon(new):
        score += 1
    return score


@dataclass
class _Walk:
    changes: list[Change] = field(default_factory=list)
    active: set[tuple[int, int]] = field(default_factory=set)

    def add(self, pointer: str, keyword: str, effect: Effect, detail: str) -> None:
        self.changes.append(Change(pointer or "/", keyword, effect, detail))

    def node(self, old: _Node, new: _Node, pointer: str, depth: int = 0) -> None:
        if depth > _MAX_DEPTH:
            return
        old, new = _resolve(old), _resolve(new)
        guard = (old.refs[-1] if old.refs else 0, new.refs[-1] if new.refs else 0)
        if guard != (0, 0) and guard in self.active:
            return  # a recursive schema: this pair is being compared further up the stack
        self.active.add(guard)
        try:
            self._branches(old, new, pointer, depth)
        finally:
            self.active.discard(guard)

    def _branches(self, old: _Node, new: _Node, pointer: str, depth: int) -> None:
        old_kw, old_raw = _branches(old.schema)
        new_kw, new_raw = _branches(new.schema)
        if old_kw and new_kw and old_kw != new_kw:
            effect = Effect.WIDENS if new_kw == "anyOf" else Effect.NARROWS
            self.add(pointer, new_kw, effect, f"{old_kw} became {new_kw}")
        if not old_kw and not new_kw:
            self._schema(old.schema, new.schema, old, new, pointer, depth)
            return
        old_nodes = [_resolve(_Node(b, old.resolver)) for b in old_raw]
        new_nodes = [_resolve(_Node(b, new.resolver)) for b in new_raw]
        if len(old_nodes) == 1 and len(new_nodes) == 1:
            self.node(old_nodes[0], new_nodes[0], pointer, depth + 1)
            return
        old_branches = [b.schema for b in old_nodes]
        new_branches = [b.schema for b in new_nodes]
        pairs = sorted(
            ((_similarity(o, n), i, j) for i, o in enumerate(old_branches) for j, n in enumerate(new_branches)),
            key=lambda t: (-t[0], t[1], t[2]),
        )
        used_old: set[int] = set()
        used_new: set[int] = set()
        for score, i, j in pairs:
            if score <= 0 or i in used_old or j in used_new:
                continue
            used_old.add(i)
            used_new.add(j)
            self.node(old_nodes[i], new_nodes[j], pointer, depth + 1)
        keyword = new_kw or old_kw or "oneOf"
        for i, branch in enumerate(old_branches):
            if i not in used_old:
                self.add(pointer, keyword, Effect.NARROWS, f"alternative removed: {_describe(branch)}")
        for j, branch in enumerate(new_branches):
            if j not in used_new:
                self.add(pointer, keyword, Effect.WIDENS, f"alternative added: {_describe(branch)}")

    def _schema(self, old_s: Schema, new_s: Schema, old: _Node, new: _Node, pointer: str, depth: int) -> None:
        if isinstance(old_s, bool) or isinstance(new_s, bool):
            self._boolean(old_s, new_s, pointer)
            return
        if not self._type(old_s, new_s, pointer):
            return  # disjoint types: nested differences would only be noise
        self._enum(old_s, new_s, pointer)
        self._bounds(old_s, new_s, pointer)
        self._strings(old_s, new_s, pointer)
        self._object(old_s, new_s, old, new, pointer, depth)
        self._array(old_s, new_s, old, new, pointer, depth)
        self._others(old_s, new_s, pointer)

    def _boolean(self, old: Schema, new: Schema, pointer: str) -> None:
        if old == new:
            return
        if old is True or new is False:
            self.add(pointer, "schema", Effect.NARROWS, f"was {_describe(old)}, now only {_describe(new)}")
        elif old is False or new is True:
            self.add(pointer, "schema", Effect.WIDENS, f"was {_describe(old)}, now {_describe(new)}")

    def _type(self, old: Mapping[str, Any], new: Mapping[str, Any], pointer: str) -> bool:
        if "type" not in old and "type" not in new:
            return True
        before, after = _types(old), _types(new)
        if before == after:
            return True
        shown = f"{_show(before)} → {_show(after)}"
        if after > before:
            self.add(pointer, "type", Effect.WIDENS, f"type widened: {shown}")
        elif after < before:
            self.add(pointer, "type", Effect.NARROWS, f"type narrowed: {shown}")
        else:
            self.add(pointer, "type", Effect.CHANGES, f"type changed: {shown}")
        return bool(before & after)

    def _enum(self, old: Mapping[str, Any], new: Mapping[str, Any], pointer: str) -> None:
        before, after = _enum(old), _enum(new)
        if before is None and after is None:
            return
        side = new if ("const" in new or "enum" in new) else old
        keyword = "const" if "const" in side else "enum"
        if before is None:
            self.add(pointer, keyword, Effect.NARROWS, f"now restricted to {_values(after or [])}")
            return
        if after is None:
            self.add(pointer, keyword, Effect.WIDENS, f"no longer restricted to {_values(before)}")
            return
        old_keys, new_keys = {_canon(v) for v in before}, {_canon(v) for v in after}
        added = [v for v in after if _canon(v) not in old_keys]
        removed = [v for v in before if _canon(v) not in new_keys]
        if added:
            self.add(pointer, keyword, Effect.WIDENS, f"value added: {_values(added)}")
        if removed:
            self.add(pointer, keyword, Effect.NARROWS, f"value removed: {_values(removed)}")

    def _bounds(self, old: Mapping[str, Any], new: Mapping[str, Any], pointer: str) -> None:
        for keyword in (*_LOWER, *_UPPER):
            before, after = old.get(keyword), new.get(keyword)
            if before == after:
                continue
            lower = keyword in _LOWER
            if before is None:
                effect, detail = Effect.NARROWS, f"{keyword} {after} added"
            elif after is None:
                effect, detail = Effect.WIDENS, f"{keyword} {before} removed"
            else:
                tighter = after > before if lower else after < before
                effect = Effect.NARROWS if tighter else Effect.WIDENS
                detail = f"{keyword} {before} → {after}"
            self.add(pointer, keyword, effect, detail)
        if old.get("uniqueItems", False) != new.get("uniqueItems", False):
            effect = Effect.NARROWS if new.get("uniqueItems") else Effect.WIDENS
            self.add(pointer, "uniqueItems", effect, f"uniqueItems {bool(new.get('uniqueItems'))}")
        before, after = old.get("multipleOf"), new.get("multipleOf")
        if before != after:
            if before is None or (after is not None and (after / before) == int(after / before)):
                effect = Effect.NARROWS
            elif after is None or (before / after) == int(before / after):
                effect = Effect.WIDENS
            else:
                effect = Effect.CHANGES
            self.add(pointer, "multipleOf", effect, f"multipleOf {before} → {after}")

    def _strings(self, old: Mapping[str, Any], new: Mapping[str, Any], pointer: str) -> None:
        for keyword in ("pattern", "format"):
            before, after = old.get(keyword), new.get(keyword)
            if before == after:
                continue
            if before is None:
                self.add(pointer, keyword, Effect.NARROWS, f"{keyword} {after!r} added")
            elif after is None:
                self.add(pointer, keyword, Effect.WIDENS, f"{keyword} {before!r} removed")
            else:
                # one regular expression's language containing another's is not decided here
                self.add(pointer, keyword, Effect.CHANGES, f"{keyword} {before!r} → {after!r}")

    def _object(
        self, old: Mapping[str, Any], new: Mapping[str, Any], o: _Node, n: _Node, pointer: str, depth: int
    ) -> None:
        before, after = old.get("properties", {}), new.get("properties", {})
        extra_old, extra_new = old.get("additionalProperties", True), new.get("additionalProperties", True)
        for name in [*after, *(k for k in before if k not in after)]:
            where = f"{pointer}/{_escape(name)}"
            if name in before and name in after:
                self.node(_Node(before[name], o.resolver), _Node(after[name], n.resolver), where, depth + 1)
            elif name in after:
                if extra_old is False:
                    self.add(where, "properties", Effect.WIDENS, "property added (the object was closed)")
                else:  # an open object accepted any value here; now only what the property allows
                    self.node(_Node(extra_old, o.resolver), _Node(after[name], n.resolver), where, depth + 1)
            elif extra_new is False:
                self.add(where, "properties", Effect.NARROWS, "property removed (the object is closed)")
            else:
                self.node(_Node(before[name], o.resolver), _Node(extra_new, n.resolver), where, depth + 1)
        req_old, req_new = set(old.get("required", [])), set(new.get("required", []))
        for name in sorted(req_new - req_old):
            self.add(f"{pointer}/{_escape(name)}", "required", Effect.NARROWS, "now required")
        for name in sorted(req_old - req_new):
            self.add(f"{pointer}/{_escape(name)}", "required", Effect.WIDENS, "no longer required")
        if extra_old is True and extra_new is False:
            self.add(f"{pointer}/*", "additionalProperties", Effect.NARROWS, "closed: unknown keys rejected")
        elif extra_old is False and extra_new is True:
            self.add(f"{pointer}/*", "additionalProperties", Effect.WIDENS, "opened: unknown keys allowed")
        elif _canon(extra_old) != _canon(extra_new):
            self.node(_Node(extra_old, o.resolver), _Node(extra_new, n.resolver), f"{pointer}/*", depth + 1)
        names_old, names_new = old.get("propertyNames", True), new.get("propertyNames", True)
        if _canon(names_old) != _canon(names_new):
            sub = _Walk(active=self.active)
            sub.node(_Node(names_old, o.resolver), _Node(names_new, n.resolver), "", depth + 1)
            for change in sub.changes:
                self.add(f"{pointer}/*", f"propertyNames/{change.keyword}", change.effect, f"key {change.detail}")

    def _array(
        self, old: Mapping[str, Any], new: Mapping[str, Any], o: _Node, n: _Node, pointer: str, depth: int
    ) -> None:
        items_old, items_new = old.get("items", True), new.get("items", True)
        prefix_old, prefix_new = old.get("prefixItems", []), new.get("prefixItems", [])
        for index in range(max(len(prefix_old), len(prefix_new))):
            a = prefix_old[index] if index < len(prefix_old) else items_old
            b = prefix_new[index] if index < len(prefix_new) else items_new
            self.node(_Node(a, o.resolver), _Node(b, n.resolver), f"{pointer}/{index}", depth + 1)
        if _canon(items_old) != _canon(items_new):
            self.node(_Node(items_old, o.resolver), _Node(items_new, n.resolver), f"{pointer}/*", depth + 1)

    def _others(self, old: Mapping[str, Any], new: Mapping[str, Any], pointer: str) -> None:
        for keyword in sorted(set(old) | set(new)):
            if keyword in _HANDLED or keyword in _ANNOTATIONS or keyword.startswith("x-"):
                continue
            if _canon(old.get(keyword)) != _canon(new.get(keyword)):
                detail = (
                    "default changed: an omitted field now means something else"
                    if keyword == "default"
                    else "changed; not compared structurally, so treated as breaking"
                )
                self.add(pointer, keyword, Effect.CHANGES, detail)


def _values(values: list[Any]) -> str:
    return ", ".join(json.dumps(v) for v in values)


def _uri(schema: Schema, fallback: str) -> str:
    return schema.get("$id", fallback) if isinstance(schema, Mapping) else fallback


def diff(old: Schema, new: Schema, registry: Registry | None = None) -> list[Change]:
    """Every change from ``old`` to ``new``, in schema order; ``registry`` resolves refs to other documents."""
    old_uri, new_uri = _uri(old, "urn:compat:old"), _uri(new, "urn:compat:new")
    if old_uri == new_uri:
        old_uri, new_uri = "urn:compat:old", "urn:compat:new"
    base = registry if registry is not None else Registry()
    resources = base.with_resources(
        (uri, Resource.from_contents(schema, default_specification=DRAFT202012))
        for uri, schema in ((old_uri, old), (new_uri, new))
    )
    walk = _Walk()
    walk.node(
        _Node(old, resources.resolver(base_uri=old_uri)),
        _Node(new, resources.resolver(base_uri=new_uri)),
        "",
    )
    return walk.changes
