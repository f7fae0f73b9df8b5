"""Logging set-up: ``text`` for people, ``json`` (one object per line) for log collectors.

What the gateway logs at INFO, each from one place: one access line per request
(``gateway.api.access``), one line per applied status transition
(``gateway.runtime``), per hold decision (``gateway.risk.holds``) and per partner
failure (``gateway.dispatch.dispatcher``, ``gateway.dispatch.scheduler``). Never a key, an account
number or a body. Libraries that would flood the screen (SQL statements, driver
chatter, the scheduler's every run) stay at WARNING even with ``-v``.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

from gateway.errors import ConfigError

__all__ = ["FORMATS", "JsonFormatter", "configure_logging"]

FORMATS = ("text", "json")
ENV_FORMAT = "GATEWAY_LOG_FORMAT"
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
#: a one-shot command that logs only problems speaks to the person who ran it: no timestamps
BRIEF_FORMAT = "gateway: %(levelname)s: %(message)s"

#: loggers kept at WARNING whatever the level: they log per statement, per operation or per run
QUIET_LOGGERS = ("sqlalchemy", "aiosqlite", "asyncpg", "alembic", "apscheduler", "aiohttp.access")

# attributes every LogRecord has; anything else on a record came from ``extra=``
_RECORD_FIELDS = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, the record's ``extra`` fields, exception."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _RECORD_FIELDS and not key.startswith("_"):
                doc[key] = value
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        return json.dumps(doc, default=str, ensure_ascii=False)


class _Handler(logging.StreamHandler):  # type: ignore[type-arg]
    """The handler ``configure_logging`` installs (found again and replaced on a second call)."""


def configure_logging(
    fmt: str | None = None,
    verbose: bool = False,
    *,
    level: int = logging.INFO,
    stream: TextIO | None = None,
) -> None:
    """Log to ``stream`` (stderr) in ``fmt`` (default: ``GATEWAY_LOG_FORMAT``, else ``text``).

    ``verbose`` lowers the gateway's level to DEBUG; the libraries in ``QUIET_LOGGERS``
    stay at WARNING. Text above INFO (a one-shot command) is brief: ``gateway: WARNING: …``.
    Calling it again replaces the earlier set-up.
    """
    source = "--log-format"
    if fmt is None:
        fmt = os.environ.get(ENV_FORMAT) or "text"
        source = ENV_FORMAT
    if fmt not in FORMATS:
        raise ConfigError(f"{source}: unknown log format {fmt!r}; choose text or json")
    handler = _Handler(stream or sys.stderr)
    brief = not verbose and level > logging.INFO
    handler.setFormatter(
        JsonFormatter() if fmt == "json" else logging.Formatter(BRIEF_FORMAT if brief else TEXT_FORMAT)
    )
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _Handler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else level)
    # A server logs several lines per request: skip what no format here shows (the logging HOWTO's
    # "Optimization": caller file and line, thread, process) so a record costs less to make.
    logging._srcfile = None  # type: ignore[attr-defined]
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
