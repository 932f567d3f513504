-- Practice sessions: one row per session, its committed turns, its append-only event log
-- (the recovery source: every server event but npc_delta), its report and its tool calls.
-- Scenario, persona and rubric ids point into the domain tables (0003); those rows are only
-- ever archived, never deleted, so an old session keeps what it was played with.
CREATE TABLE practice_sessions (
    id              INTEGER PRIMARY KEY,
    user_id         INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    team_id         INTEGER REFERENCES teams(id) ON DELETE SET NULL,
    scenario_id     INTEGER NOT NULL,
    persona_id      INTEGER NOT NULL,
    rubric_id       INTEGER NOT NULL,
    rubric_version  INTEGER NOT NULL,
    language        TEXT NOT NULL DEFAULT 'en',
    state           TEXT NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'ended')),
    stage           TEXT NOT NULL DEFAULT 'OPENING',
    slots           TEXT NOT NULL DEFAULT '{}',        -- JSON {slot: filled}
    mood            REAL NOT NULL DEFAULT 0.5,
    turns           INTEGER NOT NULL DEFAULT 0,
    last_seq        INTEGER NOT NULL DEFAULT 0,
    created_at      TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated_at      TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    ended_at        TEXT
);
CREATE INDEX practice_sessions_user ON practice_sessions(user_id, id);
CREATE INDEX practice_sessions_team ON practice_sessions(team_id, id);
CREATE INDEX practice_sessions_state ON practice_sessions(state);

CREATE TABLE practice_turns (
    session_id         INTEGER NOT NULL REFERENCES practice_sessions(id) ON DELETE CASCADE,
    turn               INTEGER NOT NULL,
    client_turn_id     TEXT NOT NULL,
    trainee_text       TEXT NOT NULL,
    npc_text           TEXT NOT NULL,
    trainee_intent     TEXT NOT NULL,
    intent             TEXT NOT NULL,
    intent_confidence  REAL NOT NULL,
    stage              TEXT NOT NULL,
    mood               REAL NOT NULL,
    ttft_ms            REAL,
    created_at         TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    PRIMARY KEY (session_id, turn),
    UNIQUE (session_id, client_turn_id)
);

CREATE TABLE practice_events (
    session_id  INTEGER NOT NULL REFERENCES practice_sessions(id) ON DELETE CASCADE,
    seq         INTEGER NOT NULL,
    type        TEXT NOT NULL,
    turn        INTEGER,
    body        TEXT NOT NULL,                          -- the event as sent (JSON)
    created_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    PRIMARY KEY (session_id, seq)
);

CREATE TABLE practice_reports (
    id              INTEGER PRIMARY KEY,
    session_id      INTEGER NOT NULL UNIQUE REFERENCES practice_sessions(id) ON DELETE CASCADE,
    rubric_id       INTEGER NOT NULL,
    rubric_version  INTEGER NOT NULL,
    overall         REAL NOT NULL,
    body            TEXT NOT NULL,                      -- the Report (JSON)
    created_at      TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

CREATE TABLE practice_tool_calls (
    id           INTEGER PRIMARY KEY,
    session_id   INTEGER NOT NULL REFERENCES practice_sessions(id) ON DELETE CASCADE,
    turn         INTEGER NOT NULL,
    name         TEXT NOT NULL,
    args_digest  TEXT NOT NULL,
    ms           REAL NOT NULL,
    ok           INTEGER NOT NULL CHECK (ok IN (0, 1)),
    error        TEXT NOT NULL DEFAULT '',
    created_at   TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE INDEX practice_tool_calls_turn ON practice_tool_calls(session_id, turn);
