"""Why a database cannot be reached, in words: host:port and the cause, never just an exception class."""

from __future__ import annotations

import socket
from pathlib import Path

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError

__all__ = ["describe_connect_error", "sqlite_path"]

#: PostgreSQL SQLSTATE codes a newcomer meets when connecting, and what to do about each
_SQLSTATE_HINTS = {
    "3D000": "create it (createdb {database}) or fix the URL",
    "28000": "create the role or fix the user in the URL",
    "28P01": "fix the password in the URL",
}


def sqlite_path(url: str) -> Path | None:
    """The absolute file of a SQLite URL (None: not SQLite, or in memory)."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return None
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return None
    return Path(parsed.database).resolve()


def _postgres_cause(exc: BaseException, parsed: URL) -> str:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        seen.append(current)
        current = getattr(current, "orig", None) or current.__cause__
    for error in seen:
        sqlstate = getattr(error, "sqlstate", None)
        if sqlstate:
            said = str(error).splitlines()[0].replace('"', "")
            hint = _SQLSTATE_HINTS.get(sqlstate)
            return f"{said}; {hint.format(database=parsed.database)}" if hint else said
    for error in seen:
        if isinstance(error, socket.gaierror):
            return f"host {parsed.host} cannot be resolved; fix the host in the URL"
        if isinstance(error, ConnectionRefusedError):
            return "nothing is listening there (connection refused); start PostgreSQL or fix the host and port"
        if isinstance(error, TimeoutError):
            return "no answer (timed out); check the host, the port and any firewall"
        if isinstance(error, OSError) and error.strerror:
            return error.strerror
    first = seen[-1]
    return str(first).splitlines()[0] if str(first) else type(first).__name__


def describe_connect_error(exc: BaseException, url: str, origin: str) -> str:
    """One line: which database could not be opened, where its URL came from (``origin``), and why.

    The URL itself is never echoed: it may hold a password.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        path = sqlite_path(url) or ":memory:"
        cause = exc.orig if isinstance(exc, DBAPIError) else exc
        reason = getattr(cause, "strerror", None) or str(cause).splitlines()[0] or type(cause).__name__
        return f"cannot open the SQLite database {path} (database.url from {origin}): {reason}"
    where = f"{parsed.host or 'localhost'}:{parsed.port or 5432}"
    return f"cannot connect to PostgreSQL at {where} (database.url from {origin}): {_postgres_cause(exc, parsed)}"
