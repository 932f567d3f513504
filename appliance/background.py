"""One background task owned by a long-lived service (a sweep, a probe, a schedule).

Started once with the server, cancelled and awaited when it stops: whatever the task was doing
is either done or abandoned at an await, never left running past the server's life.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
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

    async def stop(self) -> None:
        """Cancel the task and wait until it has ended (its exception, if any, is dropped)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
