"""Retention's pieces on a real SQLite file (the migrations, the appliance's Database): the
cutoff's format and batched purging."""

from __future__ import annotations

import asyncio
import re
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from appliance.db.database import Database
from appliance.db.migrations import migrate
from appliance.db.practice import PracticeRepository
from appliance.practice import retention


def test_cutoff_is_written_as_sqlite_writes_times(tmp_path: Path) -> None:
    moment = datetime(2026, 3, 4, 5, 6, 7, 891234, tzinfo=UTC)
    assert retention.cutoff_for(1, moment) == "2026-03-03T05:06:07.891Z"
    with sqlite3.connect(tmp_path / "x.db") as conn:
        now = conn.execute("SELECT strftime('%Y-%m-%dT%H:%M:%fZ', 'now')").fetchone()[0]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", retention.cutoff_for(0))
    assert len(now) == len(retention.cutoff_for(0))


async def _sessions(db: Database, n: int) -> list[int]:
    await db.execute(
        "INSERT INTO users (id, username, role, password_hash) VALUES (1, 'u', 'trainee', 'x')"
    )
    repo = PracticeRepository(db)
    return [
        await repo.create_session(
            user_id=1,
            team_id=None,
            scenario_id=1,
            persona_id=1,
            rubric_id=1,
            rubric_version=1,
            language="en",
            mood=0.5,
            slots={},
        )
        for _ in range(n)
    ]


def test_purge_deletes_only_expired_ended_sessions_in_batches(tmp_path: Path) -> None:
    path = tmp_path / "salesboost.db"
    migrate(path)

    async def run() -> tuple[int, int, list[int], list[int]]:
        async with Database(path) as db:
            ids = await _sessions(db, 9)
            old, recent, live = ids[:5], ids[5:8], ids[8]
            await db.execute(
                "UPDATE practice_sessions SET state = 'ended', ended_at = '2020-01-01T00:00:00.000Z' "
                f"WHERE id IN ({','.join('?' * len(old))})",
                old,
            )
            await db.execute(
                "UPDATE practice_sessions SET state = 'ended', "
                "ended_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') "
                f"WHERE id IN ({','.join('?' * len(recent))})",
                recent,
            )
            await db.execute(
                "UPDATE practice_sessions SET created_at = '2020-01-01T00:00:00.000Z' WHERE id = ?",
                (live,),
            )
            repo = PracticeRepository(db)
            cutoff = retention.cutoff_for(30)
            counted = await repo.count_expired(cutoff)
            batches: list[int] = []
            delete = retention.direct_delete(db)

            async def counting(batch: object) -> int:
                assert isinstance(batch, list)
                batches.append(len(batch))
                return await delete(batch)

            total = await retention.purge(repo, cutoff, batch=2, delete=counting)
            left = [int(r[0]) for r in await db.fetchall("SELECT id FROM practice_sessions")]
            return counted, total, batches, left

    counted, total, batches, left = asyncio.run(run())
    assert counted == 5 and total == 5
    assert batches == [2, 2, 1]  # never more than a batch per transaction
    assert left == [6, 7, 8, 9]  # the recent ended ones and the live (if old) one stay
