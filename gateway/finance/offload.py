"""The data-lake export, run in a child process (``python -m gateway.finance.export_child``).

Neither the serving process nor the ``gateway`` command line loads Arrow and Parquet (about 65 MB of
resident memory), and neither holds an export's chunk buffers: the scheduled export
(``export.scheduled``) and ``gateway export run`` / ``status`` start one short-lived child, which
does the work and exits (docs/data-export.md, "Where the export runs"). The child gets its job
(the settings, and the database as URL and PostgreSQL schema) through a pipe, never on disk or on
its command line. Killing it at any moment is safe: the export resumes from its watermarks.

The child answers on stdout with JSON lines: ``{"progress": [dataset, done, total]}`` while it
works, then ``{"result": …}``; a failure is one line on stderr, exit status 2 for a refusal (an
unknown dataset, a watermark moved) and 3 for the operating system's error (a full disk).
"""

from __future__ import annotations

import asyncio
import json
import pickle
import sys
from collections.abc import Callable
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.config import Settings
from gateway.store.watermarks import ExportError

__all__ = ["CHILD", "REFUSED", "SYSTEM_ERROR", "ExportProcessError", "export_in_child", "run_in_child"]

#: the module the child runs (``python -m``)
CHILD = "gateway.finance.export_child"
#: the child's exit status for a refusal (``ExportError`` and other gateway errors) and for an OS error
REFUSED, SYSTEM_ERROR = 2, 3

Progress = Callable[[str, int, int], None]


class ExportProcessError(ExportError):
    """The export's child process failed; ``status`` is its exit status (``REFUSED``, ``SYSTEM_ERROR``, other)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


async def _database(engine: AsyncEngine) -> dict[str, Any]:
    """What the child needs to open the same database: the URL and, on PostgreSQL, the schema in use."""
    url = engine.url.render_as_string(hide_password=False)
    schema = None
    if engine.dialect.name == "postgresql":
        async with engine.connect() as conn:
            schema = await conn.scalar(text("SELECT current_schema()"))
    return {"url": url, "schema": schema}


async def run_in_child(
    engine: AsyncEngine, settings: Settings, command: str, on_progress: Progress | None = None, **options: Any
) -> Any:
    """Run ``command`` (``run`` or ``status``) in a child process; its result (``ExportProcessError`` if it failed).

    ``on_progress(dataset, done, total)`` is called as the child reports progress (it reports only if given).
    """
    job = {"command": command, "settings": settings, "database": await _database(engine), **options}
    job["progress"] = on_progress is not None
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        CHILD,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        limit=1 << 22,
    )
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    try:
        proc.stdin.write(pickle.dumps(job))
        await proc.stdin.drain()
        proc.stdin.close()
        errors = asyncio.ensure_future(proc.stderr.read())
        result: Any = None
        async for raw in proc.stdout:
            message = json.loads(raw)
            if "progress" in message:
                if on_progress is not None:
                    on_progress(*message["progress"])
            else:
                result = message["result"]
        err = await errors
        status = await proc.wait()
    except BaseException:  # cancelled (the scheduler stops, Ctrl-C): the child stops too; the next run resumes
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        raise
    if status != 0:
        lines = err.decode("utf-8", "replace").strip().splitlines()
        raise ExportProcessError(lines[-1] if lines else f"the export process ended with status {status}", status)
    return result


async def export_in_child(engine: AsyncEngine, settings: Settings) -> int:
    """One export of every dataset to ``export.dir`` in a child process; the rows it exported."""
    result = await run_in_child(engine, settings, "run")
    return int(sum(d["rows"] for d in result["datasets"].values()))
