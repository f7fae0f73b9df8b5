"""Inbox folders: files dropped by other systems, taken once they have settled, moved aside when processed.

Used by the pain.001 file inbox (``gateway.intake.files``) and the statement inbox
(``gateway.recon.fetch``): a file is taken only when it has not changed for a second (a writer
may still be at it), and once processed it is moved to a folder beside it (``done/``,
``failed/``, …) with, for a refused one, a ``<name>.reason.txt`` saying why. A file is never
moved over another.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterable
from pathlib import Path

from gateway.errors import GatewayError

__all__ = ["SETTLE_SECONDS", "move_aside", "reason_text", "settled_files"]

#: a file unchanged for this long is complete
SETTLE_SECONDS = 1.0


def settled_files(entries: Iterable[Path], suffixes: Iterable[str] | None = None) -> list[Path]:
    """Regular files (of ``suffixes``, any if None; never hidden ones) not changed for a second, oldest name first."""
    wanted = None if suffixes is None else {s.lower() for s in suffixes}
    now = time.time()
    found = []
    for path in entries:
        if path.name.startswith(".") or (wanted is not None and path.suffix.lower() not in wanted):
            continue
        if not path.is_file():
            continue
        with contextlib.suppress(OSError):
            if now - path.stat().st_mtime >= SETTLE_SECONDS:
                found.append(path)
    return sorted(found)


def reason_text(exc: GatewayError) -> str:
    """Why a file was refused: the error's line, then each failing field."""
    lines = [exc.message, *(f"{e.pointer}: {e.message}" for e in exc.errors)]
    return "\n".join(lines) + "\n"


def move_aside(path: Path, where: str, reason: str | None) -> Path:
    """Move a processed inbox file to the folder ``where`` beside it (never over another), with its reason file."""
    folder = path.parent / where
    folder.mkdir(exist_ok=True)
    target = folder / path.name
    if target.exists():
        target = folder / f"{path.stem}.{int(time.time() * 1000)}{path.suffix}"
    os.replace(path, target)
    if reason is not None:
        (folder / f"{target.name}.reason.txt").write_text(reason, encoding="utf-8")
    return target
