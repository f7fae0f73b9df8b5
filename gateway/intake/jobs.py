"""The file desk's scheduled jobs (APScheduler, as ``gateway.dispatch.scheduler``): inbox scan and report refresh.

``inbox-scan`` takes in the pain.001 files dropped into ``files.inbox_dir/<business unit>/``
every ``files.scan_seconds``; ``file-reports`` writes again, every ``files.report_seconds``,
the pain.002 of each unfinished file whose payments have moved on. A failing round is
logged and the job runs again at its next interval: both read their work from the
folders and the database, so nothing is lost between rounds or across a restart.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from gateway.config import FileSettings
from gateway.intake.files import FileDesk

__all__ = ["FileJobs"]

log = logging.getLogger(__name__)


class FileJobs:
    """Runs the inbox scan and the status-report refresh at their intervals."""

    def __init__(self, desk: FileDesk, settings: FileSettings) -> None:
        self.desk = desk
        self.settings = settings
        self._scheduler: AsyncIOScheduler | None = None
        self._running: set[asyncio.Task[object]] = set()

    def start(self) -> None:
        self._scheduler = AsyncIOScheduler(timezone="UTC")
        for job_id, job, seconds in (
            ("inbox-scan", self.desk.scan_inbox, self.settings.scan_seconds),
            ("file-reports", self.desk.write_due_reports, self.settings.report_seconds),
        ):
            self._scheduler.add_job(
                self._guarded,
                "interval",
                args=[job_id, job],
                seconds=seconds,
                id=job_id,
                max_instances=1,
                coalesce=True,
            )
        self._scheduler.start()

    async def stop(self, grace: float = 10.0) -> None:
        """Stop scheduling and let a round in progress finish (up to ``grace`` seconds)."""
        if self._scheduler is not None and self._scheduler.running:
            self._scheduler.shutdown(wait=False)
        self._scheduler = None
        running = [t for t in self._running if not t.done()]
        if running:
            _, pending = await asyncio.wait(running, timeout=grace)
            for task in pending:
                task.cancel()

    async def _guarded(self, name: str, job: Callable[[], Awaitable[int]]) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._running.add(task)
        try:
            done = await job()
            if done:
                log.info("%s: %d files", name, done)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("scheduled job %s failed; it runs again at its next interval", name)
        finally:
            if task is not None:
                self._running.discard(task)
