-- Correlation across groups: the incident another one was linked under (one root cause), and
-- why ("same cluster `c1`, NodeUnreachable follows LinkDown in 95% of history, 40 s apart").
-- A parent's children: `SELECT ... FROM incidents FINAL WHERE parent_incident_id = 'inc-...'`.
ALTER TABLE incidents ADD COLUMN IF NOT EXISTS parent_incident_id Nullable(String);
ALTER TABLE incidents ADD COLUMN IF NOT EXISTS correlation Nullable(String);
