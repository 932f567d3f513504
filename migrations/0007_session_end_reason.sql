-- Why a session ended: 'trainee' (End on the practice page), 'api' (POST .../end), 'idle'
-- (the appliance ended it after `practice.idle_end_minutes` without a trainee line). It was
-- kept only in the session's `session_ended` event, so lists and reports could not say that
-- the server, not the trainee, had ended a session. Sessions that ended before this migration
-- take the reason from that event.
ALTER TABLE practice_sessions ADD COLUMN end_reason TEXT;

UPDATE practice_sessions
SET end_reason = (
    SELECT json_extract(e.body, '$.reason') FROM practice_events e
    WHERE e.session_id = practice_sessions.id AND e.type = 'session_ended'
    ORDER BY e.seq DESC LIMIT 1
)
WHERE state = 'ended';
