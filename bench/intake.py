"""Intake benchmark: accepted instructions per second through the real HTTP API.

In one run it measures, alternately and on the same machine:

* ``echo``    a bare aiohttp app (one process, same Python and aiohttp) whose one
              POST route does ``json.loads(await request.read())`` and answers
              ``web.json_response(doc)`` -- the ceiling for "parse JSON over HTTP";
* ``gateway`` the real ``gateway serve`` process (one process) on a fresh database:
              auth, contract validation, field encryption, group-committed
              durable write, 202.

and prints both, with their ratio (medians over ``--rounds``). The gateway is run
exactly as shipped, with ``partners: {}``: its dispatcher is running and rejects
every accepted instruction (``NO_ROUTE``) in the background, so that work is part
of the measured load. Between measurements the bench waits until both servers are
idle again, so one target's backlog never steals CPU from the next.

Load generator: ``wrk`` with ``bench/intake.lua`` (unique reference and
Idempotency-Key per request); without wrk, a Python asyncio HTTP/1.1 client in a
separate process (slower: it can cap the echo figure, so the ratio is then optimistic).

    .venv/bin/python bench/intake.py                       # SQLite, 3 rounds x 10 s
    .venv/bin/python bench/intake.py --json                # + one JSON object, last stdout line
    .venv/bin/python bench/intake.py --database-url postgresql+asyncpg://postgres@127.0.0.1:5432/postgres

With a PostgreSQL URL the bench creates a throw-away database ``bench_<random>``
on that server (the role needs CREATEDB) and drops it afterwards.
All traffic stays on 127.0.0.1. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import re
import resource
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from gateway.contracts.registry import contracts

HERE = Path(__file__).resolve().parent
LUA_SCRIPT = HERE / "intake.lua"
HOST = "127.0.0.1"
PATH = "/v1/instructions"
CLK_TCK = os.sysconf("SC_CLK_TCK")

#: the contract's example instruction; the reference is replaced per request
EXAMPLE: dict[str, Any] = contracts().schema("instruction", "1.0")["examples"][0]


#: a week ahead, so the instruction never asks for a date in the past
EXECUTION_DATE = (datetime.now(UTC).date() + timedelta(days=7)).isoformat()


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


class BenchError(Exception):
    """Something around the measurement failed (a server did not start, ...)."""


# -- the raw echo baseline (runs as a child process) -------------------------------------


def serve_echo(port: int) -> None:
    from aiohttp import web

    async def echo(request: web.Request) -> web.Response:
        doc = json.loads(await request.read())
        return web.json_response(doc)

    async def main() -> None:
        app = web.Application()
        app.router.add_post(PATH, echo)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        await web.TCPSite(runner, HOST, port, backlog=1024).start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        print(f"echo listening on http://{HOST}:{port}", file=sys.stderr, flush=True)
        await stop.wait()
        await runner.cleanup()

    asyncio.run(main())


# -- the gateway without dispatcher (diagnostic, runs as a child process) ------------------


def serve_gateway_intake_only(config: str) -> None:
    """``gateway serve`` minus dispatcher and poller: the same app, intake path only (``--intake-only``)."""
    from gateway.api.server import bind, start_app
    from gateway.config import load_settings
    from gateway.runtime import create_app

    async def main() -> None:
        settings = load_settings(config)
        running = await start_app(create_app(settings, dispatch=False, poll=False), bind(settings.host, settings.port))
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        print(f"gateway (intake only) listening on {running.url}", file=sys.stderr, flush=True)
        await stop.wait()
        await running.stop()

    asyncio.run(main())


# -- the fallback load generator (runs as a child process) -------------------------------


async def _load_client(cfg: dict[str, Any]) -> dict[str, Any]:
    """Closed-loop HTTP/1.1 keep-alive client: ``connections`` workers, one request in flight each."""
    host, port, key, prefix = cfg["host"], cfg["port"], cfg["key"], cfg["prefix"]
    expected, duration = int(cfg["expected"]), float(cfg["duration"])
    doc = dict(EXAMPLE, reference="@@REF@@", requested_execution_date=cfg["execution_date"])
    template = json.dumps(doc, separators=(",", ":"))
    head_template = (
        f"POST {PATH} HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Bearer {key}\r\n"
        "Content-Type: application/json\r\nIdempotency-Key: {ref}\r\nContent-Length: {length}\r\n\r\n"
    )
    latencies: list[float] = []
    counts = {"ok": 0, "bad": 0, "first_bad": 0, "connect": 0, "read": 0, "write": 0, "timeout": 0}
    start = time.perf_counter()
    end = start + duration

    async def read_response(reader: asyncio.StreamReader) -> int:
        head = await reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        lower = head.lower()
        match = re.search(rb"\r\ncontent-length:\s*(\d+)", lower)
        if match:
            await reader.readexactly(int(match.group(1)))
        elif b"transfer-encoding: chunked" in lower:
            while True:
                size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
                await reader.readexactly(size + 2)
                if size == 0:
                    break
        return status

    async def worker(wid: int) -> None:
        n = 0
        while time.perf_counter() < end:
            try:
                reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 10)
            except (OSError, TimeoutError):
                counts["connect"] += 1
                await asyncio.sleep(0.05)
                continue
            try:
                while time.perf_counter() < end:
                    n += 1
                    ref = f"{prefix}-{wid}-{n}"
                    body = template.replace("@@REF@@", ref).encode()
                    t0 = time.perf_counter()
                    writer.write(head_template.format(ref=ref, length=len(body)).encode() + body)
                    status = await asyncio.wait_for(read_response(reader), 10)
                    latencies.append(time.perf_counter() - t0)
                    if status == expected:
                        counts["ok"] += 1
                    else:
                        counts["bad"] += 1
                        counts["first_bad"] = counts["first_bad"] or status
            except TimeoutError:
                counts["timeout"] += 1
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
                counts["read"] += 1
            finally:
                writer.close()

    await asyncio.gather(*(worker(i) for i in range(int(cfg["connections"]))))
    elapsed = time.perf_counter() - start
    latencies.sort()

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(p / 100 * len(latencies)))] * 1e6 if latencies else 0.0

    return {
        "requests": len(latencies),
        "duration_us": int(elapsed * 1e6),
        "ok": counts["ok"],
        "unexpected_status": counts["bad"],
        "first_unexpected_status": counts["first_bad"],
        "socket_errors": {k: counts[k] for k in ("connect", "read", "write", "timeout")} | {"status": 0},
        "latency_us": {
            "p50": pct(50),
            "p90": pct(90),
            "p99": pct(99),
            "max": latencies[-1] * 1e6 if latencies else 0.0,
            "mean": statistics.fmean(latencies) * 1e6 if latencies else 0.0,
        },
    }


def run_load_client(cfg_json: str) -> None:
    result = asyncio.run(_load_client(json.loads(cfg_json)))
    print("BENCH_JSON " + json.dumps(result), flush=True)


# -- child processes -----------------------------------------------------------------------


def _clean_env() -> dict[str, str]:
    """The environment for children, without GATEWAY_* overrides that would redirect the gateway."""
    return {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}


@dataclass
class Server:
    name: str
    proc: subprocess.Popen[bytes]
    port: int
    log_path: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def cpu_seconds(self) -> float:
        """utime + stime of the server process (all its threads), from /proc."""
        try:
            fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        return (int(fields[11]) + int(fields[12])) / CLK_TCK

    def check_alive(self) -> None:
        if self.proc.poll() is not None:
            tail = self.log_path.read_text(errors="replace")[-2000:]
            raise BenchError(f"{self.name} exited with code {self.proc.returncode}; its log:\n{tail}")

    def stop(self) -> None:
        kill_group(self.proc)


def kill_group(proc: subprocess.Popen[Any]) -> None:
    """SIGTERM the child's process group, SIGKILL it if it lingers."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


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


def start_server(name: str, argv: list[str], port: int, workdir: Path) -> Server:
    log_path = workdir / f"{name}.log"
    with log_path.open("wb") as out:
        proc = subprocess.Popen(
            argv,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=_clean_env(),
            start_new_session=True,  # its own process group: we kill the group, Ctrl-C never races us
        )
    return Server(name, proc, port, log_path)


def wait_ready(server: Server, url: str, timeout: float = 60.0) -> None:
    """Until ``url`` answers 200 (GET), or for the echo server until the port accepts."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        server.check_alive()
        try:
            if url.endswith("/healthz"):
                with urllib.request.urlopen(url, timeout=2) as resp:
                    if resp.status == 200:
                        return
            else:
                with socket.create_connection((HOST, server.port), timeout=1):
                    return
        except (OSError, urllib.error.URLError):
            pass
        time.sleep(0.1)
    raise BenchError(f"{server.name} did not become ready within {timeout:.0f}s (log: {server.log_path})")


def wait_idle(servers: list[Server], threshold: float = 0.05, window: float = 0.5, timeout: float = 120.0) -> float:
    """Wait until every server uses < ``threshold`` of a core over ``window`` s; return the wait."""
    start = time.monotonic()
    while True:
        before = [s.cpu_seconds() for s in servers]
        time.sleep(window)
        used = [s.cpu_seconds() - b for s, b in zip(servers, before, strict=True)]
        for s in servers:
            s.check_alive()
        waited = time.monotonic() - start
        if all(u / window < threshold for u in used) or waited > timeout:
            if waited > timeout:
                log(f"servers still busy after {timeout:.0f}s; measuring anyway")
            return waited


# -- PostgreSQL: a throw-away database ------------------------------------------------------


@contextlib.contextmanager
def database(url: str | None, workdir: Path) -> Iterator[tuple[str, str]]:
    """Yield (sqlalchemy url, backend label); a fresh SQLite file or a fresh PostgreSQL database."""
    if not url or url.startswith("sqlite"):
        if url and url not in ("sqlite", "sqlite+aiosqlite"):
            yield url, "sqlite"
        else:
            yield f"sqlite+aiosqlite:///{workdir / 'bench.db'}", "sqlite"
        return
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql":
        raise BenchError(f"--database-url: only sqlite and postgresql are supported, not {parsed.drivername}")
    import asyncpg

    name = f"bench_{secrets.token_hex(4)}"
    admin_dsn = parsed.set(drivername="postgresql").render_as_string(hide_password=False)

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(admin_dsn)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    try:
        asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        raise BenchError(f"cannot create database {name} on {parsed.host}: {exc}") from None
    log(f"created throw-away PostgreSQL database {name}")
    try:
        yield (
            parsed.set(database=name, drivername="postgresql+asyncpg").render_as_string(hide_password=False),
            "postgresql",
        )
    finally:
        try:
            asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            log(f"dropped {name}")
        except Exception as exc:
            log(f"could not drop database {name}: {exc}")


def count_instructions(db_url: str) -> int | None:
    """Rows in ``instructions`` (to cross-check the 202s), or None if it cannot be read."""
    from sqlalchemy.engine import make_url

    parsed = make_url(db_url)
    try:
        if parsed.get_backend_name() == "sqlite":
            import sqlite3

            with contextlib.closing(sqlite3.connect(parsed.database, timeout=30)) as conn:
                return int(conn.execute("SELECT count(*) FROM instructions").fetchone()[0])
        import asyncpg

        async def count() -> int:
            conn = await asyncpg.connect(parsed.set(drivername="postgresql").render_as_string(hide_password=False))
            try:
                return int(await conn.fetchval("SELECT count(*) FROM instructions"))
            finally:
                await conn.close()

        return asyncio.run(count())
    except Exception as exc:
        log(f"could not count instructions: {exc}")
        return None


# -- load generation -------------------------------------------------------------------------


@dataclass
class Measurement:
    target: str
    round: int
    requests: int
    ok: int
    unexpected_status: int
    first_unexpected_status: int
    socket_errors: int
    duration_s: float
    p50_ms: float
    p99_ms: float
    server_cpu: float  # cores used by the server process (1.0 = one core busy)
    loadgen_cpu: float
    drain_s: float = 0.0  # how long the server stayed busy after the load stopped
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def ok_per_s(self) -> float:
        return self.ok / self.duration_s if self.duration_s else 0.0


class LoadGenerator:
    def __init__(self, kind: str, connections: int, threads: int) -> None:
        self.kind = kind
        self.connections = connections
        self.threads = threads
        self.wrk = shutil.which("wrk") if kind == "wrk" else None

    @property
    def label(self) -> str:
        if self.kind == "wrk":
            return f"wrk -t{self.threads} -c{self.connections} (bench/intake.lua)"
        why = "fallback: wrk not found" if not shutil.which("wrk") else "chosen with --load-generator python"
        return f"python asyncio client, {self.connections} connections ({why})"

    def run(self, port: int, key: str, prefix: str, expected: int, duration: float) -> dict[str, Any]:
        if self.kind == "wrk":
            argv = [
                str(self.wrk),
                f"-t{self.threads}",
                f"-c{self.connections}",
                f"-d{max(1, round(duration))}s",
                "--timeout",
                "10s",
                "--latency",
                "-s",
                str(LUA_SCRIPT),
                f"http://{HOST}:{port}{PATH}",
                "--",
                prefix,
                key,
                str(expected),
                EXECUTION_DATE,
            ]
        else:
            cfg = {
                "host": HOST,
                "port": port,
                "key": key,
                "prefix": prefix,
                "expected": expected,
                "duration": duration,
                "connections": self.connections,
                "execution_date": EXECUTION_DATE,
            }
            argv = [sys.executable, str(Path(__file__).resolve()), "--load-client", json.dumps(cfg)]
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
        try:
            out, err = proc.communicate(timeout=duration + 60)
        finally:
            kill_group(proc)
        if proc.returncode != 0:
            raise BenchError(f"load generator failed ({proc.returncode}): {err.strip()[-1000:]}")
        for line in out.splitlines():
            if line.startswith("BENCH_JSON "):
                result = json.loads(line[len("BENCH_JSON ") :])
                result["text"] = out
                return result
        raise BenchError(f"load generator printed no result:\n{out[-2000:]}\n{err[-1000:]}")


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def measure(
    gen: LoadGenerator,
    server: Server,
    others: list[Server],
    *,
    key: str,
    prefix: str,
    expected: int,
    duration: float,
    round_no: int,
) -> Measurement:
    wait_idle([server, *others])
    cpu0, gen0 = server.cpu_seconds(), children_cpu()
    res = gen.run(server.port, key, prefix, expected, duration)
    cpu1, gen1 = server.cpu_seconds(), children_cpu()
    server.check_alive()
    seconds = res["duration_us"] / 1e6
    errors = res["socket_errors"]
    m = Measurement(
        target=server.name,
        round=round_no,
        requests=int(res["requests"]),
        ok=int(res["ok"]),
        unexpected_status=int(res["unexpected_status"]),
        first_unexpected_status=int(res["first_unexpected_status"]),
        # wrk's "status" error is a non-2xx/3xx response, already counted in unexpected_status
        socket_errors=sum(int(v) for k, v in errors.items() if k != "status"),
        duration_s=seconds,
        p50_ms=res["latency_us"]["p50"] / 1000,
        p99_ms=res["latency_us"]["p99"] / 1000,
        server_cpu=(cpu1 - cpu0) / seconds if seconds else 0.0,
        loadgen_cpu=(gen1 - gen0) / seconds if seconds else 0.0,
        raw=res,
    )
    m.drain_s = wait_idle([server])
    if m.unexpected_status or m.socket_errors:
        tail = server.log_path.read_text(errors="replace")[-1500:].strip()
        log(f"{server.name}: {m.unexpected_status} unexpected statuses (e.g. {m.first_unexpected_status}); log tail:")
        log(tail or "(empty log)")
    return m


# -- the run ------------------------------------------------------------------------------------


def write_config(path: Path, port: int, db_url: str, dispatch_concurrency: int | None = None) -> None:
    key = base64.b64encode(secrets.token_bytes(32)).decode()
    doc = {
        "server": {"host": HOST, "port": port, "max_body_bytes": 65536},
        "database": {"url": db_url},
        "security": {"encryption_keys": f"bench:{key}"},
        "intake": {"batch_max": 256},
        "partners": {},
        "simulators": {},
    }
    if dispatch_concurrency is not None:
        doc["dispatch"] = {"concurrency": dispatch_concurrency}
    # JSON is valid YAML; no need for a YAML writer
    path.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")


def median(values: list[float]) -> float:
    return statistics.median(values) if values else 0.0


def run(args: argparse.Namespace) -> dict[str, Any]:
    kind = args.load_generator
    if kind == "auto":
        kind = "wrk" if shutil.which("wrk") else "python"
    if kind == "wrk" and not shutil.which("wrk"):
        raise BenchError("wrk is not installed (apt-get install wrk), or use --load-generator python")
    gen = LoadGenerator(kind, args.connections, args.threads)
    run_id = secrets.token_hex(3)
    servers: list[Server] = []
    measurements: list[Measurement] = []
    with tempfile.TemporaryDirectory(prefix="gateway-bench-") as tmp:
        workdir = Path(tmp)
        with database(args.database_url, workdir) as (db_url, backend):
            try:
                config = workdir / "gateway.yaml"
                gw_port = free_port()
                write_config(config, gw_port, db_url, args.dispatch_concurrency)
                run_cli(["db", "upgrade"], config)
                key = run_cli(["keys", "create", "--business-unit", "bench"], config).splitlines()[-1]
                if args.intake_only:
                    argv = [sys.executable, str(Path(__file__).resolve()), "--serve-gateway-intake-only", str(config)]
                else:
                    argv = [*gateway_command(), "--config", str(config), "serve"]
                gateway = start_server("gateway", argv, gw_port, workdir)
                servers.append(gateway)
                echo_port = free_port()
                echo = start_server(
                    "echo",
                    [sys.executable, str(Path(__file__).resolve()), "--serve-echo", str(echo_port)],
                    echo_port,
                    workdir,
                )
                servers.append(echo)
                wait_ready(gateway, f"http://{HOST}:{gw_port}/healthz")
                wait_ready(echo, f"http://{HOST}:{echo_port}{PATH}")
                log(f"gateway pid {gateway.pid} on :{gw_port} ({backend}); echo pid {echo.pid} on :{echo_port}")
                log(f"load generator: {gen.label}")
                targets = [(echo, 200), (gateway, 202)]
                sent_to_gateway = 0
                if args.warmup > 0:
                    for server, expected in targets:
                        log(f"warm-up {server.name} {args.warmup:.0f}s")
                        res = gen.run(server.port, key, f"b{run_id}w{server.name[0]}", expected, args.warmup)
                        if server is gateway:
                            sent_to_gateway += int(res["ok"])
                for round_no in range(1, args.rounds + 1):
                    for server, expected in targets:
                        log(f"round {round_no}/{args.rounds}: {server.name} {args.duration:.0f}s")
                        m = measure(
                            gen,
                            server,
                            [s for s in servers if s is not server],
                            key=key,
                            prefix=f"b{run_id}r{round_no}{server.name[0]}",
                            expected=expected,
                            duration=args.duration,
                            round_no=round_no,
                        )
                        measurements.append(m)
                        if server is gateway:
                            sent_to_gateway += m.ok
                        log(
                            f"  {m.ok_per_s:,.0f}/s ok, p50 {m.p50_ms:.1f} ms, p99 {m.p99_ms:.1f} ms, "
                            f"unexpected {m.unexpected_status}, socket errors {m.socket_errors}, "
                            f"server cpu {m.server_cpu:.2f}, drain {m.drain_s:.1f}s"
                        )
                stored = count_instructions(db_url)
            finally:
                for server in reversed(servers):
                    server.stop()
    return summarize(args, gen, backend, measurements, sent_to_gateway, stored)


def summarize(
    args: argparse.Namespace,
    gen: LoadGenerator,
    backend: str,
    ms: list[Measurement],
    accepted_total: int,
    stored: int | None,
) -> dict[str, Any]:
    echo = [m for m in ms if m.target == "echo"]
    gw = [m for m in ms if m.target == "gateway"]
    accepted = median([m.ok_per_s for m in gw])
    echo_rate = median([m.ok_per_s for m in echo])
    non_202 = sum(m.unexpected_status for m in gw)
    errors = sum(m.socket_errors for m in gw) + non_202
    return {
        "bench": "intake",
        "backend": backend,
        "gateway_mode": "intake-only (no dispatcher, diagnostic)" if args.intake_only else "gateway serve",
        "load_generator": gen.label,
        "load_generator_kind": gen.kind,
        "connections": args.connections,
        "dispatch_concurrency": args.dispatch_concurrency or 32,
        "duration": args.duration,
        "warmup": args.warmup,
        "rounds": args.rounds,
        "accepted_per_s": round(accepted, 1),
        "echo_per_s": round(echo_rate, 1),
        "ratio": round(accepted / echo_rate, 4) if echo_rate else None,
        "gateway_p50_ms": round(median([m.p50_ms for m in gw]), 2),
        "gateway_p99_ms": round(median([m.p99_ms for m in gw]), 2),
        "echo_p50_ms": round(median([m.p50_ms for m in echo]), 2),
        "echo_p99_ms": round(median([m.p99_ms for m in echo]), 2),
        "gateway_server_cpu": round(median([m.server_cpu for m in gw]), 2),
        "echo_server_cpu": round(median([m.server_cpu for m in echo]), 2),
        "gateway_drain_s": round(median([m.drain_s for m in gw]), 1),
        "errors": errors,
        "non_202": non_202,
        "socket_errors": sum(m.socket_errors for m in gw),
        "echo_errors": sum(m.socket_errors + m.unexpected_status for m in echo),
        "accepted_total": accepted_total,
        "stored_instructions": stored,
        "targets": {"accepted_per_s": 2000, "ratio": 0.15},
        "rounds_detail": [
            {
                "target": m.target,
                "round": m.round,
                "ok_per_s": round(m.ok_per_s, 1),
                "requests": m.requests,
                "unexpected_status": m.unexpected_status,
                "first_unexpected_status": m.first_unexpected_status or None,
                "socket_errors": m.socket_errors,
                "duration_s": round(m.duration_s, 2),
                "p50_ms": round(m.p50_ms, 2),
                "p99_ms": round(m.p99_ms, 2),
                "server_cpu": round(m.server_cpu, 2),
                "loadgen_cpu": round(m.loadgen_cpu, 2),
                "drain_s": round(m.drain_s, 1),
            }
            for m in ms
        ],
    }


def print_table(summary: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=None if sys.stdout.isatty() else 120)
    table = Table(
        title=f"Intake benchmark — {summary['backend']}, {summary['load_generator']}, "
        f"{summary['rounds']} x {summary['duration']:.0f}s per target"
    )
    for col in ("target", "round", "ok/s", "p50 ms", "p99 ms", "unexpected", "sock err", "server CPU", "drain s"):
        table.add_column(col, justify="left" if col == "target" else "right")
    for r in summary["rounds_detail"]:
        unexpected = str(r["unexpected_status"])
        if r["first_unexpected_status"]:
            unexpected += f" (e.g. {r['first_unexpected_status']})"
        table.add_row(
            r["target"],
            str(r["round"]),
            f"{r['ok_per_s']:,.0f}",
            f"{r['p50_ms']:.1f}",
            f"{r['p99_ms']:.1f}",
            unexpected,
            str(r["socket_errors"]),
            f"{r['server_cpu']:.2f}",
            f"{r['drain_s']:.1f}",
        )
    console.print(table)

    ratio = summary["ratio"] or 0.0
    tgt = summary["targets"]
    ok_rate = summary["accepted_per_s"] >= tgt["accepted_per_s"]
    ok_ratio = ratio >= tgt["ratio"]
    result = Table(title="Medians")
    for col in ("", "per second", "p50 ms", "p99 ms", "target"):
        result.add_column(col, justify="left" if not col else "right")
    result.add_row(
        "raw aiohttp echo (200)",
        f"{summary['echo_per_s']:,.0f}",
        f"{summary['echo_p50_ms']:.1f}",
        f"{summary['echo_p99_ms']:.1f}",
        "",
    )
    result.add_row(
        "gateway accepted (202)",
        f"{summary['accepted_per_s']:,.0f}",
        f"{summary['gateway_p50_ms']:.1f}",
        f"{summary['gateway_p99_ms']:.1f}",
        f"≥ {tgt['accepted_per_s']:,} {'[green]met[/]' if ok_rate else '[red]missed[/]'}",
    )
    result.add_row(
        "ratio gateway / echo",
        f"{ratio:.3f}",
        "",
        "",
        f"≥ {tgt['ratio']} {'[green]met[/]' if ok_ratio else '[red]missed[/]'}",
    )
    console.print(result)
    stored = summary["stored_instructions"]
    check = "" if stored is None else f"; instructions in the database: {stored:,}"
    console.print(
        f"gateway errors: {summary['errors']} (non-202: {summary['non_202']}, socket: {summary['socket_errors']}); "
        f"202s received incl. warm-up: {summary['accepted_total']:,}{check}"
    )
    busy_gen = max((r["loadgen_cpu"] for r in summary["rounds_detail"] if r["target"] == "echo"), default=0.0)
    if summary["load_generator_kind"] != "wrk":
        console.print("[yellow]note: wrk not used; load came from the Python fallback client.[/]")
    if busy_gen > 0.9:
        console.print(
            f"[yellow]note: the load generator used {busy_gen:.2f} cores during echo rounds and may have "
            "capped echo/s, so the ratio is optimistic.[/]"
        )
    if stored is not None and stored > summary["accepted_total"]:
        console.print(
            "(stored > 202s received: requests still in flight when a wrk run stopped were committed "
            "but not counted; at most one per connection per run)"
        )


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="bench/intake.py",
        description="Accepted instructions per second through the gateway's HTTP API vs a raw aiohttp JSON echo.",
    )
    p.add_argument("--duration", type=float, default=10.0, help="seconds per measurement (default 10)")
    p.add_argument("--warmup", type=float, default=3.0, help="warm-up seconds per target before measuring (default 3)")
    p.add_argument("--rounds", type=int, default=3, help="alternating echo/gateway rounds; medians reported (3)")
    p.add_argument("--connections", type=int, default=64, help="concurrent keep-alive connections (64)")
    p.add_argument("--threads", type=int, default=1, help="wrk threads (1)")
    p.add_argument(
        "--load-generator",
        choices=["auto", "wrk", "python"],
        default="auto",
        help="auto = wrk if installed, else the Python client",
    )
    p.add_argument(
        "--database-url",
        help="default: a fresh SQLite file in a temp dir; a postgresql+asyncpg:// URL makes a throw-away "
        "database bench_<random> on that server (needs CREATEDB) and drops it afterwards",
    )
    p.add_argument(
        "--intake-only",
        action="store_true",
        help="diagnostic: run the gateway app without its dispatcher and poller (not `gateway serve`), "
        "to separate intake cost from the background NO_ROUTE work",
    )
    p.add_argument(
        "--dispatch-concurrency",
        type=int,
        help="override dispatch.concurrency in the bench config (default: the shipped 32)",
    )
    p.add_argument("--json", action="store_true", help="also print one JSON object as the last line of stdout")
    p.add_argument("--serve-echo", type=int, metavar="PORT", help=argparse.SUPPRESS)
    p.add_argument("--load-client", metavar="JSON", help=argparse.SUPPRESS)
    p.add_argument("--serve-gateway-intake-only", metavar="CONFIG", help=argparse.SUPPRESS)
    return p


def _interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.serve_echo is not None:
        serve_echo(args.serve_echo)
        return 0
    if args.serve_gateway_intake_only is not None:
        serve_gateway_intake_only(args.serve_gateway_intake_only)
        return 0
    if args.load_client is not None:
        run_load_client(args.load_client)
        return 0
    if args.rounds < 1 or args.connections < 1 or args.duration <= 0:
        print("bench/intake.py: --rounds, --connections and --duration must be positive", file=sys.stderr)
        return 2
    # SIGTERM, and SIGINT even where inherited as ignored, act like Ctrl-C: unwind through
    # the finally blocks that kill the servers.
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    try:
        summary = run(args)
    except BenchError as exc:
        print(f"bench/intake.py: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("bench/intake.py: interrupted; servers stopped", file=sys.stderr)
        return 130
    print_table(summary)
    if args.json:
        sys.stdout.flush()
        print(json.dumps(summary), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
