"""Practice sessions, their turns, their event log, reports and tool calls (migration 0004)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import aiosqlite
import msgspec

from appliance.db.database import Database
from appliance.db.ids import new_id_sql

_NOW = "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')"


class SessionRow(msgspec.Struct, kw_only=True):
    """A practice session as stored."""

    id: int
    user_id: int
    team_id: int | None
    scenario_id: int
    persona_id: int
    rubric_id: int
    rubric_version: int
    language: str
    state: str
    stage: str
    slots: dict[str, bool]
    mood: float
    turns: int
    last_seq: int
    created_at: str
    updated_at: str
    ended_at: str | None
    end_reason: str | None = None
    """Why it ended: ``trainee``, ``api`` or ``idle`` (None while active)."""
    username: str = ""
    team: str | None = None
    """The name of the team the session was started in (``team_id``)."""
    report_id: int | None = None
    overall: float | None = None


class TurnRow(msgspec.Struct, kw_only=True):
    """A committed turn as stored."""

    session_id: int
    turn: int
    client_turn_id: str
    trainee_text: str
    npc_text: str
    trainee_intent: str
    intent: str
    intent_confidence: float
    stage: str
    mood: float
    ttft_ms: float | None
    created_at: str


class EventRow(msgspec.Struct, kw_only=True):
    """One stored event: its seq, type and the JSON it was sent as."""

    seq: int
    type: str
    turn: int | None
    body: bytes


class ReportRow(msgspec.Struct, kw_only=True):
    """A stored report (``body`` is the Report's JSON)."""

    id: int
    session_id: int
    rubric_id: int
    rubric_version: int
    overall: float
    body: bytes
    created_at: str


_UNSCORED = "json_extract(r.body, '$.scored') IS 0"
"""A report with ``scored: false`` (no turns): it has no overall score and no place in trends."""
_SESSION_COLS = (
    "s.id, s.user_id, s.team_id, s.scenario_id, s.persona_id, s.rubric_id, s.rubric_version, "
    "s.language, s.state, s.stage, s.slots, s.mood, s.turns, s.last_seq, s.created_at, "
    "s.updated_at, s.ended_at, s.end_reason, u.username, t.name AS team, r.id AS report_id, "
    f"CASE WHEN {_UNSCORED} THEN NULL ELSE r.overall END AS overall"
)
_SESSION_FROM = (
    "FROM practice_sessions s JOIN users u ON u.id = s.user_id "
    "LEFT JOIN teams t ON t.id = s.team_id "
    "LEFT JOIN practice_reports r ON r.session_id = s.id"
)


def _session(row: aiosqlite.Row) -> SessionRow:
    data = dict(row)
    data["slots"] = json.loads(data["slots"])
    return SessionRow(**data)


class PracticeRepository:
    """Reads and writes of practice sessions; every write of events is one transaction."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def create_session(
        self,
        *,
        user_id: int,
        team_id: int | None,
        scenario_id: int,
        persona_id: int,
        rubric_id: int,
        rubric_version: int,
        language: str,
        mood: float,
        slots: dict[str, bool],
    ) -> int:
        """A new active session; returns its id (never a deleted session's: ``appliance.db.ids``)."""
        return await self.db.execute(
            "INSERT INTO practice_sessions (id, user_id, team_id, scenario_id, persona_id, "  # noqa: S608 - new_id_sql is a fixed expression
            "rubric_id, rubric_version, language, mood, slots) "
            f"VALUES ({new_id_sql('practice_sessions')}, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                user_id,
                team_id,
                scenario_id,
                persona_id,
                rubric_id,
                rubric_version,
                language,
                mood,
                json.dumps(slots),
            ),
        )

    async def get_session(self, session_id: int) -> SessionRow | None:
        """One session (with its owner's username and report id, if any)."""
        row = await self.db.fetchone(
            f"SELECT {_SESSION_COLS} {_SESSION_FROM} WHERE s.id = ?", (session_id,)
        )
        return None if row is None else _session(row)

    async def list_sessions(
        self,
        *,
        user_id: int | None = None,
        team_id: int | None = None,
        state: str | None = None,
        limit: int = 100,
        before: int | None = None,
        after: int | None = None,
        ended_since: str | None = None,
    ) -> list[SessionRow]:
        """Sessions, newest first, filtered by owner, team, state, ``before`` (an id: the next
        page of a list that ended there) and ``ended_since`` (an ISO UTC time: ended then or
        later). With ``after`` (an id) the sessions past it come oldest first, so a script
        that keeps the last id it read pages forward (ids are never given twice)."""
        where: list[str] = []
        params: list[object] = []
        for clause, value in (
            ("s.user_id = ?", user_id),
            ("s.team_id = ?", team_id),
            ("s.state = ?", state),
            ("s.id < ?", before),
            ("s.id > ?", after),
            ("s.ended_at >= ?", ended_since),
        ):
            if value is not None:
                where.append(clause)
                params.append(value)
        sql = f"SELECT {_SESSION_COLS} {_SESSION_FROM}"
        if where:
            sql += " WHERE " + " AND ".join(where)
        order = " ORDER BY s.id DESC" if after is None else " ORDER BY s.id"
        rows = await self.db.fetchall(sql + order + " LIMIT ?", (*params, limit))
        return [_session(r) for r in rows]

    async def sessions_without_report(self) -> list[int]:
        """Ended sessions whose report was never stored (a crash while it was written)."""
        rows = await self.db.fetchall(
            "SELECT s.id FROM practice_sessions s LEFT JOIN practice_reports r "
            "ON r.session_id = s.id WHERE s.state = 'ended' AND r.id IS NULL ORDER BY s.id"
        )
        return [int(r[0]) for r in rows]

    async def turns(self, session_id: int) -> list[TurnRow]:
        """Committed turns, in order."""
        rows = await self.db.fetchall(
            "SELECT session_id, turn, client_turn_id, trainee_text, npc_text, trainee_intent, "
            "intent, intent_confidence, stage, mood, ttft_ms, created_at FROM practice_turns "
            "WHERE session_id = ? ORDER BY turn",
            (session_id,),
        )
        return [TurnRow(**dict(r)) for r in rows]

    async def turn_by_client_id(self, session_id: int, client_turn_id: str) -> TurnRow | None:
        """The committed turn a client id names, if any."""
        row = await self.db.fetchone(
            "SELECT session_id, turn, client_turn_id, trainee_text, npc_text, trainee_intent, "
            "intent, intent_confidence, stage, mood, ttft_ms, created_at FROM practice_turns "
            "WHERE session_id = ? AND client_turn_id = ?",
            (session_id, client_turn_id),
        )
        return None if row is None else TurnRow(**dict(row))

    async def events_after(
        self, session_id: int, after_seq: int, *, turn: int | None = None
    ) -> list[EventRow]:
        """Stored events with seq > after_seq (optionally of one turn), in order."""
        sql = "SELECT seq, type, turn, body FROM practice_events WHERE session_id = ? AND seq > ?"
        params: list[Any] = [session_id, after_seq]
        if turn is not None:
            sql += " AND turn = ?"
            params.append(turn)
        rows = await self.db.fetchall(sql + " ORDER BY seq", params)
        return [
            EventRow(seq=r["seq"], type=r["type"], turn=r["turn"], body=r["body"].encode())
            for r in rows
        ]

    @staticmethod
    async def append_events(
        conn: aiosqlite.Connection, session_id: int, events: Sequence[tuple[str, int | None, Any]]
    ) -> list[int]:
        """Inside a transaction: give each (type, turn, body_of(seq)) the next seq and store it.

        ``body_of`` is a callable seq -> JSON bytes, so the stored body carries its own seq.
        Returns the seqs in order.
        """
        seqs: list[int] = []
        for kind, turn, body_of in events:
            cur = await conn.execute(
                "UPDATE practice_sessions SET last_seq = last_seq + 1 WHERE id = ? "
                "RETURNING last_seq",
                (session_id,),
            )
            row = await cur.fetchone()
            if row is None:
                raise LookupError(f"practice session {session_id} does not exist")
            seq = int(row[0])
            body: bytes = body_of(seq)
            await conn.execute(
                "INSERT INTO practice_events (session_id, seq, type, turn, body) "
                "VALUES (?, ?, ?, ?, ?)",
                (session_id, seq, kind, turn, body.decode()),
            )
            seqs.append(seq)
        return seqs

    @staticmethod
    async def insert_turn(conn: aiosqlite.Connection, turn: TurnRow) -> None:
        """Inside a transaction: store a committed turn."""
        await conn.execute(
            "INSERT INTO practice_turns (session_id, turn, client_turn_id, trainee_text, "
            "npc_text, trainee_intent, intent, intent_confidence, stage, mood, ttft_ms) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                turn.session_id,
                turn.turn,
                turn.client_turn_id,
                turn.trainee_text,
                turn.npc_text,
                turn.trainee_intent,
                turn.intent,
                turn.intent_confidence,
                turn.stage,
                turn.mood,
                turn.ttft_ms,
            ),
        )

    @staticmethod
    async def update_state(
        conn: aiosqlite.Connection,
        session_id: int,
        *,
        stage: str,
        slots: dict[str, bool],
        mood: float,
        turns: int,
    ) -> None:
        """Inside a transaction: the session's stage, slots, mood and turn count."""
        await conn.execute(
            "UPDATE practice_sessions SET stage = ?, slots = ?, mood = ?, turns = ?, "  # noqa: S608
            f"updated_at = {_NOW} WHERE id = ?",
            (stage, json.dumps(slots), mood, turns, session_id),
        )

    @staticmethod
    async def mark_ended(conn: aiosqlite.Connection, session_id: int, reason: str) -> bool:
        """Inside a transaction: end an active session; False if it had already ended."""
        cur = await conn.execute(
            f"UPDATE practice_sessions SET state = 'ended', ended_at = {_NOW}, "  # noqa: S608
            f"updated_at = {_NOW}, end_reason = ? WHERE id = ? AND state = 'active'",
            (reason, session_id),
        )
        return cur.rowcount > 0

    @staticmethod
    async def insert_report(
        conn: aiosqlite.Connection,
        *,
        session_id: int,
        rubric_id: int,
        rubric_version: int,
        overall: float,
        body: bytes,
    ) -> int:
        """Inside a transaction: store the report; returns its id."""
        cur = await conn.execute(
            "INSERT INTO practice_reports (session_id, rubric_id, rubric_version, overall, body) "
            "VALUES (?, ?, ?, ?, ?)",
            (session_id, rubric_id, rubric_version, overall, body.decode()),
        )
        return cur.lastrowid or 0

    # --- deletion (retention, erasure) ----------------------------------------------------

    @staticmethod
    async def delete_sessions(conn: aiosqlite.Connection, session_ids: Sequence[int]) -> int:
        """Inside a transaction: delete sessions; their turns, events, report and tool calls go
        with them (ON DELETE CASCADE, migration 0004). Returns how many sessions were deleted."""
        if not session_ids:
            return 0
        marks = ", ".join("?" * len(session_ids))
        cur = await conn.execute(
            f"DELETE FROM practice_sessions WHERE id IN ({marks})",  # noqa: S608
            list(session_ids),
        )
        return cur.rowcount

    async def expired_session_ids(self, cutoff: str, limit: int) -> list[int]:
        """Ended sessions whose end (or start, if no end was stored) is before ``cutoff``
        (an ISO-8601 UTC time as the tables store it), oldest first, at most ``limit``."""
        rows = await self.db.fetchall(
            "SELECT id FROM practice_sessions WHERE state = 'ended' "
            "AND COALESCE(ended_at, created_at) < ? ORDER BY id LIMIT ?",
            (cutoff, limit),
        )
        return [int(r[0]) for r in rows]

    async def count_expired(self, cutoff: str) -> int:
        """How many sessions :meth:`expired_session_ids` would give, all batches together."""
        return int(
            await self.db.fetchval(
                "SELECT COUNT(*) FROM practice_sessions WHERE state = 'ended' "
                "AND COALESCE(ended_at, created_at) < ?",
                (cutoff,),
            )
        )

    async def idle_session_ids(self, cutoff: str, limit: int) -> list[int]:
        """Live sessions with no turn since ``cutoff`` (their last turn, or their start when
        they have none, is older), longest idle first, at most ``limit``."""
        rows = await self.db.fetchall(
            "SELECT id FROM practice_sessions WHERE state = 'active' AND updated_at < ? "
            "ORDER BY updated_at, id LIMIT ?",
            (cutoff, limit),
        )
        return [int(r[0]) for r in rows]

    async def session_ids_of_user(self, user_id: int) -> list[int]:
        """Every session of one trainee (any state)."""
        rows = await self.db.fetchall(
            "SELECT id FROM practice_sessions WHERE user_id = ? ORDER BY id", (user_id,)
        )
        return [int(r[0]) for r in rows]

    async def report(self, session_id: int) -> ReportRow | None:
        """A session's stored report."""
        row = await self.db.fetchone(
            "SELECT id, session_id, rubric_id, rubric_version, overall, body, created_at "
            "FROM practice_reports WHERE session_id = ?",
            (session_id,),
        )
        if row is None:
            return None
        data = dict(row)
        data["body"] = data["body"].encode()
        return ReportRow(**data)

    async def reports_of_user(self, user_id: int, limit: int = 50) -> list[ReportRow]:
        """A trainee's scored reports, oldest first (for trends: unscored ones are left out)."""
        rows = await self.db.fetchall(
            "SELECT r.id, r.session_id, r.rubric_id, r.rubric_version, r.overall, r.body, "  # noqa: S608
            "r.created_at FROM practice_reports r JOIN practice_sessions s ON s.id = r.session_id "
            f"WHERE s.user_id = ? AND NOT ({_UNSCORED}) ORDER BY r.id DESC LIMIT ?",
            (user_id, limit),
        )
        out = []
        for row in reversed(rows):
            data = dict(row)
            data["body"] = data["body"].encode()
            out.append(ReportRow(**data))
        return out

    async def record_tool_calls(
        self, session_id: int, turn: int, calls: Sequence[tuple[str, str, float, bool, str]]
    ) -> None:
        """Store a turn's tool calls (name, args digest, ms, ok, error)."""
        if not calls:
            return
        async with self.db.transaction() as conn:
            await conn.executemany(
                "INSERT INTO practice_tool_calls (session_id, turn, name, args_digest, ms, ok, "
                "error) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(session_id, turn, n, d, ms, int(ok), e) for n, d, ms, ok, e in calls],
            )

    async def tool_calls(self, session_id: int) -> list[dict[str, Any]]:
        """A session's recorded tool calls, in order."""
        rows = await self.db.fetchall(
            "SELECT turn, name, args_digest, ms, ok, error FROM practice_tool_calls "
            "WHERE session_id = ? ORDER BY id",
            (session_id,),
        )
        return [dict(r) for r in rows]

    async def export_rows(
        self,
        *,
        user_id: int | None = None,
        team_id: int | None = None,
        since: str | None = None,
        until: str | None = None,
        limit: int = 100_000,
    ) -> list[ExportRow]:
        """Sessions with names and report bodies, oldest first, for a spreadsheet export.

        ``since`` / ``until``: ISO dates; a session counts from the day it started, ``until``
        included.
        """
        where: list[str] = ["1 = 1"]
        params: list[Any] = []
        for column, value in (("s.user_id", user_id), ("s.team_id", team_id)):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        if since is not None:
            where.append("s.created_at >= ?")
            params.append(since)
        if until is not None:
            where.append("s.created_at < date(?, '+1 day')")
            params.append(until)
        rows = await self.db.fetchall(
            "SELECT s.id AS session_id, s.created_at, s.ended_at, s.state, s.end_reason, "  # noqa: S608
            "s.language, s.turns, "
            "u.username, u.display_name, t.name AS team, sc.name AS scenario, "
            "p.name AS persona, r.body AS report "
            "FROM practice_sessions s JOIN users u ON u.id = s.user_id "
            "LEFT JOIN teams t ON t.id = s.team_id "
            "LEFT JOIN scenarios sc ON sc.id = s.scenario_id "
            "LEFT JOIN personas p ON p.id = s.persona_id "
            "LEFT JOIN practice_reports r ON r.session_id = s.id "
            f"WHERE {' AND '.join(where)} ORDER BY s.id LIMIT ?",
            (*params, limit),
        )
        return [ExportRow(**dict(r)) for r in rows]


class ExportRow(msgspec.Struct, kw_only=True):
    """A session as a spreadsheet export needs it (``report``: the Report's JSON, if any)."""

    session_id: int
    created_at: str
    ended_at: str | None
    state: str
    end_reason: str | None
    language: str
    turns: int
    username: str
    display_name: str
    team: str | None
    scenario: str | None
    persona: str | None
    report: str | None
