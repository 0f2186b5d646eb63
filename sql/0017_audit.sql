-- Erasures (`quench erase`): who asked, what was matched, how much went (never the values). Part
-- of the audit view (0019_rules_reloads.sql).
CREATE TABLE IF NOT EXISTS erasures
(
    at          DateTime64(3, 'UTC'),
    tenant      LowCardinality(String),
    actor       String,
    label       String,
    before      Nullable(DateTime64(3, 'UTC')),
    alerts      UInt64,
    incidents   UInt64
)
ENGINE = MergeTree
ORDER BY (tenant, at);
