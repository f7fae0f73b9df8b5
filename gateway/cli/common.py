"""What every command group shares: the parser pieces, settings, the database, user errors, tables.

Each group module's ``register(subparsers)`` makes its commands with :func:`group` and
:func:`command`, so every command takes ``--config FILE`` and ``-v`` after its name as well
as before it, and every handler is wired the same way: ``async def handler(args) -> int``.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import TypeAlias

from rich.console import Console
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.config import Settings, load_settings
from gateway.domain.clock import system_clock
from gateway.errors import ConfigError, GatewayError
from gateway.store import repo
from gateway.store.connect import describe_connect_error, sqlite_path
from gateway.store.db import create_engine
from gateway.store.migrate import current_revision, head_revision

__all__ = [
    "Handler",
    "Parser",
    "Subparsers",
    "UsageError",
    "command",
    "common_options",
    "console",
    "create_key",
    "database",
    "group",
    "load",
    "positive",
    "require_schema",
    "signalled",
    "table",
    "wait_for_signal",
]

#: every command handler: the parsed arguments in, the exit code out
Handler = Callable[[argparse.Namespace], Awaitable[int]]


class UsageError(GatewayError):
    """The command line, or what it points at, is wrong."""

    default_message = "invalid command line"


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line (exit code 2)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: {message} (see --help)\n")


#: what ``register`` gets and ``group`` returns: the sub-commands of ``gateway`` or of a group
Subparsers: TypeAlias = "argparse._SubParsersAction[Parser]"


def common_options() -> argparse.ArgumentParser:
    """The options every command takes, before or after its name.

    Their defaults are ``SUPPRESS``: a sub-command that was not given ``--config`` leaves
    the value given before it alone.
    """
    options = argparse.ArgumentParser(add_help=False)
    options.add_argument(
        "--config",
        metavar="FILE",
        default=argparse.SUPPRESS,
        help="YAML config file (default: the embedded config/gateway.yaml)",
    )
    options.add_argument(
        "-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help="log at debug level (never SQL)"
    )
    options.add_argument(
        "--log-format",
        choices=["text", "json"],
        default=argparse.SUPPRESS,
        help="text (default) or json: one object per line (default from GATEWAY_LOG_FORMAT)",
    )
    return options


_COMMON = common_options()


def group(subparsers: Subparsers, name: str, *, help: str) -> Subparsers:
    """A command group (``gateway NAME …``); returns the sub-parsers to add its commands to."""
    parser = subparsers.add_parser(name, help=help, description=help, parents=[_COMMON])
    return parser.add_subparsers(dest=f"{name}_command", metavar="COMMAND", required=True, parser_class=Parser)


def command(subparsers: Subparsers, name: str, handler: Handler, *, help: str) -> Parser:
    """A command whose ``handler`` runs when it is given; add its arguments to the returned parser."""
    parser: Parser = subparsers.add_parser(name, help=help, description=help, parents=[_COMMON])
    parser.set_defaults(func=handler)
    return parser


def load(args: argparse.Namespace) -> Settings:
    """The settings: the ``--config`` file (or the embedded one) with the environment's overrides."""
    return load_settings(getattr(args, "config", None))


def positive(value: str) -> int:
    """An argparse type: a whole number of at least 1."""
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number") from None
    if number < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return number


@asynccontextmanager
async def database(settings: Settings, *, create: bool = False) -> AsyncIterator[AsyncEngine]:
    """An engine on the configured database, connected once so an unreachable one is a one-line error.

    Only ``create=True`` (``gateway db upgrade``) may make a new SQLite file; every other
    command says where it looked, so running ``gateway`` in the wrong folder leaves nothing there.
    """
    url = settings.database_url
    origin = settings.origin("database.url")
    file = sqlite_path(url)
    if file is not None and not create and not file.exists():
        raise UsageError(f"no database at {file} (database.url from {origin}): run `gateway db upgrade` first")
    try:
        engine = create_engine(url)
    except OSError as exc:
        raise UsageError(describe_connect_error(exc, url, origin)) from None
    except ConfigError as exc:
        raise UsageError(f"{exc.message} (database.url from {origin})") from None
    try:
        try:
            async with engine.connect():
                pass
        except Exception as exc:  # the driver's own errors (asyncpg, sqlite3, SQLAlchemy) have no common base
            raise UsageError(describe_connect_error(exc, url, origin)) from None
        yield engine
    finally:
        await engine.dispose()


async def require_schema(engine: AsyncEngine) -> None:
    """Refuse to go on, saying what to run, unless the schema is at the newest migration."""
    if await current_revision(engine) != head_revision():
        raise UsageError("the database schema is not up to date: run `gateway db upgrade` first")


async def create_key(settings: Settings, business_unit: str, scopes: Sequence[str]) -> str:
    """A new API key for ``business_unit`` (created if new); the plain key is returned once, never stored."""
    async with database(settings) as engine:
        await require_schema(engine)
        async with engine.begin() as conn:
            return await repo.create_api_key(conn, business_unit, scopes, system_clock())


def signalled() -> asyncio.Event:
    """An event set on SIGINT or SIGTERM, its handlers installed now: a process that says it is ready after
    this call cannot be interrupted halfway out of its start by a signal sent on seeing it."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop


async def wait_for_signal() -> None:
    """Return on SIGINT or SIGTERM."""
    await signalled().wait()


def console() -> Console:
    """The console tables and progress go to (its width follows the terminal, or ``COLUMNS``)."""
    return Console()


def table(title: str, *columns: str, names: Sequence[str] = (), numbers: Sequence[str] = ()) -> Table:
    """A table readable at 80 columns: the ``names`` columns (what a user types) never wrap or shrink.

    The other columns fold onto several lines when the terminal is narrow; ``numbers`` are right-aligned.
    """
    out = Table(title=title, title_justify="left")
    for column in columns:
        if column in names:
            out.add_column(column, no_wrap=True, overflow="ignore", min_width=len(column))
        else:
            out.add_column(column, overflow="fold", justify="right" if column in numbers else "left")
    return out
