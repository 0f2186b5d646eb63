-- What people did to incidents (acknowledge, resolve, comment), as written to `incident-actions`
-- by `quench api`, `quench notify`'s acknowledgement API and the notifiers: who (the token's
-- name), when, and the comment. Acknowledgements and resolutions change the incident too; a
-- comment lives only here. A replayed action collapses to one row (same action id).
CREATE TABLE IF NOT EXISTS actions
(
    tenant      LowCardinality(String),
    incident_id String,
    action_id   String,
    kind        LowCardinality(String),
    actor       String,
    comment     Nullable(String) CODEC(ZSTD(3)),
    at          DateTime64(3, 'UTC') CODEC(DoubleDelta, ZSTD(1))
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(at)
ORDER BY (tenant, incident_id, action_id)
SETTINGS non_replicated_deduplication_window = 1000;
