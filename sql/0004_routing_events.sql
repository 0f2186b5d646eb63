-- Every routing event the worker emitted: what a person was told about, why and where.
-- event_id is deterministic, so replays collapse to one row.
CREATE TABLE IF NOT EXISTS routing_events
(
    tenant            LowCardinality(String),
    event_id          String,
    incident_id       String,
    reason            LowCardinality(String),
    status            LowCardinality(String),
    severity          LowCardinality(String),
    priority          LowCardinality(Nullable(String)),
    team              LowCardinality(Nullable(String)),
    targets           Array(Tuple(LowCardinality(String), String)),  -- (channel, target)
    escalation_policy LowCardinality(Nullable(String)),
    incident_version  UInt64,
    emitted_at        DateTime64(3, 'UTC') CODEC(DoubleDelta, ZSTD(1))
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(emitted_at)
ORDER BY (tenant, incident_id, event_id)
SETTINGS non_replicated_deduplication_window = 1000;
