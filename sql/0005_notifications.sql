-- Every delivery attempt of the notifiers: which target heard about which incident, when, how
-- it went, and how long after the worker emitted the event. A replayed attempt collapses to one
-- row (same idempotency key and attempt number).
CREATE TABLE IF NOT EXISTS notifications
(
    tenant           LowCardinality(String),
    incident_id      String,
    event_id         String,
    idempotency_key  String,
    channel          LowCardinality(String),
    target           LowCardinality(String),
    kind             LowCardinality(String),   -- event (routing rules) or escalation (policy step)
    attempt          UInt32,
    outcome          LowCardinality(String),   -- delivered, retrying, failed
    status           UInt16,                   -- HTTP or SMTP status; 0 without an answer
    error            String,
    latency_ms       UInt64,
    at               DateTime64(3, 'UTC') CODEC(DoubleDelta, ZSTD(1)),
    emitted_at       DateTime64(3, 'UTC') CODEC(DoubleDelta, ZSTD(1))
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(at)
ORDER BY (tenant, incident_id, idempotency_key, attempt)
SETTINGS non_replicated_deduplication_window = 1000;
