"""The adapter's durable spool: entries waiting for a cut-off, and the files made from them.

Layout under ``spool_dir`` (every write is temp file + fsync + rename + fsync of the directory,
so a crash leaves either the old or the new version of a file, never half of one)::

    state.json              {"sequence": <last trace sequence>, "last_cutoff": <ISO time or null>}
    entries/<key>.json      one per instruction: the entry, its trace number, and the file it went in
    files/<file id>.json    one per built file: its NACHA text, entry keys, state (pending|delivered|rejected)

An entry belongs to a file once its ``file_id`` is set; a file is written *before* its
entries are marked, and a run first finishes what a crashed run left (marks the entries
of every file it finds, delivers every pending file), so an entry is filed once and a
file, resent with its id as idempotency key, is booked once.

Several gateway processes on one machine may share a spool directory: every change
(a new trace sequence, an entry, a cut-off run with its delivery) happens while the
process holds ``.lock`` (an exclusive ``flock``), so two processes never build a file
from the same entries, never hand out one trace number twice and never both send one file.
The kernel drops the lock of a killed process. Processes on different machines each
need a spool directory of their own (``flock`` over a network filesystem is not trusted).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import json
import os
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

from gateway.store.atomic import write_atomic

__all__ = ["Spool"]

_SAFE = re.compile(r"^[A-Za-z0-9_.-]{1,100}$")


def _write_atomic(path: Path, data: dict[str, Any]) -> None:
    write_atomic(path, json.dumps(data, sort_keys=True).encode())


def _read(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None


class Spool:
    """Entries and files on disk, shared safely by the processes of one machine (see ``exclusive``)."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        self.entries_dir = self.root / "entries"
        self.files_dir = self.root / "files"
        self._state_path = self.root / "state.json"

    def _write(self, path: Path, data: dict[str, Any]) -> None:
        # made on the first write, not on construction: `gateway route explain` builds adapters and writes nothing
        for d in (self.root, path.parent):
            # account numbers are in here: owner only
            d.mkdir(mode=0o700, parents=True, exist_ok=True)
        _write_atomic(path, data)

    @contextlib.asynccontextmanager
    async def exclusive(self, poll_seconds: float = 0.02) -> AsyncIterator[None]:
        """Hold the spool's lock across processes; waits without blocking the event loop."""
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(self.root / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
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

    # -- state ---------------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        return _read(self._state_path) or {"sequence": 0, "last_cutoff": None}

    def set_state(self, **changes: Any) -> None:
        self._write(self._state_path, {**self.state(), **changes})

    def next_sequence(self) -> int:
        """A new trace sequence (1..9 999 999), durable before it is used: a crash leaves a gap, never a repeat."""
        seq = self.state()["sequence"] % 9_999_999 + 1
        self.set_state(sequence=seq)
        return seq

    # -- entries -------------------------------------------------------------------------

    @staticmethod
    def key(instruction_id: str) -> str:
        if _SAFE.fullmatch(instruction_id):
            return instruction_id
        return "h" + hashlib.sha256(instruction_id.encode()).hexdigest()[:40]

    def entry(self, instruction_id: str) -> dict[str, Any] | None:
        return _read(self.entries_dir / f"{self.key(instruction_id)}.json")

    def put_entry(self, instruction_id: str, entry: dict[str, Any]) -> None:
        self._write(self.entries_dir / f"{self.key(instruction_id)}.json", entry)

    def entries(self) -> Iterator[dict[str, Any]]:
        for path in sorted(self.entries_dir.glob("*.json")):
            data = _read(path)
            if data is not None:
                yield data

    def pending_entries(self) -> list[dict[str, Any]]:
        return [e for e in self.entries() if not e.get("file_id")]

    # -- files ---------------------------------------------------------------------------

    def file(self, file_id: str) -> dict[str, Any] | None:
        return _read(self.files_dir / f"{file_id}.json")

    def put_file(self, record: dict[str, Any]) -> None:
        self._write(self.files_dir / f"{record['file_id']}.json", record)

    def files(self) -> list[dict[str, Any]]:
        return [d for p in sorted(self.files_dir.glob("*.json")) if (d := _read(p)) is not None]
