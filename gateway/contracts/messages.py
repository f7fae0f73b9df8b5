"""Contract errors in words: what a field must be, with an example, instead of a regular expression.

The API (problem+json ``errors``) and the CLI (``gateway route explain``) both report these.
A pattern the table below does not know falls back to the schema's own example, then to
the pattern itself.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from jsonschema.exceptions import ValidationError

__all__ = ["MAX_ECHO", "PATTERN_WORDS", "describe", "error_message", "field_name"]

#: contract pattern → what it means (completes "FIELD must be …")
PATTERN_WORDS: Mapping[str, str] = {
    r"^(0|[1-9][0-9]{0,14})(\.[0-9]{1,3})?$": (
        'a positive decimal string such as "1250.00" (digits, an optional point and up to 3 decimals; no sign)'
    ),
    r"^[A-Z]{3}$": 'a three-letter ISO 4217 currency code in capitals, such as "EUR"',
    r"^[a-z]{3}$": 'a three-letter currency code in lower case, such as "eur"',
    r"^[A-Z0-9]{8}([A-Z0-9]{3})?$": 'a BIC of 8 or 11 capital letters and digits, such as "COBADEFFXXX"',
    r"^[0-9]{9}$": 'a nine-digit ABA routing number, such as "021000021"',
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$": 'a date written YYYY-MM-DD, such as "2026-03-31"',
    r"^[A-Z]{4}$": 'a four-letter ISO 20022 code in capitals, such as "SUPP"',
    r"^[A-Z0-9]{4}$": 'a four-character ISO 20022 reason code in capitals, such as "AC01"',
    r"^[A-Z0-9]{18}[0-9]{2}$": 'a 20-character LEI, such as "529900T8BM49AURSDO55"',
    r"^RF[0-9]{2}[A-Z0-9]{1,21}$": 'an ISO 11649 creditor reference, such as "RF18539007547034"',
    r"^[a-z][a-z0-9_]{0,63}$": 'an adapter name in lower_snake_case, such as "iso20022_bank"',
    r"^[a-z_]{2,64}$": "lower-case letters and underscores (2 to 64)",
    r"^[A-Z0-9_]{2,40}$": "capital letters, digits and underscores (2 to 40)",
    r"^[A-Za-z0-9/?:().,'+ -]+$": (
        "made only of letters, digits, spaces and / ? : ( ) . , ' + - (the ISO 20022 character set)"
    ),
    r"^[A-Za-z0-9-]{1,35}$": "1 to 35 letters, digits and hyphens",
    r"^[A-Za-z0-9_-]{1,35}$": "1 to 35 letters, digits, hyphens and underscores",
    r"^[0-9A-Za-z-]{1,17}$": "1 to 17 letters, digits and hyphens",
    r"^[A-Za-z0-9._:@+-]{3,64}$": "3 to 64 letters, digits and . _ : @ + -",
    r"^tok_[A-Za-z0-9_]{6,60}$": 'the acquirer\'s card token, such as "tok_visa_4242abcd" (never a card number)',
}

_TYPE_WORDS = {
    "string": "a string",
    "number": "a number",
    "integer": "a whole number",
    "boolean": "true or false",
    "object": "an object",
    "array": "a list",
    "null": "null",
}

_FORMAT_WORDS = {
    "date": 'a date written YYYY-MM-DD, such as "2026-03-31"',
    "date-time": 'a date and time with its offset, such as "2026-03-31T09:30:00Z"',
    "email": "an e-mail address",
    "uri": "an absolute URI",
}


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if value is None:
        return "null"
    return "list" if isinstance(value, list) else "object"


def field_name(path: Sequence[Any]) -> str:
    """``amount``, ``creditor.account.iban``, ``ultimate_debtor.identification`` (``the document`` at the top)."""
    return ".".join(str(p) for p in path) or "the document"


def _example(schema: Mapping[str, Any]) -> str | None:
    examples = schema.get("examples") or []
    return json.dumps(examples[0]) if examples and isinstance(examples[0], str) else None


def _type(error: ValidationError, name: str) -> str:
    expected = error.validator_value if isinstance(error.validator_value, list) else [error.validator_value]
    words = " or ".join(_TYPE_WORDS.get(str(t), str(t)) for t in expected)
    got = _json_type(error.instance)
    if "string" in expected and got == "number":
        example = _example(error.schema) or json.dumps(str(error.instance))
        return f"{name} must be a string, not a JSON number: put it in quotes, e.g. {example}"
    return f"{name} must be {words}, not a {got}"


def _pattern(error: ValidationError, name: str) -> str:
    pattern = str(error.validator_value)
    words = PATTERN_WORDS.get(pattern)
    if words:
        return f"{name} must be {words}"
    example = _example(error.schema)
    if example:
        return f"{name} must look like {example} (pattern {pattern})"
    return f"{name} must match the pattern {pattern}"


def describe(error: ValidationError) -> str:
    """What the failing field must be, starting with its name; jsonschema's own words where we have none better."""
    name = field_name(error.absolute_path)
    value = error.validator_value
    kind = error.validator
    if kind == "type":
        return _type(error, name)
    if kind == "pattern":
        return _pattern(error, name)
    if kind == "enum" and isinstance(value, list):
        return f"{name} must be one of {', '.join(json.dumps(v) for v in value)}"
    if kind == "const":
        return f"{name} must be {json.dumps(value)}"
    if kind == "minLength":
        return f"{name} must be at least {value} character{'s' if value != 1 else ''} long"
    if kind == "maxLength":
        return f"{name} must be at most {value} characters long (it has {len(error.instance)})"
    if kind == "format" and value in _FORMAT_WORDS:
        return f"{name} must be {_FORMAT_WORDS[value]}"
    if kind == "maxProperties":
        return f"{name} may have at most {value} keys (it has {len(error.instance)})"
    if kind == "minimum":
        return f"{name} must be at least {value}"
    if kind == "maximum":
        return f"{name} must be at most {value}"
    if kind in ("minItems", "maxItems"):
        side = "at least" if kind == "minItems" else "at most"
        return f"{name} must have {side} {value} item{'s' if value != 1 else ''}"
    return f"{name}: {error_message(error)}"


#: longest rendering of an offending value that an error message repeats back to the caller
MAX_ECHO = 80


def error_message(error: ValidationError) -> str:
    """jsonschema's message with the offending value shortened: a 60 KB value is not echoed back."""
    message = error.message
    if isinstance(error.instance, str | list | dict):
        shown = repr(error.instance)
        if len(shown) > MAX_ECHO:
            message = message.replace(shown, shown[: MAX_ECHO - 1] + "…")
    return message if len(message) <= 4 * MAX_ECHO else message[: 4 * MAX_ECHO - 1] + "…"
