"""Contract validation benchmark: validations per second on the gateway's path against plain jsonschema.

In one run, alternately and on the same instances, it measures:

* ``gateway``  ``ContractRegistry.errors(...)`` -- the intake's path: the cached
               validator, every error collected, ordered (``best_match`` first)
               and turned into JSON pointers;
* ``plain``    a reused ``jsonschema.Draft202012Validator`` on the same schema
               (same format checker), ``list(iter_errors(instance))`` -- the
               floor for "collect every error";
* ``rebuilt``  the same, but building the validator for every call -- what not
               caching would cost.

It prints a rich table with validations/s (median over ``--rounds``) and the
gateway/plain ratio; with ``--json`` the last stdout line is one JSON object.

    .venv/bin/python bench/contracts.py                  # 3 rounds x 0.3 s per case and target
    .venv/bin/python bench/contracts.py --seconds 1 --json

Not part of the test suite; single process, no I/O.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from jsonschema import Draft202012Validator

from gateway.contracts.registry import contracts


def _cases() -> list[tuple[str, str, Any]]:
    registry = contracts()
    v11 = registry.schema("instruction", "1.1")["examples"][0]
    v20 = registry.schema("instruction", "2.0")["examples"]
    invalid = copy.deepcopy(v11)
    invalid.update(amount=12.5, currency="EURO", colour="blue")
    invalid["creditor"]["account"] = {"iban": "SE45", "wallet": "w"}
    return [
        ("1.1 valid", "1.1", v11),
        ("2.0 valid (unstructured)", "2.0", v20[0]),
        ("2.0 valid (structured)", "2.0", v20[1]),
        ("1.1 invalid (4 errors)", "1.1", invalid),
    ]


def _rate(fn: Callable[[], object], seconds: float) -> float:
    calls = 0
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        for _ in range(50):
            fn()
        calls += 50
        now = time.perf_counter()
        if now >= deadline:
            return calls / (now - start)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=0.3, help="time per case, target and round (default 0.3)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; medians are reported (default 3)")
    parser.add_argument("--json", action="store_true", help="print one JSON object as the last stdout line")
    args = parser.parse_args(argv)

    registry = contracts()
    results: list[dict[str, Any]] = []
    for name, version, instance in _cases():
        schema = registry.schema("instruction", version)
        fmt = Draft202012Validator.FORMAT_CHECKER
        plain = Draft202012Validator(schema, registry=registry.resources, format_checker=fmt)
        expected = len(registry.errors("instruction", instance, version))
        assert (expected == 0) == plain.is_valid(instance), name  # both agree on validity
        targets: dict[str, Callable[[], object]] = {
            "gateway": lambda i=instance, v=version: registry.errors("instruction", i, v),
            "plain": lambda i=instance, p=plain: list(p.iter_errors(i)),
            "rebuilt": lambda i=instance, s=schema, f=fmt: list(
                Draft202012Validator(s, registry=registry.resources, format_checker=f).iter_errors(i)
            ),
        }
        rates: dict[str, list[float]] = {t: [] for t in targets}
        for _ in range(args.rounds):
            for target, fn in targets.items():  # alternate, so drift hits every target alike
                rates[target].append(_rate(fn, args.seconds))
        med = {t: statistics.median(r) for t, r in rates.items()}
        results.append(
            {
                "case": name,
                "version": version,
                "errors": expected,
                "gateway_per_s": round(med["gateway"]),
                "plain_per_s": round(med["plain"]),
                "rebuilt_per_s": round(med["rebuilt"]),
                "gateway_vs_plain": round(med["gateway"] / med["plain"], 3),
            }
        )

    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"Contract validation, validations/s (median of {args.rounds} x {args.seconds} s)")
    for column in ("case", "errors", "gateway", "plain (reused)", "gateway / plain", "plain (rebuilt per call)"):
        table.add_column(column, justify="left" if column == "case" else "right")
    for r in results:
        table.add_row(
            r["case"],
            str(r["errors"]),
            f"{r['gateway_per_s']:,}",
            f"{r['plain_per_s']:,}",
            f"{r['gateway_vs_plain']:.2f}",
            f"{r['rebuilt_per_s']:,}",
        )
    Console().print(table)
    if args.json:
        print(json.dumps({"bench": "contracts", "rounds": args.rounds, "seconds": args.seconds, "results": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
