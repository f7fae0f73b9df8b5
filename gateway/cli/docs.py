"""``gateway docs``: generated documentation."""

from __future__ import annotations

import argparse
from pathlib import Path

from gateway.api.openapi import build_openapi, render_markdown
from gateway.cli.common import Subparsers, command, group
from gateway.contracts.registry import contracts
from gateway.plugins.manager import Plugins

__all__ = ["register"]


async def api_command(args: argparse.Namespace) -> int:
    """``gateway docs api``: the API reference in Markdown, from the OpenAPI document."""
    text = render_markdown(build_openapi(contracts(), sorted(Plugins(strict=False).adapter_classes())))
    if args.output == "-":
        print(text)
    else:
        Path(args.output).write_text(text, encoding="utf-8")
    return 0


def register(subparsers: Subparsers) -> None:
    docs = group(subparsers, "docs", help="generate documentation")
    p = command(docs, "api", api_command, help="write the API reference (Markdown) from the OpenAPI document")
    p.add_argument("--output", default="docs/api.md", help="file to write, or - for stdout")
