-- Sessions that ended before the trainee's first line were given a report scored 0 that
-- counted in trends. The evaluator now marks such a report not scored (`scored` false,
-- `not_scored_reason` "no_turns"); this marks the ones written before it the same way, so
-- they leave trends and session lists show no score for them.
UPDATE practice_reports
SET body = json_set(body, '$.scored', json('false'), '$.not_scored_reason', 'no_turns')
WHERE json_extract(body, '$.scored') IS NULL
  AND session_id IN (SELECT id FROM practice_sessions WHERE turns = 0);
