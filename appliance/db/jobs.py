"""Durable ingestion jobs: queued -> running -> done | failed, with stage, progress and error."""

from __future__ import annotations

from typing import Literal

import msgspec

from appliance.db.database import Database

JobState = Literal["queued", "running", "done", "failed"]
_NOW = "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')"
_COLUMNS = (
    "id, document_id, user_id, kind, state, stage, progress, attempts, error_code, "
    "error_message, created_at, started_at, finished_at, updated_at"
)


class Job(msgspec.Struct, kw_only=True, frozen=True):
    """A job as stored."""

    id: int
    document_id: int
    user_id: int | None
    kind: str
    state: JobState
    stage: str
    progress: float
    attempts: int
    error_code: str | None
    error_message: str | None
    created_at: str
    started_at: str | None
    finished_at: str | None
    updated_at: str


class JobRepository:
    """Reads and writes of jobs (the writes that span documents live in KnowledgeService)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def get(self, job_id: int) -> Job | None:
        """One job."""
        row = await self.db.fetchone(
            f"SELECT {_COLUMNS} FROM jobs WHERE id = ?",  # noqa: S608
            (job_id,),
        )
        return None if row is None else Job(**dict(row))

    async def latest_for(self, document_id: int) -> Job | None:
        """The newest job of a document."""
        row = await self.db.fetchone(
            f"SELECT {_COLUMNS} FROM jobs WHERE document_id = ? ORDER BY id DESC LIMIT 1",  # noqa: S608
            (document_id,),
        )
        return None if row is None else Job(**dict(row))

    async def queued_ids(self) -> list[int]:
        """Queued jobs, oldest first."""
        rows = await self.db.fetchall("SELECT id FROM jobs WHERE state = 'queued' ORDER BY id")
        return [int(r[0]) for r in rows]

    async def requeue_running(self) -> int:
        """At start-up: jobs left 'running' by a crash go back to 'queued'; returns how many."""
        async with self.db.transaction() as conn:
            cur = await conn.execute(
                f"UPDATE jobs SET state = 'queued', stage = 'queued', updated_at = {_NOW} "  # noqa: S608
                "WHERE state = 'running'"
            )
            await conn.execute(
                f"UPDATE documents SET state = 'queued', updated_at = {_NOW} "  # noqa: S608
                "WHERE state = 'running'"
            )
            return cur.rowcount

    async def start(self, job_id: int) -> None:
        """Mark a job running (one more attempt)."""
        async with self.db.transaction() as conn:
            await conn.execute(
                f"UPDATE jobs SET state = 'running', attempts = attempts + 1, stage = 'extract', "  # noqa: S608
                f"progress = 0, error_code = NULL, error_message = NULL, started_at = {_NOW}, "
                f"updated_at = {_NOW} WHERE id = ?",
                (job_id,),
            )
            await conn.execute(
                f"UPDATE documents SET state = 'running', updated_at = {_NOW} "  # noqa: S608
                "WHERE id = (SELECT document_id FROM jobs WHERE id = ?)",
                (job_id,),
            )

    async def progress(self, job_id: int, stage: str, progress: float) -> None:
        """Record the stage and percent done."""
        await self.db.execute(
            f"UPDATE jobs SET stage = ?, progress = ?, updated_at = {_NOW} WHERE id = ?",  # noqa: S608
            (stage, round(progress, 1), job_id),
        )

    async def fail(self, job_id: int, code: str, message: str) -> None:
        """Mark a job (and its document) failed, keeping the reason."""
        async with self.db.transaction() as conn:
            await conn.execute(
                f"UPDATE jobs SET state = 'failed', error_code = ?, error_message = ?, "  # noqa: S608
                f"finished_at = {_NOW}, updated_at = {_NOW} WHERE id = ?",
                (code, message, job_id),
            )
            await conn.execute(
                f"UPDATE documents SET state = 'failed', updated_at = {_NOW} "  # noqa: S608
                "WHERE id = (SELECT document_id FROM jobs WHERE id = ?)",
                (job_id,),
            )
