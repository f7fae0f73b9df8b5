"""Query parameters shared by the API's list endpoints: page size and cursor."""

from __future__ import annotations

import re
from collections.abc import Mapping

from gateway.errors import BadRequestError

__all__ = ["page_cursor", "page_limit"]


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
