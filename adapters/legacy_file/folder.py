"""The hand-off folder: payments waiting for a cut-off, the files the old system picks up, and their journal.

Layout under the adapter's ``dir`` (every write is temp file + fsync + rename + fsync of the
directory, so a crash leaves the old or the new version of a file, never half of one)::

    handoff-<UTC time>-<n>.jsonl     the files the old system picks up: one JSON object per line (docs/go-live.md)
    .gateway/entries/<key>.json      one per instruction: its line, and the file it went into (``file``)
    .gateway/files/<name>.json       the journal of each file: its lines, written *before* the file itself
    .gateway/.lock                   held (``flock``) by the process changing anything

A cut-off writes the journal, then the file, then marks the entries; a run first finishes
what a crashed run left (a journal whose file was not written yet is written; entries of a
journalled file are marked), so a payment is handed off in exactly one file. The old system
may move or delete the files it picked up: the journal stays.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import json
import os
import re
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

from gateway.store.atomic import write_atomic as store_atomic

__all__ = ["HandoffFolder", "write_atomic"]

_SAFE = re.compile(r"^[A-Za-z0-9_.-]{1,100}$")


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` whole or not at all (``gateway.store.atomic``), its folder made private first."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    store_atomic(path, data)


def _read(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None


def _dump(data: dict[str, Any]) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":")).encode()


class HandoffFolder:
    """Entries and hand-off files on disk, shared safely by the processes of one machine (``exclusive``)."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        self.state = self.root / ".gateway"
        self.entries_dir = self.state / "entries"
        self.journal_dir = self.state / "files"

    @contextlib.asynccontextmanager
    async def exclusive(self, poll_seconds: float = 0.02) -> AsyncIterator[None]:
        """Hold the folder's lock across processes; waits without blocking the event loop."""
        self.state.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(self.state / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    await asyncio.sleep(poll_seconds)
            yield
        finally:
            os.close(fd)  # closing the descriptor releases the lock

    @staticmethod
    def key(instruction_id: str) -> str:
        if _SAFE.fullmatch(instruction_id):
            return instruction_id
        return "h" + hashlib.sha256(instruction_id.encode()).hexdigest()[:40]

    def entry(self, instruction_id: str) -> dict[str, Any] | None:
        return _read(self.entries_dir / f"{self.key(instruction_id)}.json")

    def put_entry(self, instruction_id: str, entry: dict[str, Any]) -> None:
        write_atomic(self.entries_dir / f"{self.key(instruction_id)}.json", _dump(entry))

    def pending(self) -> list[dict[str, Any]]:
        """Entries not in a file yet, oldest first."""
        found = [e for p in self.entries_dir.glob("*.json") if (e := _read(p)) is not None and not e.get("file")]
        return sorted(found, key=lambda e: (e["handed_at"], e["line"]["instruction_id"]))

    def journals(self) -> list[dict[str, Any]]:
        return [j for p in sorted(self.journal_dir.glob("*.json")) if (j := _read(p)) is not None]

    def finish(self) -> None:
        """Complete what a crashed cut-off left: write journalled files not yet written, mark their entries."""
        for journal in self.journals():
            if not journal.get("written"):
                body = b"".join(_dump(line) + b"\n" for line in journal["lines"])
                write_atomic(self.root / journal["name"], body)
                write_atomic(self.journal_dir / f"{journal['name']}.json", _dump({**journal, "written": True}))
            for line in journal["lines"]:
                entry = self.entry(line["instruction_id"])
                if entry is not None and entry.get("file") != journal["name"]:
                    self.put_entry(line["instruction_id"], {**entry, "file": journal["name"]})

    def cut(self, now: datetime) -> str | None:
        """Put every pending entry in one new hand-off file; its name, or ``None`` when nothing was pending."""
        self.finish()
        pending = self.pending()
        if not pending:
            return None
        stamp = f"{now:%Y%m%dT%H%M%SZ}"
        taken = {j["name"] for j in self.journals()}
        n = 1
        while f"handoff-{stamp}-{n}.jsonl" in taken:
            n += 1
        name = f"handoff-{stamp}-{n}.jsonl"
        journal = {"name": name, "cut_at": now.isoformat(), "lines": [e["line"] for e in pending], "written": False}
        write_atomic(self.journal_dir / f"{name}.json", _dump(journal))
        self.finish()
        return name
