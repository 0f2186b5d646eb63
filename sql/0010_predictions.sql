-- What `quench predict` expected (topic `predictions`): one row per prediction version, 1 when
-- issued (pending), 2 with its outcome (came_true with the lead achieved, or missed).
-- ReplacingMergeTree(version) keeps the outcome; query with FINAL.
CREATE TABLE IF NOT EXISTS predictions
(
    tenant               LowCardinality(String),
    prediction_id        String,
    alertname            LowCardinality(String),
    entity               String,
    entity_label         LowCardinality(String),
    probability          Float64,
    issued_at            DateTime64(3, 'UTC') CODEC(DoubleDelta, ZSTD(1)),
    window_start         DateTime64(3, 'UTC'),
    window_end           DateTime64(3, 'UTC'),
    expected_lead_s      Int64,
    evidence_alertname   LowCardinality(String),
    evidence_entity      String,
    evidence_fingerprint String,
    edge_support         Int64,
    model_version        Int64,
    outcome              LowCardinality(String),
    came_at              Nullable(DateTime64(3, 'UTC')),
    lead_s               Nullable(Int64),
    version              UInt64
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(issued_at)
ORDER BY (tenant, prediction_id)
SETTINGS non_replicated_deduplication_window = 1000;

-- How good the predictions were, per tenant, day and expected kind: precision over the decided
-- ones (came true or missed), and the lead achieved.
CREATE VIEW IF NOT EXISTS prediction_quality AS
SELECT
    tenant,
    toDate(issued_at) AS day,
    alertname,
    count() AS predictions,
    countIf(outcome = 'came_true') AS came_true,
    countIf(outcome = 'missed') AS missed,
    countIf(outcome = 'pending') AS pending,
    if(came_true + missed = 0, NULL, came_true / (came_true + missed)) AS precision,
    quantileExactInclusiveOrNull(0.5)(lead_s) AS lead_p50_s
FROM predictions FINAL
GROUP BY tenant, day, alertname;
