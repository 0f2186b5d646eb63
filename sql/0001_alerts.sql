-- Raw alerts, one row per alert record consumed from Kafka. Kept for 30 days (TTL), for analytics,
-- replay of candidate rules and the predictive queries. Which incident an alert joined is in
-- incident_alerts (by fingerprint).
-- Idempotent under replay: the row is identified by its Kafka coordinates, and ReplacingMergeTree
-- collapses the duplicates a replayed batch would add (insert deduplication tokens catch most first).
CREATE TABLE IF NOT EXISTS alerts
(
    tenant          LowCardinality(String),
    received_at     DateTime64(3, 'UTC') CODEC(DoubleDelta, ZSTD(1)),
    starts_at       DateTime64(3, 'UTC') CODEC(DoubleDelta, ZSTD(1)),
    ends_at         Nullable(DateTime64(3, 'UTC')),
    status          Enum8('firing' = 1, 'resolved' = 2),
    source          LowCardinality(String),
    alertname       LowCardinality(String),
    fingerprint     String,
    labels          Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    annotations     Map(LowCardinality(String), String) CODEC(ZSTD(3)),
    generator_url   String CODEC(ZSTD(3)),
    kafka_partition UInt32,
    kafka_offset    UInt64 CODEC(Delta, ZSTD(1))
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMMDD(received_at)
ORDER BY (tenant, alertname, received_at, fingerprint, kafka_partition, kafka_offset)
TTL toDateTime(received_at) + INTERVAL 30 DAY DELETE
SETTINGS non_replicated_deduplication_window = 1000;
