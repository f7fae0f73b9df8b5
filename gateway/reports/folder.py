"""The reports folder: one sub-folder per report id (``settlement.2026-12``) with every format and a summary.

Files are written under a temporary name and renamed, so a reader never sees half a report;
running a report again for the same period replaces it whole.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.errors import ConfigError
from gateway.reports.model import NAME_RE, PERIOD_RE, REGISTRY, Context, Report, parse_period
from gateway.reports.render import FORMATS, render

__all__ = ["REPORT_ID_RE", "ReportFolder", "build_report"]

REPORT_ID_RE = re.compile(NAME_RE.pattern[:-1] + r"\." + PERIOD_RE.pattern[1:])
_META = "meta.json"


async def build_report(engine: AsyncEngine, name: str, period: str, now: datetime, context: Context) -> Report:
    """Build one report from the registry (``ConfigError`` naming the known reports for an unknown name)."""
    definition = REGISTRY.get(name)
    if definition is None:
        raise ConfigError(f"no report called {name!r}: the reports are {', '.join(sorted(REGISTRY))}")
    return await definition.build(engine, parse_period(period), now, context)


@dataclass(frozen=True)
class ReportFolder:
    root: Path

    def write(self, report: Report) -> dict[str, Any]:
        """Write every format and the summary; returns the summary."""
        target = self.root / report.id
        target.mkdir(parents=True, exist_ok=True)
        for fmt in FORMATS:
            _replace(target / f"report.{fmt}", render(report, fmt))
        meta = {
            "id": report.id,
            "name": report.name,
            "title": report.title,
            "period": report.period.text,
            "generated_at": report.generated_at.isoformat(),
            "formats": list(FORMATS),
        }
        _replace(target / _META, json.dumps(meta) + "\n")
        return meta

    def summary(self, report_id: str) -> dict[str, Any] | None:
        try:
            found: dict[str, Any] = json.loads((self.root / report_id / _META).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return found

    def ids(self) -> list[str]:
        """Every report id written, in order (name, then period)."""
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if REPORT_ID_RE.fullmatch(p.name) and (p / _META).is_file())

    def read(self, report_id: str, fmt: str) -> str | None:
        try:
            return (self.root / report_id / f"report.{fmt}").read_text(encoding="utf-8")
        except OSError:
            return None


def _replace(path: Path, text: str) -> None:
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)
