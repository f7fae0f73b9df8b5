"""JSON Schema validation as the schemas mean it: ECMA-262 patterns and checked date-times.

Contracts are written in JSON Schema, whose ``pattern`` is an ECMA-262 regular
expression; jsonschema runs it with Python's ``re.search``, which differs in two
ways that let hostile input through: ``$`` also matches before a final newline
(``"acme\\n"`` passes ``^[a-z]+$``) and ``\\d`` matches any Unicode digit
(``"١٢"`` passes ``^\\d+$`` and ``Decimal`` reads it as 12). ``compile_pattern``
gives the ECMA meaning: ASCII classes, and a final ``$`` anchored at the very
end (``\\Z``).

jsonschema checks ``format: date-time`` only when an optional package is
installed; ``FORMAT_CHECKER`` checks it always, with the same function the
readers use (``gateway.datetimes.parse_datetime``).

``StrictValidator`` is Draft 2020-12 with both; use it with
``format_checker=FORMAT_CHECKER`` for anything that arrives from outside.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import lru_cache
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker, ValidationError, validators

from gateway.domain.datetimes import is_datetime

__all__ = ["FORMAT_CHECKER", "StrictValidator", "compile_pattern", "pattern_search"]


@lru_cache(maxsize=512)
def compile_pattern(pattern: str) -> re.Pattern[str]:
    """``pattern`` with ECMA-262 meaning: ASCII ``\\d``/``\\w``, a final ``$`` only at the very end."""
    if pattern.endswith("$") and (len(pattern) - len(pattern[:-1].rstrip("\\")) - 1) % 2 == 0:
        pattern = pattern[:-1] + r"\Z"
    return re.compile(pattern, re.ASCII)


def pattern_search(pattern: str, value: str) -> bool:
    """Whether ``value`` matches the JSON Schema ``pattern`` (ECMA-262 semantics)."""
    return compile_pattern(pattern).search(value) is not None


def _pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Iterator[ValidationError]:
    if validator.is_type(instance, "string") and not pattern_search(pattern, instance):
        shown = instance if len(instance) <= 60 else instance[:60] + "…"
        yield ValidationError(f"{shown!r} does not match {pattern!r}")


def _format_checker() -> FormatChecker:
    checker = FormatChecker()
    checker.checkers = dict(Draft202012Validator.FORMAT_CHECKER.checkers)
    checker.checks("date-time")(is_datetime)
    return checker


FORMAT_CHECKER = _format_checker()

StrictValidator = validators.extend(Draft202012Validator, {"pattern": _pattern}, format_checker=FORMAT_CHECKER)
