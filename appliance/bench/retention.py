"""`salesboost bench retention`: what ``PRAGMA secure_delete`` costs, side by side.

Two fresh databases (the real migrations, the appliance's :class:`Database` with its pragmas),
one with ``secure_delete`` switched back OFF, the other ON (the appliance's setting). On each:

* the turn commit path: ``turns`` transactions, each a turn row, five events and the session's
  state update, exactly as the coordinator commits a turn (``PracticeRepository``);
* a deletion: ``delete_sessions`` sessions of ten turns each, deleted in batches of 100 as the
  retention sweep does.

The figures are ms per transaction (median, p95) and deletions per second; the ratios ON/OFF
are the cost. Runs go alternately OFF, ON, OFF, ON... so drift hits both alike.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from appliance.db.database import Database
from appliance.db.migrations import migrate
from appliance.db.practice import PracticeRepository, TurnRow

_TEXT = "The annual fee is waived when the monthly spend is over the threshold we agreed. " * 4


async def _new_session(db: Database) -> int:
    await db.execute(
        "INSERT OR IGNORE INTO users (id, username, role, password_hash) "
        "VALUES (1, 'bench', 'trainee', 'x')"
    )
    return await PracticeRepository(db).create_session(
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


async def _commit_turn(db: Database, session_id: int, turn: int) -> None:
    async with db.transaction() as conn:
        await PracticeRepository.insert_turn(
            conn,
            TurnRow(
                session_id=session_id,
                turn=turn,
                client_turn_id=f"c{turn}",
                trainee_text=_TEXT,
                npc_text=_TEXT,
                trainee_intent="objection",
                intent="objection",
                intent_confidence=0.9,
                stage="DISCOVERY",
                mood=0.5,
                ttft_ms=120.0,
                created_at="",
            ),
        )
        await PracticeRepository.update_state(
            conn, session_id, stage="DISCOVERY", slots={"budget": True}, mood=0.6, turns=turn
        )
        body = _TEXT.encode()
        await PracticeRepository.append_events(
            conn, session_id, [("npc_done", turn, lambda seq, b=body: b) for _ in range(5)]
        )


async def _run_one(path: Path, secure: bool, turns: int, delete_sessions: int) -> dict[str, Any]:
    migrate(path)
    async with Database(path) as db:
        writer = db._writer  # the bench flips the pragma the appliance sets
        assert writer is not None
        await writer.execute(f"PRAGMA secure_delete={'ON' if secure else 'OFF'}")
        session_id = await _new_session(db)
        times: list[float] = []
        for turn in range(1, turns + 1):
            started = time.perf_counter()
            await _commit_turn(db, session_id, turn)
            times.append((time.perf_counter() - started) * 1000)
        ids = []
        for _ in range(delete_sessions):
            sid = await _new_session(db)
            for turn in range(1, 11):
                await _commit_turn(db, sid, turn)
            ids.append(sid)
        started = time.perf_counter()
        for i in range(0, len(ids), 100):
            async with db.transaction() as conn:
                await PracticeRepository.delete_sessions(conn, ids[i : i + 100])
        delete_s = time.perf_counter() - started
    times.sort()
    return {
        "secure_delete": secure,
        "turn_commit_ms_p50": round(statistics.median(times), 3),
        "turn_commit_ms_p95": round(times[int(len(times) * 0.95) - 1], 3),
        "delete_sessions_per_s": round(delete_sessions / delete_s, 1),
    }


def run_retention_bench(*, turns: int, delete_sessions: int, repeat: int, out: Path) -> None:
    """Run the comparison, print a table, write JSON."""
    runs: dict[bool, list[dict[str, Any]]] = {False: [], True: []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(repeat):
            for secure in (False, True):
                path = Path(tmp) / f"bench-{r}-{int(secure)}.db"
                runs[secure].append(asyncio.run(_run_one(path, secure, turns, delete_sessions)))

    def best(secure: bool, key: str, high: bool = False) -> float:
        values = [float(run[key]) for run in runs[secure]]
        return max(values) if high else min(values)

    rows = {
        name: {
            "OFF": best(False, key, high),
            "ON": best(True, key, high),
        }
        for name, key, high in (
            ("turn commit p50 ms", "turn_commit_ms_p50", False),
            ("turn commit p95 ms", "turn_commit_ms_p95", False),
            ("deletes/s (10-turn sessions)", "delete_sessions_per_s", True),
        )
    }
    print(f"{'':32} {'OFF':>10} {'ON':>10} {'ON/OFF':>8}")
    for name, v in rows.items():
        ratio = v["ON"] / v["OFF"] if v["OFF"] else float("nan")
        print(f"{name:32} {v['OFF']:>10} {v['ON']:>10} {ratio:>8.2f}")
    result = {
        "bench": "retention",
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
        "turns": turns,
        "delete_sessions": delete_sessions,
        "repeat": repeat,
        "best": rows,
        "runs": {"off": runs[False], "on": runs[True]},
    }
    out.write_text(json.dumps(result, indent=2), encoding="utf-8")
    print(f"-> {out}")
