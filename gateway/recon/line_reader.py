"""The worker that reads a large run's open statement lines from SQLite while the run reads its payments.

Started by ``gateway.recon.matching.LineReader`` as ``python -m gateway.recon.line_reader`` (``gateway.workers``):
it imports only this, ``gateway.recon.keys``, ``gateway.workers`` and the standard library. It reads one pickled
job from its standard input, ``(path, sql, params)``: the database file and the compiled SELECT of
``matching.open_lines_query``. It opens the file read-only (WAL: readers do not block the writer nor each other),
runs the SELECT in one read transaction, and writes the rows as ``keys.line_values`` makes them, ``BATCH`` at a
time, each a ``marshal``'d list in a frame (``gateway.workers.write_frame``), then an empty frame: the end. Any
failure ends it with a non-zero status and no end frame, and the run reads the lines itself.
"""

from __future__ import annotations

import gc
import marshal
import pickle
import sqlite3
import sys
from urllib.parse import quote

from gateway.recon.keys import line_values
from gateway.workers import write_frame

#: rows to a frame
BATCH = 20_000


def main() -> None:
    gc.disable()  # a million rows' values made and dropped, no reference cycles (``gateway.collector``)
    path, sql, params = pickle.load(sys.stdin.buffer)
    out = sys.stdout.buffer
    db = sqlite3.connect(f"file:{quote(path)}?mode=ro", uri=True, isolation_level=None)
    try:
        db.execute("BEGIN")  # one snapshot for the whole SELECT
        cursor = db.execute(sql, params)
        while rows := cursor.fetchmany(BATCH):
            write_frame(out, marshal.dumps(line_values(rows)))
        db.execute("COMMIT")
    finally:
        db.close()
    write_frame(out, b"")
    out.flush()


if __name__ == "__main__":
    main()
