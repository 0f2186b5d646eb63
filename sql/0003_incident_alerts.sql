-- Which alert (fingerprint) belongs to which incident: one row per (incident, fingerprint),
-- written by the sink from each incident state. The newest state's row wins (by last_seen), so
-- first_seen and last_seen are the incident's; join `alerts` on fingerprint for per-alert times.
CREATE TABLE IF NOT EXISTS incident_alerts
(
    tenant      LowCardinality(String),
    incident_id String,
    fingerprint String,
    first_seen  DateTime64(3, 'UTC'),
    last_seen   DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(last_seen)
PARTITION BY toYYYYMM(first_seen)
ORDER BY (tenant, incident_id, fingerprint)
SETTINGS non_replicated_deduplication_window = 1000;
