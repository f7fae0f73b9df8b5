"""Date-times from untrusted messages: one strict RFC 3339 parser, used by format checks and readers alike.

``datetime.fromisoformat`` accepts far more than RFC 3339 (no offset, a space,
week dates, non-ASCII digits in some versions) and refuses some of it (a leap
second, ``23:59:60Z``), so a contract's ``format: date-time`` check and the code
that reads the value used to disagree. ``parse_datetime`` is the single rule:
the JSON Schema format checker (``gateway.contracts.strict_schema``) calls it, and so do
the partner readers, so whatever passes the contract can be read.

Choices (docs/design-notes.md): an offset is required (``Z`` or ``±HH:MM``); a
leap second (``23:59:60`` UTC, whatever the offset) is accepted and read as
``23:59:59.999999`` (Python cannot represent ``:60``); fractions beyond microseconds are truncated; the result is
timezone-aware, in UTC, within years 0001-9999 after conversion.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

__all__ = ["MAX_UNIX_SECONDS", "datetime_from_unix", "is_datetime", "parse_datetime"]

_RFC3339 = re.compile(
    r"(?P<year>[0-9]{4})-(?P<month>[0-9]{2})-(?P<day>[0-9]{2})[Tt]"
    r"(?P<hour>[0-9]{2}):(?P<minute>[0-9]{2}):(?P<second>[0-9]{2})(?:\.(?P<fraction>[0-9]+))?"
    r"(?P<offset>[Zz]|(?P<sign>[+-])(?P<off_hour>[0-9]{2}):(?P<off_minute>[0-9]{2}))"
)
#: 9999-12-31T23:59:59Z, the last second a ``datetime`` can hold
MAX_UNIX_SECONDS = 253_402_300_799


def parse_datetime(value: str) -> datetime:
    """The UTC ``datetime`` of an RFC 3339 ``date-time``; ``ValueError`` for anything else."""
    if not isinstance(value, str) or len(value) > 64:
        raise ValueError("not an RFC 3339 date-time")
    m = _RFC3339.fullmatch(value)
    if m is None:
        raise ValueError(f"not an RFC 3339 date-time: {value[:40]!r}")
    second = int(m["second"])
    leap = second == 60
    fraction = (m["fraction"] or "").ljust(6, "0")[:6]
    offset = timedelta(0)
    if m["sign"]:
        off_hour, off_minute = int(m["off_hour"]), int(m["off_minute"])
        if off_hour > 23 or off_minute > 59:
            raise ValueError(f"offset out of range: {value[:40]!r}")
        offset = timedelta(hours=off_hour, minutes=off_minute) * (-1 if m["sign"] == "-" else 1)
    try:
        parsed = datetime(
            int(m["year"]),
            int(m["month"]),
            int(m["day"]),
            int(m["hour"]),
            int(m["minute"]),
            59 if leap else second,
            999_999 if leap else int(fraction),
            tzinfo=timezone(offset),
        )
        utc = parsed.astimezone(UTC)
    except (ValueError, OverflowError):
        raise ValueError(f"date-time out of range: {value[:40]!r}") from None
    if leap and (utc.hour, utc.minute) != (23, 59):
        raise ValueError(f"a leap second is only ever 23:59:60 UTC: {value[:40]!r}")
    return utc


def is_datetime(value: object) -> bool:
    """Whether ``value`` is a string ``parse_datetime`` reads (what ``format: date-time`` checks)."""
    if not isinstance(value, str):
        return True  # formats only constrain strings
    try:
        parse_datetime(value)
    except ValueError:
        return False
    return True


def datetime_from_unix(seconds: int) -> datetime:
    """The UTC ``datetime`` of a Unix timestamp in seconds; ``ValueError`` outside years 1970-9999."""
    if isinstance(seconds, bool) or not isinstance(seconds, int) or not 0 <= seconds <= MAX_UNIX_SECONDS:
        raise ValueError(f"Unix timestamp out of range: {str(seconds)[:20]}")
    return datetime.fromtimestamp(seconds, UTC)
