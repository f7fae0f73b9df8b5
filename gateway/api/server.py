"""Run aiohttp apps on sockets we bind ourselves (port 0 → a free port, race-free)."""

from __future__ import annotations

import socket
from dataclasses import dataclass

from aiohttp import web

from gateway.api.appkeys import SETTINGS
from gateway.api.connections import ConnectionLimits, GuardedRunner
from gateway.config import default_settings
from gateway.errors import ConfigError

__all__ = ["RunningApp", "bind", "start_app"]


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket; a clear ``ConfigError`` if the port is taken."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.listen(1024)
    sock.setblocking(False)
    return sock


@dataclass
class RunningApp:
    runner: web.AppRunner
    sock: socket.socket

    @property
    def port(self) -> int:
        return int(self.sock.getsockname()[1])

    @property
    def url(self) -> str:
        host = self.sock.getsockname()[0]
        return f"http://{host}:{self.port}"

    async def stop(self) -> None:
        await self.runner.cleanup()


async def start_app(app: web.Application, sock: socket.socket) -> RunningApp:
    """Serve ``app`` on ``sock``; the gateway's own ``server`` timeouts apply (``ConnectionLimits``)."""
    settings = app.get(SETTINGS) or default_settings()  # a simulator app carries no gateway settings
    limits = ConnectionLimits.from_server_settings(settings.server)
    runner = GuardedRunner(app, limits, access_log=None, handle_signals=False, shutdown_timeout=1.0)
    await runner.setup()
    await web.SockSite(runner, sock).start()
    return RunningApp(runner, sock)
