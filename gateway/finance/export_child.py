"""The export's child process (``gateway.finance.offload``): ``python -m gateway.finance.export_child``.

It reads its job pickled from standard input, which only its parent writes, runs it, and answers
with JSON lines on stdout (progress, then the result). A failure is one line on standard error and
exit status ``REFUSED`` (2) or ``SYSTEM_ERROR`` (3).
"""

from __future__ import annotations

import asyncio
import json
import pickle
import sys
from pathlib import Path
from typing import Any

from gateway.domain.clock import system_clock
from gateway.errors import GatewayError
from gateway.finance.lake import DATASETS, MANIFEST, Exporter
from gateway.finance.offload import REFUSED, SYSTEM_ERROR
from gateway.store.db import create_engine
from gateway.store.watermarks import watermarks

__all__ = ["main"]


def _say(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


async def _run(job: dict[str, Any]) -> dict[str, Any]:
    settings = job["settings"]
    chosen = Exporter.select(job["names"]) if job.get("names") else None  # an unknown name fails before connecting
    engine = create_engine(job["database"]["url"], schema=job["database"]["schema"])
    try:
        out = Path(job.get("out") or settings.export.dir)
        exporter = Exporter(engine, out, system_clock, chunk_rows=settings.export.chunk_rows)
        progress = (lambda name, done, total: _say({"progress": [name, done, total]})) if job.get("progress") else None
        result = await exporter.run([d.name for d in chosen] if chosen else None, progress=progress)
    finally:
        await engine.dispose()
    return {
        "folder": str(out),
        "manifest": str(result.manifest) if result.manifest else None,
        "datasets": {
            d.name: {"rows": d.rows, "files": d.files, "from_key": d.from_key, "to_key": d.to_key, "removed": d.removed}
            for d in result.datasets
        },
    }


async def _status(job: dict[str, Any]) -> dict[str, Any]:
    engine = create_engine(job["database"]["url"], schema=job["database"]["schema"])
    try:
        async with engine.connect() as conn:
            marks = await watermarks(conn)
    finally:
        await engine.dispose()
    return {
        "datasets": [*DATASETS, MANIFEST],
        "watermarks": {n: {**m, "updated_at": m["updated_at"].isoformat()} for n, m in marks.items()},
    }


def main() -> int:
    job = pickle.loads(sys.stdin.buffer.read())
    work = _run if job["command"] == "run" else _status
    try:
        result = asyncio.run(work(job))
    except GatewayError as exc:
        print(exc.message, file=sys.stderr)
        return REFUSED
    except OSError as exc:
        print(str(exc), file=sys.stderr)
        return SYSTEM_ERROR
    _say({"result": result})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
