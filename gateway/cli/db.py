"""``gateway db``: the database schema."""

from __future__ import annotations

import argparse
import sys

from gateway.cli.common import Subparsers, command, database, group, load
from gateway.store.migrate import current_revision, upgrade

__all__ = ["register"]


async def upgrade_command(args: argparse.Namespace) -> int:
    """``gateway db upgrade``: create the database if it is a new SQLite file, then apply every migration."""
    async with database(load(args), create=True) as engine:
        await upgrade(engine)
        revision = await current_revision(engine)
    print(f"database at revision {revision}", file=sys.stderr)
    return 0


def register(subparsers: Subparsers) -> None:
    db = group(subparsers, "db", help="database")
    command(db, "upgrade", upgrade_command, help="apply schema migrations (creates a new SQLite file)")
