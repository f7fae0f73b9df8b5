"""A worker process of the parallel camt reader (``statements.parallel_camt``): runs of entries in, lines out.

Started as ``python -m gateway_adapters.iso20022_bank.camt_runs`` (this module and the readers it needs are all
it imports, whatever the program that starts it). It reads pickled tasks, the arguments of
``statements.read_run``, from its standard input, and writes each one's result, pickled, in the order they came,
to its standard output: the lines, or ``None`` when the run cannot be vouched for or could not be read (the
import then reads the file serially, which reports the problem). It ends at the end of its input.
"""

from __future__ import annotations

import pickle
import sys

from gateway.collector import collector_paused
from gateway_adapters.iso20022_bank.statements import read_run


def main() -> None:
    tasks, results = sys.stdin.buffer, sys.stdout.buffer
    while True:
        try:
            task = pickle.load(tasks)
        except EOFError:
            return
        try:
            with collector_paused():  # a run's objects make no cycles: freed by reference counting
                lines = read_run(*task)
        except Exception:
            lines = None
        pickle.dump(lines, results, protocol=pickle.HIGHEST_PROTOCOL)
        results.flush()


if __name__ == "__main__":
    main()
