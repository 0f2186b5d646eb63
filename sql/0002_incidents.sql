-- Latest state of each incident. The worker emits a new version on every state change;
-- ReplacingMergeTree(version) keeps the highest, so replays and re-deliveries are harmless.
-- Query with FINAL (or argMax by version) for exact current state.
CREATE TABLE IF NOT EXISTS incidents
(
    tenant          LowCardinality(String),
    incident_id     String,
    group_key       String CODEC(ZSTD(1)),
    status          Enum8('open' = 1, 'acknowledged' = 2, 'resolved' = 3),
    title           String CODEC(ZSTD(1)),
    summary         String CODEC(ZSTD(3)),
    severity        LowCardinality(String),
    priority        LowCardinality(Nullable(String)),
    category        LowCardinality(Nullable(String)),
    confidence      Nullable(Float32),
    classified_by   LowCardinality(Nullable(String)),
    first_seen      DateTime64(3, 'UTC'),
    last_seen       DateTime64(3, 'UTC'),
    acknowledged_at Nullable(DateTime64(3, 'UTC')),
    resolved_at     Nullable(DateTime64(3, 'UTC')),
    alert_count     UInt64,
    fingerprints    Array(String) CODEC(ZSTD(1)),
    common_labels   Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    flapping        Bool,
    version         UInt64
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(first_seen)
ORDER BY (tenant, incident_id)
SETTINGS non_replicated_deduplication_window = 1000;
