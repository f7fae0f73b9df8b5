"""Scheduled reports (``config/reports.yaml``, cron expressions) and the anomaly check, on APScheduler.

The schedule file is checked whole at start: an unknown key, an unknown report, a cron
expression APScheduler cannot read or a bad period is one ``ConfigError`` naming the key.

```yaml
schedules:
  settlement-daily:          # a name of your choosing
    report: settlement       # a report name (gateway reports list)
    cron: "15 0 * * *"       # minute hour day-of-month month day-of-week, UTC
    period: previous-day     # previous-day|-month|-quarter or current-day|-month|-quarter
```
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.config import AnomalySettings, read_yaml_file
from gateway.domain.clock import Clock
from gateway.errors import ConfigError
from gateway.reports.anomaly import check_anomalies
from gateway.reports.folder import ReportFolder, build_report
from gateway.reports.model import REGISTRY, Context, period_containing

__all__ = ["PERIODS", "ReportScheduler", "Schedule", "load_schedules", "period_for"]

log = logging.getLogger(__name__)

PERIODS = (
    "previous-day",
    "previous-month",
    "previous-quarter",
    "current-day",
    "current-month",
    "current-quarter",
)
_KEYS = {"report", "cron", "period"}


@dataclass(frozen=True)
class Schedule:
    name: str
    report: str
    cron: str
    period: str

    def trigger(self) -> CronTrigger:
        return CronTrigger.from_crontab(self.cron, timezone="UTC")


def period_for(rule: str, now: datetime) -> str:
    """The period a scheduled run covers: the one holding ``now`` (current-…) or the one before it (previous-…)."""
    when, kind = rule.split("-", 1)
    if when == "current":
        return period_containing(kind, now)
    if kind == "day":
        return period_containing("day", now - timedelta(days=1))
    first = now.replace(day=1)
    if kind == "month":
        return period_containing("month", first - timedelta(days=1))
    quarter_first = first.replace(month=(now.month - 1) // 3 * 3 + 1)
    return period_containing("quarter", quarter_first - timedelta(days=1))


def load_schedules(path: Path | None) -> list[Schedule]:
    """Read and check the schedule file (None: nothing scheduled)."""
    if path is None:
        return []
    doc = read_yaml_file(path, "report schedules")
    unknown = sorted(set(doc) - {"schedules"})
    if unknown:
        raise ConfigError(f"{path}: unknown key {unknown[0]} (the file holds schedules:)")
    entries = doc.get("schedules") or {}
    if not isinstance(entries, dict):
        raise ConfigError(f"{path}: schedules must be a mapping of names to schedules")
    found = []
    for name, entry in entries.items():
        where = f"{path}: schedules.{name}"
        if not isinstance(entry, dict):
            raise ConfigError(f"{where} must be a mapping with report, cron and period")
        extra = sorted(set(entry) - _KEYS)
        if extra:
            raise ConfigError(f"{where}.{extra[0]}: unknown key (allowed: cron, period, report)")
        missing = sorted(_KEYS - set(entry))
        if missing:
            raise ConfigError(f"{where}.{missing[0]} is required")
        if entry["report"] not in REGISTRY:
            raise ConfigError(f"{where}.report: no report {entry['report']!r} (known: {', '.join(sorted(REGISTRY))})")
        if entry["period"] not in PERIODS:
            raise ConfigError(f"{where}.period must be one of {', '.join(PERIODS)}")
        schedule = Schedule(str(name), entry["report"], str(entry["cron"]), entry["period"])
        try:
            schedule.trigger()
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"{where}.cron: {schedule.cron!r} is not a cron expression ({exc})") from None
        found.append(schedule)
    return found


class ReportScheduler:
    """Runs the scheduled reports (writing them to the folder) and the anomaly check."""

    def __init__(
        self,
        engine: AsyncEngine,
        clock: Clock,
        schedules: list[Schedule],
        folder: ReportFolder,
        context: Context,
        anomaly: AnomalySettings,
    ) -> None:
        self.engine = engine
        self.clock = clock
        self.schedules = schedules
        self.folder = folder
        self.context = context
        self.anomaly = anomaly
        self._scheduler: AsyncIOScheduler | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    def start(self) -> None:
        self._scheduler = AsyncIOScheduler(timezone="UTC")
        for schedule in self.schedules:
            self._scheduler.add_job(
                self._guarded,
                schedule.trigger(),
                args=[f"report {schedule.name}", self._runner(schedule)],
                id=f"report:{schedule.name}",
                max_instances=1,
                coalesce=True,
            )
        if self.anomaly.enabled:
            self._scheduler.add_job(
                self._guarded,
                "interval",
                args=["anomaly check", self.check],
                seconds=self.anomaly.check_seconds,
                id="anomaly-check",
                max_instances=1,
                coalesce=True,
            )
        self._scheduler.start()

    async def stop(self, grace: float = 10.0) -> None:
        if self._scheduler is not None and self._scheduler.running:
            self._scheduler.shutdown(wait=False)
        self._scheduler = None
        running = [t for t in self._tasks if not t.done()]
        if running:
            _, pending = await asyncio.wait(running, timeout=grace)
            for task in pending:
                task.cancel()

    def _runner(self, schedule: Schedule) -> Callable[[], Awaitable[object]]:
        async def run() -> object:
            return await self.run(schedule)

        return run

    async def run(self, schedule: Schedule) -> dict[str, Any]:
        """Build one scheduled report for its period now and write it to the folder."""
        now = self.clock()
        report = await build_report(self.engine, schedule.report, period_for(schedule.period, now), now, self.context)
        meta = self.folder.write(report)
        log.info("report %s written to %s", report.id, self.folder.root)
        return meta

    async def check(self) -> object:
        return await check_anomalies(self.engine, self.anomaly, self.clock())

    async def _guarded(self, name: str, job: Callable[[], Awaitable[object]]) -> None:
        """A failing job is logged and runs again at its next time."""
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            await job()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("scheduled %s failed; it runs again at its next time", name)
        finally:
            if task is not None:
                self._tasks.discard(task)
