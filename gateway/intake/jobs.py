"""The file desk's background work: the inbox scan (an APScheduler job, as ``gateway.dispatch.scheduler``)
and the report refresh.

``inbox-scan`` takes in the pain.001 files dropped into ``files.inbox_dir/<business unit>/``
every ``files.scan_seconds``. The report loop writes again the pain.002 of each unfinished
file whose payments have moved on: every ``files.report_seconds``, and soon after a committed
status change (the ``gateway_status_changed`` hook calls ``wake``; rounds at most every
``_WAKE_EVERY`` seconds). A wake during a round makes another round follow it, so a change is
never left for the next interval. A failing round is logged and retried: both read their work
from the folders and the database, so nothing is lost between rounds or across a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from gateway.config import FileSettings
from gateway.intake.files import FileDesk

__all__ = ["FileJobs"]

log = logging.getLogger(__name__)

#: least time between two report rounds brought forward by status changes
_WAKE_EVERY = 0.5


class FileJobs:
    """Runs the inbox scan and the status-report refresh at their intervals."""

    def __init__(self, desk: FileDesk, settings: FileSettings) -> None:
        self.desk = desk
        self.settings = settings
        self._scheduler: AsyncIOScheduler | None = None
        self._running: set[asyncio.Task[object]] = set()
        self._woken = asyncio.Event()
        self._reports: asyncio.Task[None] | None = None
        self._stopping = False

    def start(self) -> None:
        self._scheduler = AsyncIOScheduler(timezone="UTC")
        self._scheduler.add_job(
            self._guarded,
            "interval",
            args=["inbox-scan", self.desk.scan_inbox],
            seconds=self.settings.scan_seconds,
            id="inbox-scan",
            max_instances=1,
            coalesce=True,
        )
        self._scheduler.start()
        self._reports = asyncio.create_task(self._report_loop(), name="file-reports")

    def wake(self) -> None:
        """A file's payment may have changed status: a report round soon."""
        self._woken.set()

    async def _report_loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._woken.wait(), timeout=self.settings.report_seconds)
            if self._stopping:
                return
            self._woken.clear()  # before the round: a wake during it makes another round follow
            await self._guarded("file-reports", self.desk.write_due_reports)
            await asyncio.sleep(min(_WAKE_EVERY, self.settings.report_seconds))

    async def stop(self, grace: float = 10.0) -> None:
        """Stop scheduling and let a round in progress finish (up to ``grace`` seconds)."""
        if self._scheduler is not None and self._scheduler.running:
            self._scheduler.shutdown(wait=False)
        self._scheduler = None
        running = [t for t in self._running if not t.done()]
        if self._reports is not None:  # it ends after the round in progress, if any
            self._stopping = True
            self._woken.set()
            running.append(self._reports)
            self._reports = None
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
