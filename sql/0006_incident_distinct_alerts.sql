-- How many distinct alerts an incident has had. Its `fingerprints` list only a sample (the
-- smallest 1,000) once it has more; every alert is in `incident_alerts`, which the sink fills
-- from the `incident-alerts` topic rather than from the incident states.
ALTER TABLE incidents ADD COLUMN IF NOT EXISTS distinct_alerts UInt64 DEFAULT 0 AFTER alert_count;
