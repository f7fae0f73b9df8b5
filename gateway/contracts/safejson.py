"""Safe JSON decoding for untrusted bodies (API requests and partner callbacks).

``json.loads`` alone turns hostile input into exceptions nobody expects: a
document nested a thousand levels deep raises ``RecursionError``, an integer of
5,000 digits ``ValueError``, ``\\ud800`` yields a string that cannot be encoded
again, ``NaN`` and ``1e999`` become floats no amount can be, and a duplicated
key silently keeps its last value (so two parsers may read two different
documents). ``decode_json`` refuses each of those with a ``BodyError`` that
names the JSON pointer of the offending value, and otherwise returns exactly
what ``json.loads`` would.

Text rules (``text_problem``) apply to every string, keys included: no lone
surrogates, no control characters other than tab, line feed and carriage
return (NUL included: PostgreSQL cannot store it), and none of the Unicode
bidirectional embedding/override/isolate controls (U+202A-U+202E,
U+2066-U+2069), which can make a name shown to a finance reviewer read
differently from what it is ("Trojan Source"). The marks U+200E/U+200F stay
allowed: they cannot reorder text beyond one character.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from gateway.errors import BadRequestError, ContractError, FieldError

__all__ = [
    "DEFAULT_LIMITS",
    "FORBIDDEN_TEXT",
    "TEXT_PATTERN",
    "BodyError",
    "JsonLimits",
    "TextError",
    "decode_json",
    "decode_partner_json",
    "plain_text",
    "text_problem",
]

#: characters no text field accepts (see the module docstring)
FORBIDDEN_TEXT = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
#: the rule as a JSON Schema ``pattern`` (ECMA 262) for API documents; stricter (no tab or line break either),
#: as instruction fields refuse every control character
TEXT_PATTERN = "^[^\\u0000-\\u001f\\u007f\\u202a-\\u202e\\u2066-\\u2069]*$"

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")


class BodyError(BadRequestError):
    """A body is not acceptable JSON (encoding, syntax, nesting, numbers, duplicate keys)."""

    default_message = "malformed JSON body"

    def __init__(self, message: str, *, pointer: str = "") -> None:
        super().__init__(message, errors=[FieldError(pointer, message)])
        self.pointer = pointer


class TextError(ContractError):
    """A string in a body carries a character no text field accepts."""

    default_message = "text contains a forbidden character"
    slug = "forbidden-character"


@dataclass(frozen=True)
class JsonLimits:
    """How much of a JSON document the decoder accepts."""

    #: deepest nesting of arrays and objects
    max_depth: int = 32
    #: longest integer literal, in digits (an amount in minor units needs 18)
    max_integer_digits: int = 30
    #: longest number literal of any kind (fraction and exponent included)
    max_number_chars: int = 40
    #: longest string, in characters (keys included)
    max_string_chars: int = 65536


DEFAULT_LIMITS = JsonLimits()


@dataclass(frozen=True)
class _Refused:
    """Stands in for a refused number while parsing; the walk afterwards reports it with its pointer."""

    message: str


class _Duplicated(dict):  # type: ignore[type-arg]
    """An object in which a key appeared twice (``duplicate``); the walk reports it with its pointer."""

    duplicate: str = ""


def _pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(items)
    if len(obj) == len(items):
        return obj
    seen: set[str] = set()
    marked = _Duplicated(obj)
    marked.duplicate = next(k for k, _ in items if k in seen or seen.add(k))  # type: ignore[func-returns-value]
    return marked


def _refuse_constant(name: str) -> _Refused:
    return _Refused(f"{name} is not a JSON value")


@functools.cache
def _decoder(limits: JsonLimits) -> json.JSONDecoder:
    """One decoder per set of limits, built once (a decoder per call cost a tenth of intake's decoding)."""

    def integer(literal: str) -> int | _Refused:
        digits = len(literal.lstrip("-"))
        if digits > limits.max_integer_digits:
            return _Refused(f"integer of {digits} digits; at most {limits.max_integer_digits} are accepted")
        return int(literal)

    def number(literal: str) -> float | _Refused:
        if len(literal) > limits.max_number_chars:
            return _Refused(f"number literal of {len(literal)} characters; at most {limits.max_number_chars}")
        value = float(literal)
        return value if math.isfinite(value) else _Refused(f"number {literal} is out of range")

    return json.JSONDecoder(
        object_pairs_hook=_pairs, parse_int=integer, parse_float=number, parse_constant=_refuse_constant
    )


def _escape(part: object) -> str:
    return str(part).replace("~", "~0").replace("/", "~1")


def _depth(text: str) -> int:
    """Deepest nesting of ``[``/``{`` outside strings (computed without recursion)."""
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", text))
    depth = deepest = 0
    for ch in brackets:
        if ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


def _walk(value: Any, pointer: str = "") -> Iterator[tuple[str, Any]]:
    """Every (pointer, value) pair, keys reported as ``(pointer-of-key, key)``; depth is already bounded."""
    yield pointer, value
    if isinstance(value, dict):
        for key, item in value.items():
            child = f"{pointer}/{_escape(key)}"
            yield child, key
            yield from _walk(item, child)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _walk(item, f"{pointer}/{index}")


def _check_depth(text: str, limits: JsonLimits) -> None:
    deepest = _depth(text)
    if deepest > limits.max_depth:
        raise BodyError(f"JSON nested {deepest} levels deep; at most {limits.max_depth} are accepted")


def _clean(value: Any, max_chars: int, depth: int, texts: bool = True) -> bool:
    """Whether nothing in ``value`` needs reporting (the fast check; ``_walk`` finds the pointer otherwise).

    Builds no pointer for the common case: a large body (a batch of 10,000 instructions) is
    checked several times faster than by walking it with pointers, and without recursion.
    ``depth``: how many more levels of arrays and objects may follow (the nesting limit,
    checked in the same walk). ``texts=False``: the strings' characters are known to be fine
    (only their length is checked). Anything else than plain JSON values (a refused number,
    an object with a duplicate key) is not clean.
    """
    search = FORBIDDEN_TEXT.search if texts else None
    if type(value) is str:
        return len(value) <= max_chars and (search is None or search(value) is None)
    pending = [(value, depth)]
    while pending:
        node, left = pending.pop()
        kind = type(node)
        if kind is dict:
            items: Iterable[tuple[Any, Any]] = node.items()
        elif kind is list:
            items = ((None, item) for item in node)
        elif kind in _SCALARS:
            continue
        else:  # _Refused, _Duplicated
            return False
        if left <= 0:
            return False
        left -= 1
        for key, item in items:
            if key is not None and (len(key) > max_chars or (search is not None and search(key) is not None)):
                return False
            kind = type(item)
            if kind is str:
                if len(item) > max_chars or (search is not None and search(item) is not None):
                    return False
            elif kind not in _SCALARS:
                pending.append((item, left))
    return True


#: the types of JSON's numbers, booleans and null as the decoder gives them (never reported)
_SCALARS = frozenset({int, float, bool, type(None)})


def text_problem(value: str) -> str | None:
    """What is wrong with ``value`` as text (``None`` when nothing is)."""
    bad = FORBIDDEN_TEXT.search(value)
    if bad is None:
        return None
    char = bad.group()
    if "\ud800" <= char <= "\udfff":
        return f"lone surrogate U+{ord(char):04X} at character {bad.start()} (not valid Unicode text)"
    if "\u202a" <= char <= "\u202e" or "\u2066" <= char <= "\u2069":
        return f"bidirectional control U+{ord(char):04X} at character {bad.start()} is not allowed in text"
    return f"control character U+{ord(char):04X} at character {bad.start()} is not allowed in text"


def plain_text(raw: bytes) -> bool:
    """Whether no string of the JSON ``decode_json`` takes from ``raw`` can hold a control character.

    ``decode_json`` refuses raw control characters, so one can only be written escaped, behind a
    backslash: a body without any is plain text throughout (``parse_instruction(plain_text=True)``).
    """
    return b"\\" not in raw


def decode_json(raw: bytes, limits: JsonLimits = DEFAULT_LIMITS) -> Any:
    """The JSON value of ``raw`` (strict UTF-8), or ``BodyError``/``TextError`` naming the failing pointer."""
    try:
        text = raw.decode("utf-8")  # strict: refuses encoded surrogates (ED A0 80…) and overlong forms
    except UnicodeDecodeError as exc:
        raise BodyError(f"body is not UTF-8 (byte {exc.start})") from None
    if text.startswith("\ufeff"):
        raise BodyError("body starts with a byte order mark; send plain UTF-8")
    try:
        # the hooks do not know where they are: they leave markers the walk below reports with their pointer
        doc = _decoder(limits).decode(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        _check_depth(text, limits)  # too deep is the first thing to say
        if isinstance(exc, RecursionError):  # pragma: no cover - the depth check refuses first
            raise BodyError("JSON nested too deeply") from None
        raise BodyError(f"malformed JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None
    # with no escape in the text, every string is a verbatim piece of it: one search covers them all
    texts_clean = "\\" not in text and FORBIDDEN_TEXT.search(text) is None
    if _clean(doc, limits.max_string_chars, limits.max_depth, not texts_clean):
        return doc
    _check_depth(text, limits)
    for pointer, value in _walk(doc):  # something is wrong: find where, with its pointer
        if isinstance(value, _Refused):
            raise BodyError(value.message, pointer=pointer)
        if isinstance(value, _Duplicated):
            key = value.duplicate
            raise BodyError(f"duplicate key {key!r}", pointer=f"{pointer}/{_escape(key)}")
        if isinstance(value, str):
            if len(value) > limits.max_string_chars:
                limit = limits.max_string_chars
                raise BodyError(f"string of {len(value)} characters; at most {limit}", pointer=pointer)
            problem = text_problem(value)
            if problem is not None:
                raise TextError(f"{pointer or '/'}: {problem}", errors=[FieldError(pointer, problem)])
    return doc


def decode_partner_json(raw: bytes, what: str, limits: JsonLimits = DEFAULT_LIMITS) -> Any:
    """``decode_json`` for a partner message: every refusal is a ``ContractError`` about ``what``."""
    try:
        return decode_json(raw, limits)
    except (BodyError, TextError) as exc:
        raise ContractError(f"{what} is not acceptable JSON: {exc.message}", errors=exc.errors) from None
