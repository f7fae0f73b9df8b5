"""End-to-end benchmark: instructions accepted and *settled* per second, with the bank in its own process.

``gateway serve`` and the ISO 20022 bank simulator (``gateway simulate iso20022_bank``,
its default latencies) run as separate processes on a fresh database; a load generator (this process, asyncio)
offers instructions **open loop** at fixed rates (default 100, 200 and 500 per second for
20 s each): a request is sent on schedule whether or not earlier ones were answered, so a
slow gateway shows as a growing backlog and latency, not as a lower offered rate.

Per rate it reports dispatched/s (the bank took the payment) and the growth of the
dispatcher's own backlog (accepted, not yet taken by the bank, per second), settled/s
sustained during the phase, the backlog growth (accepted but not yet settled, per second),
and accepted→settled p50/p99 (the 202 seen by the
client to the ``settled`` event the bank's callback produced). Between phases the backlog
drains (bounded), so phases do not blend. First, in the same run, ``intake`` measures accepted/s
of a gateway that only takes instructions (``partners: {}``: nothing is sent to a bank),
closed loop at 64 connections; a rate may be given as a share of it (``--rates 80%``), and
the report gives settled/s at the highest rate ÷ intake.
Per rate it also gives the CPU seconds each process (gateway, bank simulator, this load
generator) spent from the phase's start to the end of its drain, per payment settled by then
(from /proc: meaningful on a busy machine too). ``--baseline-code DIR`` first runs the same
phases with the gateway and simulator code in DIR (an older commit), so before and after are
measured in one run. ``--workers 1,2`` (PostgreSQL) runs the rates with one gateway process,
then two, each on a fresh schema, and gives the ratio of their settled/s. Every phase counts,
in the bank simulator's journal, the payments sent to the bank more than once (double
dispatches, ``double_dispatches``): the bench exits 1 if there are any.

    .venv/bin/python bench/e2e.py                          # SQLite, ≈ 2-3 minutes
    .venv/bin/python bench/e2e.py --json                   # + one JSON object, last stdout line
    .venv/bin/python bench/e2e.py --rates 100,200 --seconds 10
    .venv/bin/python bench/e2e.py --rates 80% --seconds 30   # does the dispatcher keep up at 80 % of intake?
    .venv/bin/python bench/e2e.py --profile var/serve.prof   # cProfile of the gateway process
    git archive OLD gateway adapters simulators contracts config | tar -x -C var/old/src   # then link
    var/old/path/{gateway,gateway_adapters,gateway_simulators,gateway_contracts} to src/{gateway,adapters,…}
    .venv/bin/python bench/e2e.py --baseline-code var/old/path          # before and after, same run
    .venv/bin/python bench/e2e.py --database-url postgresql+asyncpg://postgres@127.0.0.1:5432/test --workers 1,2

With a PostgreSQL URL the bench works in a throw-away schema ``bench_<random>`` (named in
the URL with ``?schema=``), dropped afterwards. All traffic stays on 127.0.0.1.
Not part of the test suite.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
from sqlalchemy import func, select, text

from gateway.contracts.registry import contracts
from gateway.store.db import create_engine
from gateway.store.tables import instruction_events, processes

GATEWAY = str(Path(sys.executable).with_name("gateway"))
SECRETS = {"request_secret": "bench-only-bank-request-secret", "callback_secret": "bench-only-bank-callback-secret"}


_REFERENCE = "INV-@@@@@@@@@@@@"


def instruction_template() -> bytes:
    """The contract's own example (instruction 1.0) serialised once, its reference a placeholder.

    The load generator shares the machine's CPUs with the gateway and the simulator: each request
    only puts a fresh reference into these bytes, instead of building and serialising a dict.
    """
    body: dict[str, Any] = dict(contracts().schema("instruction", "1.0")["examples"][0])
    body["reference"] = _REFERENCE
    return json.dumps(body).encode()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_config(folder: Path, db_url: str, port: int, bank_port: int, *, with_bank: bool) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    partners = (
        f"""partners:
  iso20022_bank:
    base_url: "http://127.0.0.1:{bank_port}"
    request_secret: {SECRETS["request_secret"]}
    callback_secret: {SECRETS["callback_secret"]}
    currencies: [EUR]
    bulk_submit: true
"""
        if with_bank
        else "partners: {}\n"
    )
    path = folder / "gateway.yaml"
    path.write_text(
        f"""
security:
  encryption_keys: "bench:dGVzdC1vbmx5LWluc2VjdXJlLWtleS0zMi1ieXRlcyE="
database: {{url: "{db_url}"}}
server: {{host: 127.0.0.1, port: {port}, public_url: "http://127.0.0.1:{port}"}}
ledger: {{enabled: true}}
{partners}simulators:
  iso20022_bank:
    host: 127.0.0.1
    port: {bank_port}
    request_secret: {SECRETS["request_secret"]}
    callback_secret: {SECRETS["callback_secret"]}
    callback_batch_max: 500
""",
        encoding="utf-8",
    )
    return path


def code_env(code: Path | None) -> dict[str, str] | None:
    """The environment of a process that runs the gateway's code from ``code`` (None: this checkout's).

    ``code`` holds ``gateway``, ``gateway_adapters``, ``gateway_simulators`` and ``gateway_contracts``
    (e.g. links into an exported older commit); it goes first on ``PYTHONPATH``, and the process starts in
    its own folder so that the current directory cannot shadow it.
    """
    if code is None:
        return None
    return {**os.environ, "PYTHONPATH": str(code.resolve())}


def spawn(args: list[str], log: Path, code: Path | None = None) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            args, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, env=code_env(code), cwd=log.parent
        )


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


async def wait_listening(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        except OSError:
            await asyncio.sleep(0.05)
    raise SystemExit(f"bench: nothing listening on port {port} after {timeout} s")


def prepare(config: Path, code: Path | None = None) -> str:
    """Migrate the database and make an API key (the CLI, as an operator would)."""
    env, cwd = code_env(code), config.parent
    subprocess.run(
        [GATEWAY, "--config", str(config), "db", "upgrade"], check=True, capture_output=True, env=env, cwd=cwd
    )
    return subprocess.run(
        [GATEWAY, "--config", str(config), "keys", "create", "--business-unit", "bench"],
        check=True,
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
    ).stdout.strip()


class Load:
    """Posts instructions; remembers when each 202 arrived (wall clock, to compare with the event times)."""

    def __init__(self, session: aiohttp.ClientSession, port: int, key: str) -> None:
        self.session, self.port, self.key = session, port, key
        self.accepted: dict[str, float] = {}  # instruction id -> wall-clock time of its 202
        self.refused = 0
        self.url = f"http://127.0.0.1:{port}/v1/instructions"
        self.template = instruction_template()
        self.placeholder = _REFERENCE.encode()

    async def post(self) -> None:
        unique = uuid.uuid4().hex
        idem = unique
        body = self.template.replace(self.placeholder, f"INV-{unique[:12].upper()}".encode())
        headers = {"Authorization": f"Bearer {self.key}", "Idempotency-Key": idem, "Content-Type": "application/json"}
        for _ in range(50):  # retried on the same key after a 429/503 or a dropped connection
            try:
                async with self.session.post(self.url, data=body, headers=headers) as resp:
                    if resp.status in (200, 201, 202):
                        self.accepted[(await resp.json())["id"]] = time.time()
                        return
                    self.refused += 1
            except (TimeoutError, aiohttp.ClientError):
                self.refused += 1
            await asyncio.sleep(0.1)

    async def open_loop(self, rate: float, seconds: float) -> None:
        tasks = []
        start = time.monotonic()
        for i in range(int(rate * seconds)):
            delay = start + i / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(self.post()))
        await asyncio.gather(*tasks)

    async def closed_loop(self, connections: int, seconds: float) -> None:
        deadline = time.monotonic() + seconds

        async def worker() -> None:
            while time.monotonic() < deadline:
                await self.post()

        await asyncio.gather(*(worker() for _ in range(connections)))


async def wait_registered(engine: Any, workers: int, timeout: float = 120.0) -> None:
    """Wait until all ``workers`` gateway processes have registered (``processes``): the first one listens
    long before the others have started (each imports the whole gateway), and a phase measured meanwhile
    would measure fewer processes, and their start-up's CPU."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        async with engine.connect() as conn:
            if (await conn.scalar(select(func.count()).select_from(processes))) >= workers:
                return
        await asyncio.sleep(0.2)
    raise SystemExit(f"bench: fewer than {workers} gateway processes registered after {timeout} s")


async def settled_times(engine: Any) -> dict[str, float]:
    return await status_times(engine, ("settled",))


# a payment has left the dispatcher once the bank took it (``submitted``) or answered it outright
DISPATCHED = ("submitted", "settled", "rejected", "failed")


async def status_times(engine: Any, statuses: tuple[str, ...]) -> dict[str, float]:
    """Per instruction, the first moment (epoch seconds) it reached one of ``statuses``."""
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(instruction_events.c.instruction_id, func.min(instruction_events.c.occurred_at))
            .where(instruction_events.c.status.in_(statuses), instruction_events.c.applied.is_(True))
            .group_by(instruction_events.c.instruction_id)
        )
        return {i: at.timestamp() for i, at in rows}  # aware: ``UTCDateTime`` on both databases


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process and its reaped children, from /proc (Linux)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    # after the ")": state is field 3, utime 14, stime 15, cutime 16, cstime 17 (1-based, man 5 proc)
    return sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def database_pids() -> list[int]:
    """The PostgreSQL server's processes on this machine (``postgres``: its postmaster and backends), from /proc.

    A backend that ends is reaped by the postmaster, whose children's time (``cpu_seconds``) then holds its CPU.
    """
    found = []
    for comm in Path("/proc").glob("[0-9]*/comm"):
        try:
            if comm.read_text().strip() == "postgres":
                found.append(int(comm.parent.name))
        except OSError:
            continue
    return found


def machine_jiffies() -> tuple[int, int, int]:
    """The machine's CPU time so far, all CPUs: (busy, steal, total) clock ticks, from /proc/stat (Linux).

    Busy: user, nice, system, irq, softirq; steal: time the hypervisor gave this VM's CPUs to others.
    """
    fields = [int(f) for f in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    user, nice, system, idle, iowait, irq, softirq, steal = fields
    busy = user + nice + system + irq + softirq
    return busy, steal, busy + idle + iowait + steal


def machine_share(before: tuple[int, int, int], after: tuple[int, int, int]) -> dict[str, float]:
    """The share of the machine's CPU time (all CPUs) that was busy and that was stolen between two readings, %."""
    total = max(1, after[2] - before[2])
    return {
        "busy_pct": round(100 * (after[0] - before[0]) / total, 1),
        "steal_pct": round(100 * (after[1] - before[1]) / total, 1),
    }


def children(pid: int) -> list[int]:
    """The live child processes of ``pid`` (``gateway serve --workers N`` starts N - 1), from /proc (Linux)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            found += [int(c) for c in task.read_text().split()]
        except OSError:
            continue
    return found


def just(pid: int) -> Callable[[], list[int]]:
    """``pid`` alone at each reading."""
    return lambda: [pid]


def with_children(pid: int) -> Callable[[], list[int]]:
    """``pid`` and its live child processes at each reading (``gateway serve --workers``, ``--dispatch-process``)."""
    return lambda: [pid, *children(pid)]


def process_cpu(watched: dict[str, Callable[[], list[int]]]) -> dict[str, dict[int, float]]:
    """CPU seconds so far of each named group of processes, by pid; ``watched`` gives each group's pids at the
    reading (``load``: this load generator alone, not the processes it started)."""
    return {name: {p: cpu_seconds(p) for p in pids()} for name, pids in watched.items()}


def cpu_spent(before: dict[str, dict[int, float]], after: dict[str, dict[int, float]]) -> dict[str, list[float]]:
    """CPU seconds each process spent between two ``process_cpu`` readings (per name, one figure per process)."""
    return {name: [after[name][p] - before[name].get(p, 0.0) for p in after[name]] for name in after}


def double_dispatches(entries: list[dict[str, Any]]) -> dict[str, Any]:
    """Payments the gateway sent to the bank more than once, from the simulator's journal of submissions.

    A retry of one message on its own Idempotency-Key (``replayed``) is the same dispatch. A double
    dispatch is an instruction id in more than one message the bank took (``created``), or in a message
    under a new key that found it already held (``held_instruction_ids``: a bulk message answers it
    with its status, one payment alone is refused with 409). ``sent``: instruction ids taken once or more.
    """
    taken: dict[str, int] = {}
    held: set[str] = set()
    for entry in entries:
        if entry["kind"] != "submit" or entry["direction"] != "in" or entry["outcome"] == "replayed":
            continue
        again = set(entry.get("held_instruction_ids") or ())
        held |= again
        if entry["outcome"] == "created":
            for instruction_id in entry.get("instruction_ids") or [entry["instruction_id"]]:
                if instruction_id not in again:
                    taken[instruction_id] = taken.get(instruction_id, 0) + 1
    doubles = sorted(held | {i for i, n in taken.items() if n > 1})
    return {"sent": len(taken), "double_dispatches": len(doubles), "examples": doubles[:5]}


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def end_to_end(
    args: argparse.Namespace,
    tmp: Path,
    db_url: str,
    code: Path | None,
    procs: list[subprocess.Popen[bytes]],
    rates: list[float],
    workers: int = 1,
) -> dict[str, Any]:
    """The open-loop phases against ``gateway serve --workers N`` and the bank simulator running ``code``: one row
    per rate, and the double dispatches the simulator's journal shows over all of them."""
    rows: list[dict[str, Any]] = []
    log = tmp / "processes.log"
    port, bank_port = free_port(), free_port()
    config = write_config(tmp, db_url, port, bank_port, with_bank=True)
    key = prepare(config, code)
    procs.append(spawn([GATEWAY, "--config", str(config), "simulate", "iso20022_bank"], log, code))
    await wait_listening(bank_port)
    watched = {"simulator": just(procs[-1].pid), "load": just(os.getpid())}
    serve = [GATEWAY, "--config", str(config), "serve"] + (["--workers", str(workers)] if workers > 1 else [])
    separate = args.dispatch_process and code is None  # this checkout's phases only (the baseline may lack it)
    serve += ["--dispatch-process"] if separate else []
    if args.profile and code is None:  # cProfile of the gateway (first) process, written when it stops (SIGTERM)
        out = Path(args.profile).resolve()
        out = out if len(args.workers) == 1 else out.with_name(f"{out.stem}.w{workers}{out.suffix}")
        serve = [sys.executable, "-m", "cProfile", "-o", str(out), *serve]
    procs.append(spawn(serve, log, code))
    watched["gateway"] = with_children(procs[-1].pid)
    if db_url.startswith("postgresql"):
        watched["database"] = database_pids  # every server process, not only one
    await wait_listening(port)
    engine = create_engine(db_url)
    await wait_registered(engine, workers + separate)
    connector = aiohttp.TCPConnector(limit=512)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=30)) as session:
        load = Load(session, port, key)
        for rate in rates:
            before = set(load.accepted)
            settled_before = len(await settled_times(engine))
            dispatched_before = len(await status_times(engine, DISPATCHED))
            cpu0 = process_cpu(watched)
            machine0 = machine_jiffies()
            t0 = time.time()
            await load.open_loop(rate, args.seconds)
            t1 = time.time()
            machine = machine_share(machine0, machine_jiffies())  # the phase alone: is the machine the limit?
            settled_end = await settled_times(engine)
            dispatched_end = await status_times(engine, DISPATCHED)
            mine = {i: t for i, t in load.accepted.items() if i not in before}
            # drain (bounded) so the next rate starts from an empty backlog
            drain_deadline = time.monotonic() + args.drain
            settled = settled_end
            while time.monotonic() < drain_deadline and not set(mine) <= set(settled):
                await asyncio.sleep(0.5)
                settled = await settled_times(engine)
            cpu = cpu_spent(cpu0, process_cpu(watched))  # the phase and its drain: the work of its payments
            done = sum(1 for i in mine if i in settled)
            latencies = [settled[i] - t for i, t in mine.items() if i in settled]
            in_phase = sum(1 for t in settled_end.values() if t0 <= t <= t1)
            backlog = len(load.accepted) - len(settled_end)
            backlog_start = len(before) - settled_before
            # the dispatcher's own backlog: accepted, not yet taken by the bank (issue: it must stay flat at
            # 80 % of intake's maximum, whatever the bank's settling adds after it)
            waiting = len(load.accepted) - len(dispatched_end)
            waiting_start = len(before) - dispatched_before
            row = {
                "offered_per_s": rate,
                "accepted": len(mine),
                "accepted_per_s": round(len(mine) / (t1 - t0), 1),
                "settled_per_s": round(in_phase / (t1 - t0), 1),
                "backlog_growth_per_s": round((backlog - backlog_start) / (t1 - t0), 1),
                "dispatched_per_s": round(sum(1 for t in dispatched_end.values() if t0 <= t <= t1) / (t1 - t0), 1),
                "dispatch_backlog_growth_per_s": round((waiting - waiting_start) / (t1 - t0), 1),
                "dispatch_backlog_end": waiting,
                "p50_s": None if not latencies else round(statistics.median(latencies), 3),
                "p99_s": None if not latencies else round(pct(latencies, 0.99) or 0, 3),
                "unsettled_after_drain": len(set(mine) - set(settled)),
                # CPU seconds each process spent from the phase's start to the end of its drain, and per
                # payment of the phase settled by then (ms): the whole cost of a payment, accepted to
                # settled, when the drain finished (``open`` 0); meaningful on a busy machine too
                "cpu_s": {name: round(sum(cpu[name]), 2) for name in watched},
                # each gateway process's share (``--workers``): the first is ``gateway serve`` itself
                "gateway_cpu_s_each": [round(c, 2) for c in cpu["gateway"]],
                "cpu_ms_per_settled": {
                    name: round(1000 * sum(cpu[name]) / done, 2) if done else None for name in watched
                },
                # the whole machine during the phase (not its drain), all CPUs: near 100 % busy, more
                # processes cannot settle more here; steal: CPU the hypervisor gave to other VMs
                "machine_cpu": {**machine, "cpus": os.cpu_count()},
            }
            rows.append(row)
            print(f"  {'baseline ' if code else ''}{workers} process(es), offered {rate:.0f}/s: {row}", file=sys.stderr)
        # every submission the bank saw (its payments drained: nothing in flight), bodies left out
        async with session.get(f"http://127.0.0.1:{bank_port}/_sim/journal", params={"kind": "submit"}) as resp:
            journal = (await resp.json())["entries"]
    await engine.dispose()
    for proc in reversed(procs):
        stop(proc)
    procs.clear()
    accepted = set(load.accepted)
    checked = double_dispatches(journal)
    phase = {"workers": workers, "rates": rows, **checked, "accepted": len(accepted)}
    print(f"  {workers} process(es): {checked}", file=sys.stderr)
    return phase


async def run(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    procs: list[subprocess.Popen[bytes]] = []
    schema = None
    if args.database_url:
        schema = f"bench_{secrets.token_hex(6)}"
        admin = create_engine(args.database_url)
        async with admin.begin() as conn:
            await conn.execute(text(f"CREATE SCHEMA {schema}"))
        await admin.dispose()
    sep = "&" if args.database_url and "?" in args.database_url else "?"

    async def url(name: str) -> str:
        """A fresh, empty database for one part of the run."""
        if not args.database_url:
            return f"sqlite+aiosqlite:///{tmp / name / 'gateway.db'}"
        admin = create_engine(args.database_url)
        async with admin.begin() as conn:
            await conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
            await conn.execute(text(f"CREATE SCHEMA {schema}"))
        await admin.dispose()
        return f"{args.database_url}{sep}schema={schema}"

    result: dict[str, Any] = {"rates": [], "database": "postgresql" if args.database_url else "sqlite"}
    result["workers"] = args.workers
    try:
        # -- intake only, same machine, same run, first: a rate may be given as a share of it (``80%``) -----
        result["intake_accepted_per_s"] = await intake_only(args, tmp, await url("intake"), procs)
        rates = offered_rates(args.rates, result["intake_accepted_per_s"])
        # -- end to end: the baseline code first (when asked for), then this checkout's, with each number of
        # processes in turn (the same rates), each on a fresh database -------------------------------------
        if args.baseline_code:
            result["baseline_code"] = str(args.baseline_code)
            baseline = await end_to_end(
                args, tmp / "baseline", await url("baseline"), args.baseline_code, procs, rates, args.workers[0]
            )
            result["baseline_rates"] = baseline["rates"]
            result["baseline_double_dispatches"] = baseline["double_dispatches"]
        result["phases"] = [
            await end_to_end(args, tmp / f"e2e-w{n}", await url(f"e2e-w{n}"), None, procs, rates, n)
            for n in args.workers
        ]
        result["rates"] = result["phases"][0]["rates"]
    finally:
        for proc in reversed(procs):
            stop(proc)
        if schema:
            admin = create_engine(args.database_url)
            async with admin.begin() as conn:
                await conn.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
            await admin.dispose()
    top = max((r["settled_per_s"] for phase in result["phases"] for r in phase["rates"]), default=0)
    result["max_settled_per_s"] = top
    result["double_dispatches"] = sum(phase["double_dispatches"] for phase in result["phases"])
    if len(result["phases"]) > 1:  # the most processes against the fewest, per rate and at their best
        few = min(result["phases"], key=lambda phase: phase["workers"])  # any order: 2,1 runs two first
        many = max(result["phases"], key=lambda phase: phase["workers"])
        result["workers_ratio"] = [
            round(m["settled_per_s"] / f["settled_per_s"], 2) if f["settled_per_s"] else None
            for f, m in zip(few["rates"], many["rates"], strict=True)
        ]
        best_few = max(r["settled_per_s"] for r in few["rates"])
        best_many = max(r["settled_per_s"] for r in many["rates"])
        result["workers_ratio_best"] = round(best_many / best_few, 2) if best_few else None
    result["settled_vs_intake"] = (
        round(top / result["intake_accepted_per_s"], 2) if result["intake_accepted_per_s"] else None
    )
    if args.baseline_code:
        result["settled_vs_baseline"] = [
            round(now["settled_per_s"] / then["settled_per_s"], 2) if then["settled_per_s"] else None
            for now, then in zip(result["rates"], result["baseline_rates"], strict=True)
        ]
    return result


async def intake_only(args: argparse.Namespace, tmp: Path, db_url: str, procs: list[subprocess.Popen[bytes]]) -> float:
    """Accepted/s of a gateway that only takes instructions (no partner), closed loop at 64 connections."""
    log = tmp / "processes.log"
    port = free_port()
    config = write_config(tmp / "intake", db_url, port, free_port(), with_bank=False)
    key = prepare(config)
    procs.append(spawn([GATEWAY, "--config", str(config), "serve"], log))
    await wait_listening(port)
    connector = aiohttp.TCPConnector(limit=512)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=30)) as session:
        load = Load(session, port, key)
        t0 = time.monotonic()
        await load.closed_loop(64, args.intake_seconds)
        accepted = round(len(load.accepted) / (time.monotonic() - t0), 1)
    stop(procs.pop())
    return accepted


def offered_rates(text: str, intake: float) -> list[float]:
    """``--rates``: per second (``500``) or as a share of intake's maximum measured in this run (``80%``)."""
    return [round(intake * float(r[:-1]) / 100, 1) if r.endswith("%") else float(r) for r in text.split(",")]


def worker_counts(text: str) -> list[int]:
    """``--workers``: one number of processes, or several comma-separated (``1,2``)."""
    counts = [int(n) for n in text.split(",")]
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError("process counts are positive integers, e.g. 1,2")
    return counts


def table(rows: list[dict[str, Any]]) -> None:
    heads = ("offered/s", "accepted/s", "dispatched/s", "to send/s", "settled/s", "backlog/s", "p50 s", "p99 s", "open")
    print(" ".join(f"{h:>12}" for h in heads))
    for r in rows:
        print(
            f"{r['offered_per_s']:>12.0f} {r['accepted_per_s']:>12} {r['dispatched_per_s']:>12} "
            f"{r['dispatch_backlog_growth_per_s']:>12} {r['settled_per_s']:>12} {r['backlog_growth_per_s']:>12} "
            f"{r['p50_s']!s:>12} {r['p99_s']!s:>12} {r['unsettled_after_drain']:>12}"
        )
    print("to send/s: growth of the dispatcher's backlog (accepted, not yet taken by the bank); backlog/s: of")
    print("accepted but not yet settled")
    database = any("database" in r["cpu_ms_per_settled"] for r in rows)
    print(
        "CPU ms per settled payment, phase + drain (gateway / bank simulator / load generator"
        f"{' / PostgreSQL' if database else ''}); machine CPU busy and stolen during the phase, "
        f"% of {os.cpu_count()} CPUs"
    )
    for r in rows:
        per = r["cpu_ms_per_settled"]
        names = ("gateway", "simulator", "load", *(("database",) if database else ()))
        cells = [per.get(name) for name in names]
        machine = r["machine_cpu"]
        cells += [f"{machine['busy_pct']} %", f"{machine['steal_pct']} %"]
        print(f"{r['offered_per_s']:>11.0f} " + " ".join(f"{c!s:>11}" for c in cells))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--rates",
        default="100,200,500",
        help="offered instructions per second, comma-separated; `80%%` offers 80 %% of the intake-only maximum "
        "measured first in the same run",
    )
    parser.add_argument("--seconds", type=float, default=20, help="length of each rate's phase")
    parser.add_argument("--drain", type=float, default=20, help="longest wait for the backlog after a phase")
    parser.add_argument("--intake-seconds", type=float, default=10, help="length of the intake-only measurement")
    parser.add_argument("--database-url", help="a PostgreSQL URL (default: a SQLite file in a temporary folder)")
    parser.add_argument(
        "--workers",
        type=worker_counts,
        default=[1],
        help="`gateway serve --workers N` (above 1: PostgreSQL); comma-separated (e.g. 1,2): the same rates "
        "with each number of processes in turn, each on a fresh schema, and the ratio of the most to the fewest",
    )
    parser.add_argument(
        "--dispatch-process",
        action="store_true",
        help="`gateway serve --dispatch-process` (the dispatcher in a process of its own) for this checkout's "
        "phases; the baseline's (`--baseline-code`) run as before",
    )
    parser.add_argument("--profile", metavar="FILE", help="run `gateway serve` under cProfile, stats to FILE")
    parser.add_argument(
        "--baseline-code",
        type=Path,
        metavar="DIR",
        help="first run the same phases with the gateway and simulator code in DIR (gateway, gateway_adapters, "
        "gateway_simulators, gateway_contracts: e.g. links into `git archive` of an older commit)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object as the last stdout line")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-e2e-") as tmp:
        result = asyncio.run(run(args, Path(tmp)))
    print(f"end to end ({result['database']}), open loop, {args.seconds:.0f} s per rate")
    if args.baseline_code:
        print(
            f"baseline: the code in {args.baseline_code} (same load generator, same run, {args.workers[0]} process(es))"
        )
        table(result["baseline_rates"])
        print(f"double dispatches (simulator's journal): {result['baseline_double_dispatches']}")
        print("this checkout")
    for phase in result["phases"]:
        print(f"{phase['workers']} process(es)")
        table(phase["rates"])
        print(
            f"double dispatches (simulator's journal): {phase['double_dispatches']} "
            f"({phase['sent']} payments sent, {phase['accepted']} accepted)"
        )
    if args.baseline_code:
        print(f"settled/s this checkout ÷ baseline, per rate: {result['settled_vs_baseline']}")
    if "workers_ratio" in result:
        print(
            f"settled/s {max(args.workers)} ÷ {min(args.workers)} process(es), per rate: {result['workers_ratio']}; "
            f"best ÷ best: {result['workers_ratio_best']}"
        )
    print(
        f"intake only: {result['intake_accepted_per_s']} accepted/s; "
        f"best settled/s ÷ intake = {result['settled_vs_intake']}"
    )
    if args.json:
        print(json.dumps(result))
    if result["double_dispatches"] or result.get("baseline_double_dispatches"):
        print("bench: FAILED, payments were sent to the bank more than once (see double dispatches)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
