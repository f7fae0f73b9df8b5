"""Batch intake benchmark: instructions per second accepted through ``POST /v1/instruction-batches``.

In one run, on one SQLite file, it measures:

* ``gateway``    the real ``gateway serve`` process on a fresh SQLite database: one
                 ``POST /v1/instruction-batches`` of ``--size`` instructions (default 10,000)
                 per round, timed from the first byte sent to the 202 (auth, JSON decoding,
                 the compiled contract pre-check, parsing, field encryption, one
                 transaction through the group-committing writer);
* ``executemany`` the baseline: the very rows that batch wrote (instructions, their
                 ``received`` events, their outbox rows), copied under new ids and written
                 with raw ``sqlite3`` ``executemany`` in one transaction into the same file,
                 after the gateway has stopped (nothing else holds the file).

and prints both with their ratio (medians over ``--rounds``), and both again per CPU
second: the gateway process's CPU time over the request (every thread, from ``/proc``)
and the baseline's own, so that runs on a shared, loaded machine stay comparable; the
client's CPU per instruction is printed apart (the body is built before the clock starts,
the answer decoded after it stops). Between rounds the bench
waits until the gateway is idle: its dispatcher rejects each accepted instruction
(``partners: {}``, ``NO_ROUTE``) in the background, and that work must not be timed
as the next batch's.

    .venv/bin/python bench/batch.py                 # 3 rounds of 10,000
    .venv/bin/python bench/batch.py --json          # + one JSON object, last stdout line
    .venv/bin/python bench/batch.py --size 2000 --rounds 5

Targets (issue 15): ≥ 20,000 instructions/s and ≥ 0.3 x executemany. All traffic stays
on 127.0.0.1. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import http.client
import json
import os
import secrets
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from gateway.contracts.registry import contracts

HOST = "127.0.0.1"
PATH = "/v1/instruction-batches"
CLK_TCK = os.sysconf("SC_CLK_TCK")
#: the contract's example instruction; the reference is replaced per item
EXAMPLE: dict[str, Any] = contracts().schema("instruction", "1.0")["examples"][0]
EXECUTION_DATE = (datetime.now(UTC).date() + timedelta(days=7)).isoformat()
#: what ``executemany`` copies: the tables a batch writes one row per instruction into
TABLES = ("instructions", "instruction_events", "outbox")
TARGET_RATE = 20_000
TARGET_RATIO = 0.3


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


class BenchError(Exception):
    """Something around the measurement failed (the server did not start, a batch was refused, ...)."""


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}


def gateway_command() -> list[str]:
    script = Path(sys.executable).parent / "gateway"
    return [str(script)] if script.exists() else [sys.executable, "-m", "gateway.cli"]


def run_cli(args: list[str], config: Path) -> str:
    proc = subprocess.run(
        [*gateway_command(), "--config", str(config), *args],
        capture_output=True,
        text=True,
        env=_clean_env(),
        timeout=120,
        check=False,
    )
    if proc.returncode != 0:
        raise BenchError(f"`gateway {' '.join(args)}` failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc.stdout.strip()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    log_path: Path

    def cpu_seconds(self) -> float:
        try:
            fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        return (int(fields[11]) + int(fields[12])) / CLK_TCK

    def check_alive(self) -> None:
        if self.proc.poll() is not None:
            tail = self.log_path.read_text(errors="replace")[-2000:]
            raise BenchError(f"gateway exited with code {self.proc.returncode}; its log:\n{tail}")

    def stop(self) -> None:
        if self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=5)


def start_gateway(config: Path, workdir: Path) -> Server:
    log_path = workdir / "gateway.log"
    with log_path.open("wb") as out:
        proc = subprocess.Popen(
            [*gateway_command(), "--config", str(config), "serve"],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=_clean_env(),
            start_new_session=True,
        )
    return Server(proc, log_path)


def wait_ready(server: Server, url: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        server.check_alive()
        with contextlib.suppress(OSError, urllib.error.URLError), urllib.request.urlopen(url, timeout=2) as resp:
            if resp.status == 200:
                return
        time.sleep(0.1)
    raise BenchError(f"the gateway did not become ready within {timeout:.0f}s (log: {server.log_path})")


def wait_idle(server: Server, threshold: float = 0.05, window: float = 0.5, timeout: float = 180.0) -> float:
    """Until the gateway uses < ``threshold`` of a core over ``window`` s (its dispatcher has drained)."""
    start = time.monotonic()
    while True:
        before = server.cpu_seconds()
        time.sleep(window)
        server.check_alive()
        waited = time.monotonic() - start
        if (server.cpu_seconds() - before) / window < threshold or waited > timeout:
            return waited


def write_config(path: Path, port: int, db_url: str) -> None:
    key = base64.b64encode(secrets.token_bytes(32)).decode()
    doc = {
        "server": {"host": HOST, "port": port},
        "database": {"url": db_url},
        "security": {"encryption_keys": f"bench:{key}"},
        "partners": {},
        "simulators": {},
        "files": {"enabled": False},
    }
    path.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")


def batch_body(prefix: str, size: int) -> bytes:
    docs = [dict(EXAMPLE, reference=f"{prefix}{i:06d}", requested_execution_date=EXECUTION_DATE) for i in range(size)]
    return json.dumps({"instructions": docs}, separators=(",", ":")).encode()


@dataclass
class Posted:
    """One batch sent: wall seconds from the first byte sent to the whole answer, CPU seconds, the answer."""

    elapsed: float
    server_cpu: float  # the gateway process (every thread) while the request was open
    client_cpu: float  # this process: sending the body, reading the answer (decoding it is not timed)
    answer: dict[str, Any]


def post_batch(port: int, key: str, body: bytes, server: Server | None = None) -> Posted:
    """One batch over a fresh connection (see ``Posted``)."""
    conn = http.client.HTTPConnection(HOST, port, timeout=300)
    headers = {
        "Authorization": f"Bearer {key}",
        "Content-Type": "application/json",
        "Idempotency-Key": secrets.token_hex(16),
    }
    try:
        conn.connect()
        server_before = server.cpu_seconds() if server else 0.0
        client_before = time.process_time()
        start = time.perf_counter()
        conn.request("POST", PATH, body=body, headers=headers)
        resp = conn.getresponse()
        raw = resp.read()
        elapsed = time.perf_counter() - start
        client_cpu = time.process_time() - client_before
        server_cpu = server.cpu_seconds() - server_before if server else 0.0
    finally:
        conn.close()
    if resp.status != 202:
        raise BenchError(f"the batch was answered {resp.status}: {raw[:500]!r}")
    return Posted(elapsed, server_cpu, client_cpu, json.loads(raw))


def copy_rows(db_file: Path, batch_id: str) -> list[tuple[str, list[str], list[tuple[Any, ...]]]]:
    """The rows one batch wrote, table by table, as (insert SQL, columns, values)."""
    db = sqlite3.connect(db_file)
    try:
        out = []
        for table in TABLES:
            column = "batch_id" if table == "instructions" else "instruction_id"
            where = (
                "batch_id = ?"
                if table == "instructions"
                else f"{column} IN (SELECT id FROM instructions WHERE batch_id = ?)"
            )
            cur = db.execute(f"SELECT * FROM {table} WHERE {where}", (batch_id,))
            columns = [d[0] for d in cur.description if not (table != "instructions" and d[0] == "id")]
            names = [d[0] for d in cur.description]
            rows = [tuple(row[names.index(c)] for c in columns) for row in cur.fetchall()]
            sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
            out.append((sql, columns, rows))
        return out
    finally:
        db.close()


def executemany_once(
    db_file: Path, plan: list[tuple[str, list[str], list[tuple[Any, ...]]]], tag: str
) -> tuple[float, float]:
    """The batch's rows again under new ids (``tag`` in front), one transaction of raw executemany; (wall, CPU) s."""
    renamed = []
    for sql, columns, rows in plan:
        fix = {
            i: ((lambda v: f"{tag}{v}"[:40]) if c in ("id", "instruction_id") else (lambda v: f"{tag}{v}"[:35]))
            for i, c in enumerate(columns)
            if c in ("id", "instruction_id", "reference")
        }
        chain = {i for i, c in enumerate(columns) if c in ("chain_seq", "chain_hash")}
        renamed.append(
            (
                sql,
                [
                    tuple(None if i in chain else (fix[i](v) if i in fix else v) for i, v in enumerate(row))
                    for row in rows
                ],
            )
        )
    db = sqlite3.connect(db_file, isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        cpu = time.process_time()
        start = time.perf_counter()
        db.execute("BEGIN IMMEDIATE")
        for sql, rows in renamed:
            db.executemany(sql, rows)
        db.execute("COMMIT")
        return time.perf_counter() - start, time.process_time() - cpu
    finally:
        db.close()


def run(args: argparse.Namespace) -> dict[str, Any]:
    run_id = secrets.token_hex(2).upper()
    gateway_rates: list[float] = []
    base_rates: list[float] = []
    gateway_cpu: list[float] = []  # server CPU seconds per batch
    client_cpu: list[float] = []
    base_cpu: list[float] = []
    with tempfile.TemporaryDirectory(prefix="gateway-bench-batch-") as tmp:
        workdir = Path(tmp)
        db_file = workdir / "gateway.db"
        config = workdir / "gateway.yaml"
        port = free_port()
        write_config(config, port, f"sqlite+aiosqlite:///{db_file}")
        run_cli(["db", "upgrade"], config)
        key = run_cli(["keys", "create", "--business-unit", "bench"], config).splitlines()[-1]
        server = start_gateway(config, workdir)
        batch_ids = []
        try:
            wait_ready(server, f"http://{HOST}:{port}/healthz")
            log(f"gateway pid {server.proc.pid} on :{port} (sqlite {db_file.name}); {args.size:,} per batch")
            if args.warmup:
                post_batch(port, key, batch_body(f"B{run_id}W", min(args.size, 1000)))
                wait_idle(server)
            for round_no in range(1, args.rounds + 1):
                body = batch_body(f"B{run_id}R{round_no}", args.size)
                posted = post_batch(port, key, body, server)
                answer, elapsed = posted.answer, posted.elapsed
                if answer["accepted"] != args.size:
                    raise BenchError(f"only {answer['accepted']} of {args.size} accepted: {answer['items'][:2]}")
                batch_ids.append(answer["id"])
                gateway_rates.append(args.size / elapsed)
                gateway_cpu.append(posted.server_cpu)
                client_cpu.append(posted.client_cpu)
                log(
                    f"round {round_no}/{args.rounds}: gateway {args.size / elapsed:,.0f}/s ({elapsed * 1000:.0f} ms; "
                    f"server CPU {posted.server_cpu * 1000:.0f} ms, client CPU {posted.client_cpu * 1000:.0f} ms)"
                )
                drained = wait_idle(server)
                log(f"  gateway idle again after {drained:.1f}s")
        finally:
            server.stop()
        plan = copy_rows(db_file, batch_ids[-1])
        for round_no in range(1, args.rounds + 1):
            elapsed, cpu = executemany_once(db_file, plan, f"x{round_no}")
            base_rates.append(args.size / elapsed)
            base_cpu.append(cpu)
            log(
                f"round {round_no}/{args.rounds}: executemany {args.size / elapsed:,.0f}/s "
                f"({elapsed * 1000:.0f} ms; CPU {cpu * 1000:.0f} ms)"
            )
    gateway = statistics.median(gateway_rates)
    baseline = statistics.median(base_rates)
    ratio = gateway / baseline if baseline else 0.0
    # per CPU second: what each would do with a core to itself (the VM is shared; wall time is not)
    gateway_per_cpu = args.size / max(statistics.median(gateway_cpu), 1e-9)
    base_per_cpu = args.size / max(statistics.median(base_cpu), 1e-9)
    return {
        "bench": "batch",
        "backend": "sqlite",
        "size": args.size,
        "rounds": args.rounds,
        "gateway_per_s": round(gateway),
        "executemany_per_s": round(baseline),
        "ratio": round(ratio, 3),
        "gateway_rounds": [round(r) for r in gateway_rates],
        "executemany_rounds": [round(r) for r in base_rates],
        "gateway_per_cpu_s": round(gateway_per_cpu),
        "executemany_per_cpu_s": round(base_per_cpu),
        "cpu_ratio": round(gateway_per_cpu / base_per_cpu, 3),
        "gateway_cpu_us_per_item": round(statistics.median(gateway_cpu) / args.size * 1e6, 1),
        "client_cpu_us_per_item": round(statistics.median(client_cpu) / args.size * 1e6, 1),
        "executemany_cpu_us_per_item": round(statistics.median(base_cpu) / args.size * 1e6, 1),
        "loadavg_1m": round(os.getloadavg()[0], 1),
        "tables": list(TABLES),
        "target_per_s": TARGET_RATE,
        "target_ratio": TARGET_RATIO,
        "meets_targets": gateway >= TARGET_RATE and ratio >= TARGET_RATIO,
        "cpus": os.cpu_count(),
    }


def print_table(summary: dict[str, Any]) -> None:
    rows = [
        ("batch endpoint (gateway serve)", f"{summary['gateway_per_s']:,}/s", f">= {TARGET_RATE:,}/s"),
        (f"raw executemany ({', '.join(TABLES)})", f"{summary['executemany_per_s']:,}/s", ""),
        ("ratio gateway / executemany", f"{summary['ratio']:.2f}", f">= {TARGET_RATIO}"),
        ("per CPU second: batch endpoint (server process)", f"{summary['gateway_per_cpu_s']:,}/s", ""),
        ("per CPU second: raw executemany", f"{summary['executemany_per_cpu_s']:,}/s", ""),
        ("ratio per CPU second", f"{summary['cpu_ratio']:.2f}", ""),
        ("client CPU per instruction (sending, not decoding)", f"{summary['client_cpu_us_per_item']} us", ""),
    ]
    width = max(len(r[0]) for r in rows)
    print(
        f"batch intake, SQLite, {summary['size']:,} instructions per batch, median of {summary['rounds']} rounds "
        f"({summary['cpus']} CPUs, load average {summary['loadavg_1m']})"
    )
    for name, value, target in rows:
        print(f"  {name:<{width}}  {value:>12}  {target}")
    print(f"  targets met: {'yes' if summary['meets_targets'] else 'NO'}")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="bench/batch.py",
        description="Instructions per second through POST /v1/instruction-batches vs raw executemany of the same rows.",
    )
    p.add_argument("--size", type=int, default=10_000, help="instructions per batch (default 10000, the maximum)")
    p.add_argument("--rounds", type=int, default=3, help="batches measured; medians reported (3)")
    p.add_argument("--no-warmup", dest="warmup", action="store_false", help="skip the small warm-up batch")
    p.add_argument("--json", action="store_true", help="also print one JSON object as the last line of stdout")
    return p


def _interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.rounds < 1 or not 1 <= args.size <= 10_000:
        print("bench/batch.py: --rounds must be positive and --size within 1-10000", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    try:
        summary = run(args)
    except BenchError as exc:
        print(f"bench/batch.py: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("bench/batch.py: interrupted; gateway stopped", file=sys.stderr)
        return 130
    print_table(summary)
    if args.json:
        sys.stdout.flush()
        print(json.dumps(summary), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
