"""The in-process worker pool that runs durable ingestion jobs.

Jobs live in SQLite (``jobs`` table); this pool only decides *when* each runs. At start
every job a crash left ``running`` goes back to ``queued`` and every queued job is
scheduled again, oldest first, so an interrupted ingestion resumes by itself.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from appliance.db.jobs import JobRepository

log = logging.getLogger(__name__)


class WorkerPool:
    """``workers`` asyncio tasks taking job ids from one queue; the heavy lifting is in threads."""

    def __init__(
        self, jobs: JobRepository, run: Callable[[int], Awaitable[None]], workers: int
    ) -> None:
        self.jobs = jobs
        self._run = run
        self._workers = workers
        self._queue: asyncio.Queue[int] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self._pending: set[int] = set()

    async def start(self, *, resume: bool = True) -> int:
        """Start the workers; with resume, first requeue crashed jobs and schedule every queued one.

        Returns how many crashed jobs were requeued.
        """
        resumed = 0
        if resume:
            resumed = await self.jobs.requeue_running()
            for job_id in await self.jobs.queued_ids():
                self.submit(job_id)
        self._tasks = [
            asyncio.create_task(self._worker(), name=f"knowledge-worker-{n}")
            for n in range(self._workers)
        ]
        if resumed:
            log.info("resumed %d ingestion job(s) interrupted by a crash", resumed)
        return resumed

    def submit(self, job_id: int) -> None:
        """Schedule a queued job (once)."""
        if job_id not in self._pending:
            self._pending.add(job_id)
            self._queue.put_nowait(job_id)

    @property
    def backlog(self) -> int:
        """Jobs scheduled and not finished."""
        return len(self._pending)

    async def idle(self) -> None:
        """Wait until every scheduled job has finished (for the CLI)."""
        await self._queue.join()

    async def stop(self) -> None:
        """Cancel the workers; a job cut short stays 'running' and resumes at next start."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    async def _worker(self) -> None:
        while True:
            job_id = await self._queue.get()
            try:
                await self._run(job_id)
            except asyncio.CancelledError:
                raise
            except Exception:  # the job records its own failure; the worker keeps going
                log.exception("ingestion job %s crashed its worker step", job_id)
            finally:
                self._pending.discard(job_id)
                self._queue.task_done()
