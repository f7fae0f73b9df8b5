"""Versioned JSON contracts: loaded once, validators built once and cached.

Contracts live in ``contracts/<message>/<version>.json`` (import package
``gateway_contracts``). Every error names the JSON pointer of the failing field;
the most relevant error comes first (``jsonschema.exceptions.best_match``), then
all the others.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match, relevance
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from gateway.contracts.fastcheck import PropertyChecks, compile_fast, compile_fast_properties
from gateway.contracts.messages import describe
from gateway.contracts.strict_schema import FORMAT_CHECKER, StrictValidator
from gateway.domain.errors import pointer_of
from gateway.errors import ContractError, FieldError

__all__ = ["ContractRegistry", "check_body", "contracts", "schema_errors"]


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in version.split("."))


def _closest_branch(error: ValidationError) -> int | None:
    """For a failed ``oneOf`` over objects: the branch whose properties the instance uses most."""
    if not isinstance(error.instance, dict) or not isinstance(error.validator_value, list):
        return None
    keys = set(error.instance)
    scores = [
        (len(keys & set(branch.get("properties", {}))), -i)
        for i, branch in enumerate(error.validator_value)
        if isinstance(branch, dict)
    ]
    best, neg_index = max(scores, default=(0, 0))
    return -neg_index if best else None


def _field_errors(error: ValidationError) -> Iterator[FieldError]:
    base = pointer_of(error.absolute_path)
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        allowed = set(error.schema.get("properties", {}))
        for extra in sorted(k for k in error.instance if k not in allowed):
            yield FieldError(f"{base}/{pointer_of([extra])[1:]}", "unknown field (not in the contract)")
        return
    if error.validator == "required":
        missing = error.message.split("'")[1] if "'" in error.message else ""
        yield FieldError(f"{base}/{pointer_of([missing])[1:]}", "required field is missing")
        return
    if error.validator == "oneOf" and error.context:
        branch = _closest_branch(error)
        candidates = [e for e in error.context if e.relative_schema_path[0] == branch] or error.context
        sub = best_match(candidates)
        if sub is not None:
            yield from _field_errors(sub)
            return
    yield FieldError(base, describe(error))


class ContractRegistry:
    """All contract versions found under one directory, with cached validators."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = Path(root) if root else Path(str(resources.files("gateway_contracts")))
        self._schemas: dict[tuple[str, str], dict[str, Any]] = {}
        for path in sorted(self.root.glob("*/*.json")):
            schema = json.loads(path.read_text(encoding="utf-8"))
            message = schema.get("x-contract", path.parent.name)
            version = schema.get("x-version", path.stem)
            self._schemas[(message, version)] = schema
        self._registry: Registry = Registry().with_resources(
            (s["$id"], Resource.from_contents(s, default_specification=DRAFT202012))
            for s in self._schemas.values()
            if "$id" in s
        )
        self._validators: dict[tuple[str, str], Draft202012Validator] = {}
        self._versions: dict[str, list[str]] = {}
        self._fast: dict[tuple[str, str], Callable[[Any], bool] | None] = {}
        self._fast_properties: dict[tuple[str, str], PropertyChecks | None] = {}

    @property
    def resources(self) -> Registry:
        """Every loaded schema by ``$id``, for resolving references between documents."""
        return self._registry

    def messages(self) -> list[str]:
        return sorted({m for m, _ in self._schemas})

    def versions(self, message: str) -> list[str]:
        """Known versions of ``message``, oldest first."""
        found = self._versions.get(message)
        if found is None:  # the registry never changes after loading: sort once
            found = self._versions[message] = sorted((v for m, v in self._schemas if m == message), key=_version_key)
        return list(found)

    def latest(self, message: str) -> str:
        versions = self.versions(message)
        if not versions:
            raise ContractError(f"no contract named {message!r}")
        return versions[-1]

    def schema(self, message: str, version: str | None = None) -> dict[str, Any]:
        key = (message, version or self.latest(message))
        try:
            return self._schemas[key]
        except KeyError:
            raise ContractError(
                f"unknown version {key[1]!r} of contract {message!r}; known: {self.versions(message)}"
            ) from None

    def validator(self, message: str, version: str | None = None) -> Draft202012Validator:
        key = (message, version or self.latest(message))
        validator = self._validators.get(key)
        if validator is None:
            validator = StrictValidator(self.schema(*key), registry=self._registry, format_checker=FORMAT_CHECKER)
            self._validators[key] = validator
        return validator

    def fast_check(self, message: str, version: str | None = None) -> Callable[[Any], bool] | None:
        """The compiled pre-check for a contract, or ``None`` where it is not proven equivalent."""
        key = (message, version or self.latest(message))
        if key not in self._fast:
            self._fast[key] = compile_fast(self.schema(*key), format_checker=FORMAT_CHECKER)
        return self._fast[key]

    def fast_properties(self, message: str, version: str | None = None) -> PropertyChecks | None:
        """The compiled pre-check split per property (``PropertyChecks``), or ``None`` where it cannot be split."""
        key = (message, version or self.latest(message))
        if key not in self._fast_properties:
            self._fast_properties[key] = compile_fast_properties(self.schema(*key), format_checker=FORMAT_CHECKER)
        return self._fast_properties[key]

    def errors(self, message: str, instance: Any, version: str | None = None) -> list[FieldError]:
        """Every failing field, most relevant first; empty when valid.

        A valid document (the common case) is confirmed by the compiled pre-check
        (``gateway.contracts.fastcheck``, ~15x faster); anything else goes through jsonschema,
        so error reports are exactly jsonschema's.
        """
        fast = self.fast_check(message, version)
        if fast is not None and fast(instance):
            return []
        return schema_errors(self.validator(message, version), instance)

    def validate(self, message: str, instance: Any, version: str | None = None) -> None:
        """Raise ``ContractError`` listing every failing JSON pointer if ``instance`` is invalid."""
        errors = self.errors(message, instance, version)
        if errors:
            raise ContractError(f"{errors[0].pointer or '/'}: {errors[0].message}", errors=errors)


def schema_errors(validator: Draft202012Validator, instance: Any) -> list[FieldError]:
    """Every failing field of ``instance`` with its JSON pointer, most relevant first."""
    raw = sorted(validator.iter_errors(instance), key=relevance)
    if not raw:
        return []
    first = best_match(raw)
    ordered = [first, *(e for e in raw if e is not first)] if first is not None else raw
    out: list[FieldError] = []
    for error in ordered:
        for fe in _field_errors(error):
            if fe not in out:
                out.append(fe)
    return out


def check_body(validator: Draft202012Validator, instance: Any) -> None:
    """Raise ``ContractError`` (422, every failing pointer) if an API body does not fit its schema."""
    errors = schema_errors(validator, instance)
    if errors:
        raise ContractError(f"{errors[0].pointer or '/'}: {errors[0].message}", errors=errors)


@cache
def contracts() -> ContractRegistry:
    """The process-wide registry of the shipped contracts (built once)."""
    return ContractRegistry()
