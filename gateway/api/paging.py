"""Parameters shared by the API's endpoints: allowed query names, page size, cursor, ids in paths."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, date, datetime, time

from gateway.domain.datetimes import parse_datetime
from gateway.errors import BadRequestError, NotFoundError

__all__ = [
    "PAGE_PARAMETERS",
    "allow_only",
    "date_bound",
    "page_cursor",
    "page_limit",
    "path_id",
]

#: the query parameters every paginated list takes
PAGE_PARAMETERS = ("limit", "cursor")


def allow_only(query: Mapping[str, str], *names: str) -> None:
    """400 for a query parameter the endpoint does not take, or one given twice: never silently ignored.

    ``query`` is the request's multi-dict: its ``items()`` hold a repeated name once per occurrence.
    """
    allowed = set(names)
    seen: set[str] = set()
    for name, _ in query.items():
        if name not in allowed:
            takes = ", ".join(sorted(allowed)) if allowed else "no query parameters"
            raise BadRequestError(f"unknown query parameter {name!r}; this endpoint takes {takes}")
        if name in seen:
            raise BadRequestError(f"query parameter {name!r} is given more than once; send it once")
        seen.add(name)


def page_limit(query: Mapping[str, str], default: int = 50) -> int:
    """``limit``: an integer from 1 to 200 (400 otherwise)."""
    try:
        limit = int(query.get("limit", str(default)))
    except ValueError:
        limit = 0
    if not 1 <= limit <= 200:
        raise BadRequestError("limit must be an integer from 1 to 200")
    return limit


def page_cursor(query: Mapping[str, str], pattern: re.Pattern[str]) -> str | None:
    """``cursor``: the ``next_cursor`` of an earlier page, checked against the ids it can be (400 otherwise)."""
    cursor = query.get("cursor")
    if cursor is not None and not pattern.fullmatch(cursor):
        raise BadRequestError("cursor is not one this API returned")
    return cursor


def path_id(value: str, pattern: re.Pattern[str], not_found: str) -> str:
    """An id from the path; one that cannot be an id this API hands out is a 404 saying ``not_found``."""
    if not pattern.fullmatch(value):
        raise NotFoundError(not_found)
    return value


def date_bound(name: str, value: str, end: bool) -> datetime:
    """A date-range query parameter: a date (from its start, or to its ``end``, UTC) or a date-time."""
    try:
        if len(value) == 10:
            day = date.fromisoformat(value)
            return datetime.combine(day, time.max if end else time.min, tzinfo=UTC)
        try:
            return parse_datetime(value)  # RFC 3339, what the OpenAPI document promises
        except ValueError:
            parsed = datetime.fromisoformat(value)  # older clients' ISO 8601 forms (no offset: UTC)
    except ValueError:
        raise BadRequestError(f"{name} must be an ISO 8601 date or date-time, e.g. 2026-01-31") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
