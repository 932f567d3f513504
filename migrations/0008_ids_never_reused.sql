-- Ids are never given twice (appliance/db/ids.py). SQLite gives a new row MAX(id) + 1, so
-- deleting the row with the highest id (an erased person, a deleted or purged practice
-- session, a removed document) let the next row take that id again, and the audit log,
-- bookmarks and exported data then named the newcomer. Each trigger keeps the highest id
-- ever deleted from its table in appliance_state; new rows take one more than the larger of
-- that and the table's own highest id. Documents and jobs had such a mark already, kept by
-- the knowledge service under other keys: it moves to the common keys.
INSERT INTO appliance_state (key, value)
SELECT 'max_id.' || substr(key, 11, length(key) - 17), value FROM appliance_state
WHERE key IN ('knowledge.documents.max_id', 'knowledge.jobs.max_id');
DELETE FROM appliance_state WHERE key IN ('knowledge.documents.max_id', 'knowledge.jobs.max_id');

CREATE TRIGGER users_max_id AFTER DELETE ON users BEGIN
    INSERT INTO appliance_state (key, value) VALUES ('max_id.users', OLD.id)
    ON CONFLICT (key) DO UPDATE SET value = excluded.value,
        updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
    WHERE CAST(excluded.value AS INTEGER) > CAST(value AS INTEGER);
END;

CREATE TRIGGER api_tokens_max_id AFTER DELETE ON api_tokens BEGIN
    INSERT INTO appliance_state (key, value) VALUES ('max_id.api_tokens', OLD.id)
    ON CONFLICT (key) DO UPDATE SET value = excluded.value,
        updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
    WHERE CAST(excluded.value AS INTEGER) > CAST(value AS INTEGER);
END;

CREATE TRIGGER practice_sessions_max_id AFTER DELETE ON practice_sessions BEGIN
    INSERT INTO appliance_state (key, value) VALUES ('max_id.practice_sessions', OLD.id)
    ON CONFLICT (key) DO UPDATE SET value = excluded.value,
        updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
    WHERE CAST(excluded.value AS INTEGER) > CAST(value AS INTEGER);
END;

CREATE TRIGGER documents_max_id AFTER DELETE ON documents BEGIN
    INSERT INTO appliance_state (key, value) VALUES ('max_id.documents', OLD.id)
    ON CONFLICT (key) DO UPDATE SET value = excluded.value,
        updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
    WHERE CAST(excluded.value AS INTEGER) > CAST(value AS INTEGER);
END;

CREATE TRIGGER jobs_max_id AFTER DELETE ON jobs BEGIN
    INSERT INTO appliance_state (key, value) VALUES ('max_id.jobs', OLD.id)
    ON CONFLICT (key) DO UPDATE SET value = excluded.value,
        updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
    WHERE CAST(excluded.value AS INTEGER) > CAST(value AS INTEGER);
END;
