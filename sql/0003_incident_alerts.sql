-- Which alert (fingerprint) belongs to which incident, with when it was first and last seen there.
-- One row per (incident, fingerprint); later rows replace earlier ones by last_seen.
CREATE TABLE IF NOT EXISTS incident_alerts
(
    tenant      LowCardinality(String),
    incident_id String,
    fingerprint String,
    alertname   LowCardinality(String),
    first_seen  DateTime64(3, 'UTC'),
    last_seen   DateTime64(3, 'UTC'),
    occurrences UInt64
)
ENGINE = ReplacingMergeTree(last_seen)
PARTITION BY toYYYYMM(first_seen)
ORDER BY (tenant, incident_id, fingerprint)
SETTINGS non_replicated_deduplication_window = 1000;
