"""Worker processes of the gateway's parallel reads: a child per task, talking over its standard input and output.

Used by the parallel camt reader (``gateway_adapters.iso20022_bank.statements.parallel_camt``: runs of entries
in, lines out) and by reconciliation runs on SQLite (``gateway.recon.line_reader``: the open statement lines
read in a child while the run reads the payments). A worker is a process of its own, ``python -m <module>``:
not a fork (the parent has threads: the SQLite driver's, the event loop's executor) nor multiprocessing's
spawn (which imports the parent's main module, CLI and all, in each worker). It imports only its module and
what that needs.

``write_frame`` / ``read_frame`` carry bytes in frames of a length and a body; a reader that gets ``None`` where
it expected a frame knows the worker is gone (killed, crashed) before it said all it had to say.
"""

from __future__ import annotations

import contextlib
import struct
import subprocess
import sys
from collections.abc import Sequence
from typing import BinaryIO

__all__ = ["end_worker", "read_frame", "start_worker", "worker_command", "write_frame"]

_LENGTH = struct.Struct("<Q")


def worker_command(module: str) -> list[str]:
    """The command that runs ``module`` as a worker, with this interpreter."""
    return [sys.executable, "-m", module]


def start_worker(command: Sequence[str]) -> subprocess.Popen[bytes]:
    """A worker process with pipes to its standard input and output (its standard error is this process's)."""
    return subprocess.Popen(list(command), stdin=subprocess.PIPE, stdout=subprocess.PIPE)


def end_worker(worker: subprocess.Popen[bytes], *, kill: bool) -> int:
    """Close ``worker``'s pipes and wait for it (killed first if ``kill``: what it still does is not wanted); its
    exit status."""
    if kill:
        worker.kill()
    if worker.stdin is not None:
        with contextlib.suppress(OSError):
            worker.stdin.close()
    status = worker.wait()
    if worker.stdout is not None:
        worker.stdout.close()
    return status


def write_frame(stream: BinaryIO, body: bytes) -> None:
    """One frame: ``body``'s length, then ``body``."""
    stream.write(_LENGTH.pack(len(body)))
    stream.write(body)


def read_frame(stream: BinaryIO) -> bytes | None:
    """The body of the next frame; ``None`` if the stream ends before a whole frame (the writer is gone)."""
    head = stream.read(_LENGTH.size)
    if head is None or len(head) < _LENGTH.size:
        return None
    (size,) = _LENGTH.unpack(head)
    body = stream.read(size)
    if body is None or len(body) < size:
        return None
    return body
