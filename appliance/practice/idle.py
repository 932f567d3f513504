"""Idle practice sessions end by themselves.

A trainee who closes the tab mid-conversation leaves a live session behind. Left alone it would
stay on the managers' live list forever, never be scored, and never reach the retention period
(which only deletes ended sessions). So the server ends a live session whose last turn, or its
start when it has none, is older than ``practice.idle_end_minutes``: the same end as the
trainee's, with reason ``idle`` (a connected page says so), and the report written (not scored
without turns).

One session at a time, each report written before the next session is ended, so a box that
comes back after a long downtime with many stale sessions does not queue a report per session
on the LLM at once. A line said while the check waits for the session's turn lock keeps the
session going (:meth:`Coordinator.end` re-checks under the lock).
"""

from __future__ import annotations

import logging

from prometheus_client import Counter

from appliance.background import BackgroundTask
from appliance.config import PracticeConfig
from appliance.db.database import Database
from appliance.db.practice import PracticeRepository
from appliance.practice.coordinator import Coordinator
from appliance.practice.errors import SessionNotFound
from appliance.practice.retention import cutoff_for

log = logging.getLogger(__name__)

SESSIONS_ENDED_IDLE = Counter(
    "salesboost_practice_sessions_idle_ended",
    "Live practice sessions the server ended because no line was said for "
    "practice.idle_end_minutes.",
)

_BATCH = 50
"""Idle sessions read per query (the rest wait for the next check)."""


class IdleSessionCloser:
    """The server's background check: every ``idle_check_interval_s``, end idle sessions."""

    def __init__(self, *, db: Database, config: PracticeConfig, coordinator: Coordinator) -> None:
        self.repo = PracticeRepository(db)
        self.config = config
        self.coordinator = coordinator
        self._task = BackgroundTask("idle-sessions")

    async def start(self) -> None:
        """Start checking (nothing to do when idle_end_minutes is 0)."""
        if self.config.idle_end_minutes <= 0:
            log.info("practice: idle sessions stay open (practice.idle_end_minutes 0)")
            return
        self._task.start_every(
            self.config.idle_check_interval_s,
            self.sweep,
            first_now=False,
            log=log,
            what="practice: the idle-session check",
        )

    async def stop(self) -> None:
        """Stop checking (a session being ended is ended or not; its report resumes at start)."""
        await self._task.stop()

    async def sweep(self) -> int:
        """End the sessions idle for longer than the limit; returns how many were ended."""
        minutes = self.config.idle_end_minutes
        cutoff = cutoff_for(minutes / (24 * 60))
        ended = 0
        for session_id in await self.repo.idle_session_ids(cutoff, _BATCH):
            try:
                if not await self.coordinator.end(session_id, reason="idle", idle_since=cutoff):
                    continue
            except SessionNotFound:  # deleted meanwhile (an erasure, a manager)
                continue
            ended += 1
            SESSIONS_ENDED_IDLE.inc()
            log.info(
                "practice: session %s ended: no line for %s minutes", session_id, f"{minutes:g}"
            )
            await self.coordinator.settled(session_id)  # its report before the next session
        return ended
