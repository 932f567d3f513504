"""Retention of practice data: ended sessions older than ``practice.retention_days`` go away.

A session (its transcript, event log, report and tool calls, which cascade: migration 0004) is
deleted when it has ended and its end, or its start if no end was stored, is older than the
retention period. Deletion runs in batches of ``practice.retention_batch`` sessions, each its own
short write transaction, so a sweep never holds the SQLite write lock for long and practice
turns go on meanwhile. The server sweeps once at start and then every
``practice.retention_sweep_interval_s``; ``salesboost sessions purge`` does the same from the
command line (with or without a server running). Live sessions are never touched by retention.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta

from prometheus_client import Counter

from appliance.background import BackgroundTask
from appliance.config import PracticeConfig
from appliance.db.audit import AuditRepository
from appliance.db.database import Database
from appliance.db.practice import PracticeRepository, SessionRow

log = logging.getLogger(__name__)

SESSIONS_DELETED = Counter(
    "salesboost_practice_sessions_deleted",
    "Practice sessions deleted, by why: api (one session), retention (the sweep), erasure "
    "(a person erased).",
    ["reason"],
)

DeleteBatch = Callable[[Sequence[int]], Awaitable[int]]
"""Delete these session ids; returns how many were deleted."""


def cutoff_for(days: float, now: datetime | None = None) -> str:
    """The ISO-8601 UTC time ``days`` ago, written as the practice tables write times."""
    moment = (now or datetime.now(UTC)) - timedelta(days=days)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def direct_delete(db: Database) -> DeleteBatch:
    """Delete batches straight in SQLite (the CLI: no coordinator holds the sessions)."""

    async def delete(session_ids: Sequence[int]) -> int:
        async with db.transaction() as conn:
            return await PracticeRepository.delete_sessions(conn, session_ids)

    return delete


async def purge(repo: PracticeRepository, cutoff: str, *, batch: int, delete: DeleteBatch) -> int:
    """Delete every ended session that ended before ``cutoff``, ``batch`` at a time."""
    total = 0
    while ids := await repo.expired_session_ids(cutoff, batch):
        deleted = await delete(ids)
        total += deleted
        if deleted == 0:  # nothing moved: do not spin (someone else deleted them meanwhile)
            break
        await asyncio.sleep(0)  # let turns and other writers in between two batches
    return total


class RetentionSweeper:
    """The server's background sweep: once at start, then every interval."""

    def __init__(
        self,
        *,
        db: Database,
        config: PracticeConfig,
        audit: AuditRepository,
        delete_sessions: Callable[[Sequence[int]], Awaitable[list[SessionRow]]],
    ) -> None:
        self.db = db
        self.repo = PracticeRepository(db)
        self.config = config
        self.audit = audit
        self._delete_sessions = delete_sessions
        self._task = BackgroundTask("retention-sweep")

    async def start(self) -> None:
        """Start sweeping (nothing to do when retention_days is 0: keep forever)."""
        if self.config.retention_days <= 0:
            log.info("retention: practice sessions are kept forever (practice.retention_days 0)")
            return
        self._task.start_every(
            self.config.retention_sweep_interval_s,
            self.sweep,
            first_now=True,
            log=log,
            what="retention: the sweep",
        )

    async def stop(self) -> None:
        """Stop the sweep (a batch in progress is rolled back or already committed)."""
        await self._task.stop()

    async def sweep(self) -> int:
        """One sweep: delete every expired session; returns how many."""
        days = self.config.retention_days
        cutoff = cutoff_for(days)

        async def delete(ids: Sequence[int]) -> int:
            return len(await self._delete_sessions(ids))

        total = await purge(self.repo, cutoff, batch=self.config.retention_batch, delete=delete)
        if total:
            SESSIONS_DELETED.labels("retention").inc(total)
            log.info(
                "retention: deleted %s practice sessions that ended before %s (%s days)",
                total,
                cutoff,
                days,
            )
            await self.audit.record(
                "sessions_purged",
                actor="retention",
                target="practice_sessions",
                detail={"sessions": total, "older_than_days": days, "cutoff": cutoff},
            )
        return total
