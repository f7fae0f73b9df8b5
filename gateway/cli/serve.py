"""``gateway serve``: the gateway API, dispatcher and poller (and, for trying it out, the partner simulators)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from gateway.api.server import bind, start_app
from gateway.cli.common import (
    Subparsers,
    UsageError,
    command,
    database,
    load,
    positive,
    require_schema,
    signalled,
)
from gateway.config import Settings
from gateway.contracts.registry import contracts
from gateway.devtools.simulators import start_simulators
from gateway.domain.clock import system_clock
from gateway.errors import ConfigError
from gateway.metrics import share_with_children
from gateway.plugins.manager import Plugins
from gateway.runtime import Runtime, create_app
from gateway.store import repo
from gateway.store.connect import sqlite_path

__all__ = ["follow_simulators", "register"]

_LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def _listen(host: str, port: int, what: str, how_to_move: str) -> socket.socket:
    try:
        return bind(host, port)
    except ConfigError as exc:
        raise UsageError(f"{what} {exc.message} (is another `gateway serve` running?); {how_to_move}") from None


def _bind_all(
    settings: Settings, simulators: Mapping[str, Mapping[str, Any]]
) -> tuple[socket.socket, dict[str, socket.socket]]:
    bound: dict[str, socket.socket] = {}
    try:
        for name, cfg in simulators.items():
            var = f"GATEWAY_SIMULATORS__{name.upper()}__PORT"
            bound[name] = _listen(
                str(cfg.get("host", "127.0.0.1")),
                int(cfg.get("port", 0)),
                f"simulator {name}",
                f"move it with {var}=0 (any free port) or simulators.{name}.port in {settings.source}",
            )
        gateway = _listen(
            settings.host,
            settings.port,
            "the gateway",
            f"move it with --port, GATEWAY_PORT or server.port in {settings.source}",
        )
    except UsageError:
        for sock in bound.values():
            sock.close()
        raise
    return gateway, bound


def _url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://{host}:{port}"


def follow_simulators(settings: Settings, urls: Mapping[str, str]) -> Settings:
    """Point each partner whose ``base_url`` is on this machine at the simulator started for it.

    So a simulator moved to another port (or to port 0) needs one setting, not two.
    """
    overrides: dict[str, str] = {}
    for name, url in urls.items():
        partner = settings.section("partners").get(name) or {}
        base = partner.get("base_url")
        if not base or settings.origin(f"partners.{name}.base_url") != settings.source:
            continue  # set on purpose through the environment: leave it
        parts = urlsplit(str(base))
        if parts.hostname in _LOOPBACK and base != url:
            overrides[f"partners__{name}__base_url"] = urlunsplit(parts._replace(netloc=urlsplit(url).netloc))
    return settings.with_overrides(**overrides) if overrides else settings


def _try_it(url: str, demo_key: str, finance_key: str) -> str:
    # the contract's own example, without a fixed execution date that would go stale
    sample = dict(contracts().schema("instruction", "1.0")["examples"][0], reference="@REF@")
    sample.pop("requested_execution_date", None)
    # a fresh reference per run of the line: the shell fills it in between the quotes
    example = json.dumps(sample).replace("@REF@", "INV-'$(date +%s%N)'")
    return (
        f"\nDemo business unit API key: {demo_key}\nAPI: {url}/v1/instructions  (docs: {url}/openapi.json)\n"
        f"Try it:\n  curl -s -X POST {url}/v1/instructions "
        f"-H 'Authorization: Bearer {demo_key}' -H 'Content-Type: application/json' "
        f'-H "Idempotency-Key: $(date +%s%N)" '
        f"-d '{example}'\n"
        f"Then: curl -s {url}/v1/instructions -H 'Authorization: Bearer {demo_key}'\n"
        f"\nFinance API key (holds, alerts; docs/risk.md): {finance_key}\n"
        f"  curl -s {url}/v1/holds -H 'Authorization: Bearer {finance_key}'\n"
    )


def _demo_keys_file(settings: Settings) -> Path:
    """Where ``--demo`` keeps its two keys: beside the SQLite file, or ``var/`` for a server database."""
    file = sqlite_path(settings.database_url)
    return (file.parent if file is not None else Path("var")) / "demo-keys.json"


async def demo_keys(settings: Settings) -> tuple[str, str]:
    """The demo business unit's key and the finance key: the ones saved by an earlier ``--demo`` while they
    still work, new ones (saved, readable by this user only) otherwise — a restart does not pile up keys."""
    path = _demo_keys_file(settings)
    wanted = {"demo": ["instructions"], "finance": ["finance"]}
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        saved = {}
    keys: dict[str, str] = {}
    async with database(settings) as engine, engine.begin() as conn:
        for unit, scopes in wanted.items():
            key = saved.get(unit) if isinstance(saved, dict) else None
            principal = await repo.lookup_principal(conn, repo.hash_key(key), system_clock()) if key else None
            if principal is None or principal.business_unit != unit or set(principal.scopes) != set(scopes):
                key = await repo.create_api_key(conn, unit, scopes, system_clock())
            keys[unit] = key
    if keys != saved:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(json.dumps(keys), encoding="utf-8")
    print(f"demo keys: {path} (reused while they work; delete the file for new ones)", file=sys.stderr)
    return keys["demo"], keys["finance"]


def _child_serve(args: argparse.Namespace, *options: str) -> list[str]:
    """``gateway serve`` in a child process with ``options`` and this one's configuration and logging options."""
    cmd = [sys.executable, "-m", "gateway.cli", "serve", *options]
    if getattr(args, "config", None):
        cmd += ["--config", str(args.config)]
    if getattr(args, "verbose", False):
        cmd.append("-v")
    if getattr(args, "log_format", None):
        cmd += ["--log-format", args.log_format]
    return cmd


def _worker_args(args: argparse.Namespace, port: int, fd: int) -> list[str]:
    """The command line of one more worker: this one's options, on the socket already listening."""
    return _child_serve(args, "--port", str(port), "--listen-fd", str(fd))


def _dispatcher_args(args: argparse.Namespace, wake_fd: int) -> list[str]:
    """The command line of the dispatcher's own process (``--dispatch-process``); ``wake_fd``: the read end of
    the pipe this process writes to when it queues jobs."""
    return _child_serve(args, "--dispatch-only", "--parent-pid", str(os.getpid()), "--wake-fd", str(wake_fd))


async def _respawn_dead(
    workers: list[subprocess.Popen[bytes]], cmds: list[list[str]], fds: tuple[int, ...], stop: asyncio.Event
) -> None:
    """A worker that died (killed, out of memory) is started again; its claims were taken over meanwhile."""
    while not stop.is_set():
        for i, proc in enumerate(workers):
            if proc.poll() is not None:
                print(f"worker {proc.pid} ended ({proc.returncode}); starting another", file=sys.stderr)
                workers[i] = subprocess.Popen(cmds[i], pass_fds=fds)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=1.0)


#: the least time between two claims of the dispatcher's own process: woken by every intake commit and with a
#: core to itself, it would otherwise claim a few payments at a time, each batch paying the same statements,
#: pain.001 and request (at 200/s it spent more CPU than the serving process); 50 ms gathers ~10 per batch
#: at 200/s, and under load a batch takes longer than that to prepare anyway
DISPATCH_PROCESS_GATHER_SECONDS = 0.05


class _WakePipe:
    """How the serving process wakes its dispatcher process: a byte down a pipe each time it queues jobs
    (an intake commit, an approved hold, a collection), so the dispatcher waits for no poll. Non-blocking: a
    full pipe (the dispatcher busy, or being restarted) already holds a wake."""

    def __init__(self) -> None:
        self.read_fd, self._write_fd = os.pipe()
        os.set_blocking(self._write_fd, False)

    def __call__(self) -> None:
        with contextlib.suppress(BlockingIOError, BrokenPipeError):
            os.write(self._write_fd, b"!")

    def close(self) -> None:
        os.close(self._write_fd)
        os.close(self.read_fd)


async def _parent_gone(parent: int) -> None:
    """Return once ``parent`` is no longer this process's parent (it ended, even by SIGKILL)."""
    while os.getppid() == parent:
        await asyncio.sleep(0.5)


async def dispatch_only(settings: Settings, parent: int | None, wake_fd: int | None) -> int:
    """The dispatcher's own process (``gateway serve --dispatch-process`` starts it): claims, screens, routes
    and sends, with a heartbeat of its own; no API, no scheduled jobs, no webhooks (the serving process runs
    those). Woken through ``wake_fd`` when the serving process queues jobs (and every
    ``dispatch.idle_poll_seconds`` for retries that come due); it ends with its parent, whatever ended that
    (the pipe closes, and the parent is no longer its parent)."""
    gather = max(settings.dispatch.gather_seconds, DISPATCH_PROCESS_GATHER_SECONDS)
    runtime = Runtime(settings.with_overrides(dispatch__gather_seconds=gather))
    # before start registers this process: a SIGTERM seen from then on must end it through ``close``, which
    # deregisters it, not by the default action (the parent stops it as soon as it is registered, in a test)
    signal_seen = signalled()
    await runtime.start(dispatch=True, poll=False, webhooks=False)
    loop = asyncio.get_running_loop()
    gone = asyncio.Event()

    def woken() -> None:
        try:
            data = os.read(wake_fd, 4096) if wake_fd is not None else b""
        except BlockingIOError:
            return
        if not data:  # every write end closed: the serving process is gone
            loop.remove_reader(wake_fd)
            gone.set()
            return
        runtime.wake_dispatchers()

    if wake_fd is not None:
        os.set_blocking(wake_fd, False)
        loop.add_reader(wake_fd, woken)
    try:
        waits = [asyncio.ensure_future(signal_seen.wait()), asyncio.ensure_future(gone.wait())]
        if parent is not None:
            waits.append(asyncio.ensure_future(_parent_gone(parent)))
        _, pending = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
    finally:
        if wake_fd is not None and not gone.is_set():
            loop.remove_reader(wake_fd)
        await runtime.close()
    return 0


async def serve_command(args: argparse.Namespace) -> int:
    """``gateway serve``: run until SIGINT or SIGTERM."""
    settings = load(args)
    if args.dispatch_only:
        async with database(settings) as engine:
            await require_schema(engine)
        return await dispatch_only(settings, args.parent_pid, args.wake_fd)
    if args.port is not None:
        settings = settings.with_overrides(server__port=args.port)
    if args.workers > 1 and args.dispatch_process:
        raise UsageError("--dispatch-process is for one serving process: with --workers each one dispatches")
    if args.workers > 1 and settings.database_url.startswith("sqlite"):
        raise UsageError("--workers above 1 needs PostgreSQL: SQLite has one writer, so run one process")
    if args.workers > 1 and (args.with_simulators or args.demo):
        raise UsageError("--workers above 1 is not for trying out: run the simulators with `gateway simulate NAME`")
    async with database(settings) as engine:
        await require_schema(engine)
    plugins = Plugins()
    sims_cfg = settings.section("simulators") if args.with_simulators else {}
    if args.listen_fd is not None:  # a worker started by `--workers`: the socket is its parent's
        gw_sock, sim_socks = socket.socket(fileno=args.listen_fd), {}
    else:
        gw_sock, sim_socks = _bind_all(settings, sims_cfg)
    if settings.port == 0:  # port 0 picked a free port: partners' callbacks must go to that one
        settings = settings.with_overrides(server__port=gw_sock.getsockname()[1])
    settings = follow_simulators(settings, {name: _url(sock) for name, sock in sim_socks.items()})
    demo_key, finance_key = await demo_keys(settings) if args.demo else (None, None)
    sims = await start_simulators(plugins, sims_cfg, sim_socks)
    # more workers share the listening socket (the kernel spreads connections); each has its own heartbeat
    cmd = _worker_args(args, settings.port, gw_sock.fileno())
    wake = _WakePipe() if args.dispatch_process else None
    cmds = [cmd] * (args.workers - 1) + ([_dispatcher_args(args, wake.read_fd)] if wake is not None else [])
    passed = (gw_sock.fileno(),) if wake is None else (gw_sock.fileno(), wake.read_fd)
    # several processes: their metrics in one directory, so /metrics (any of them) gives the sums
    made_dir = share_with_children() if cmds else None
    # before the processes start and this one registers (and says "listening"): a signal sent as soon as any
    # of that is seen must stop them cleanly (deregistered, children stopped), not by the default action
    signal_seen = signalled()
    workers = [subprocess.Popen(c, pass_fds=passed) for c in cmds]
    # the simulators started here mark development: the console's QA page drives them (docs/console.md)
    sim_urls = {name: app.url for name, app in sims.items()}
    app = create_app(settings, simulators=sim_urls, dispatch=wake is None, wake_elsewhere=wake)
    gateway = await start_app(app, gw_sock)
    url = settings.public_url
    if args.listen_fd is None:
        more = f" ({args.workers} worker processes)" if args.workers > 1 else ""
        more += " (the dispatcher in a process of its own)" if args.dispatch_process else ""
        print(f"Partner Gateway listening on {url}{more}", file=sys.stderr)
    for name, app in sims.items():
        print(f"  simulator {name} on {app.url}", file=sys.stderr)
    if demo_key and finance_key:
        print(_try_it(url, demo_key, finance_key), flush=True)
    stop = asyncio.Event()
    respawn = asyncio.create_task(_respawn_dead(workers, cmds, passed, stop))
    try:
        await signal_seen.wait()
    finally:
        stop.set()
        await respawn
        for proc in workers:
            proc.terminate()
        await gateway.stop()
        for proc in workers:
            await asyncio.to_thread(proc.wait)
        if wake is not None:
            wake.close()
        for app in sims.values():
            await app.stop()
        if made_dir is not None:
            shutil.rmtree(made_dir, ignore_errors=True)
    return 0


def register(subparsers: Subparsers) -> None:
    p = command(subparsers, "serve", serve_command, help="run the gateway API, dispatcher and poller")
    p.add_argument("--with-simulators", action="store_true", help="also run the configured partner simulators")
    p.add_argument("--demo", action="store_true", help="create a demo business unit key and print a curl line")
    p.add_argument("--port", type=int, help="override server.port")
    p.add_argument(
        "--workers",
        type=positive,
        default=1,
        help="processes sharing the port and the work (PostgreSQL only; default 1)",
    )
    p.add_argument("--listen-fd", type=int, help=argparse.SUPPRESS)  # how --workers hands a worker the socket
    p.add_argument(
        "--dispatch-process",
        action="store_true",
        help="run the dispatcher in a process of its own beside the API (SQLite too): intake and dispatch "
        "each get a CPU core",
    )
    p.add_argument("--dispatch-only", action="store_true", help=argparse.SUPPRESS)  # that process
    p.add_argument("--parent-pid", type=int, help=argparse.SUPPRESS)  # it ends when this one does
    p.add_argument("--wake-fd", type=int, help=argparse.SUPPRESS)  # the pipe that wakes it
