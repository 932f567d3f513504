-- Small facts about this appliance's own life, by key (e.g. whether the first-start demo
-- load finished, so an interrupted one is resumed at the next start).
CREATE TABLE appliance_state (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
