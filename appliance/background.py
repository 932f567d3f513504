"""One background task owned by a long-lived service (a sweep, a probe, a schedule).

Started once with the server, cancelled and awaited when it stops: whatever the task was doing
is either done or abandoned at an await, never left running past the server's life.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any


class BackgroundTask:
    """A named asyncio task that a service starts and stops."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        """Whether the task was started and has not finished."""
        return self._task is not None and not self._task.done()

    def start(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run ``coro`` as this task (the event loop keeps a reference until it ends)."""
        self._task = asyncio.create_task(coro, name=self.name)

    def start_every(
        self,
        interval_s: float,
        work: Callable[[], Awaitable[object]],
        *,
        first_now: bool,
        log: logging.Logger,
        what: str,
    ) -> None:
        """Run ``work`` every ``interval_s`` (at once first when ``first_now``); a failure is
        logged as "``what`` failed" and the next round tries again, the server keeps serving."""

        async def rounds() -> None:
            if not first_now:
                await asyncio.sleep(interval_s)
            while True:
                try:
                    await work()
                except Exception:
                    log.exception("%s failed", what)
                await asyncio.sleep(interval_s)

        self.start(rounds())

    async def stop(self) -> None:
        """Cancel the task and wait until it has ended (its exception, if any, is dropped)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
