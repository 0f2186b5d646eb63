-- "Similar past incidents", written by `quench api`'s indexer. An incident's text is its rule as
-- the local classifier reads it (alert names, job and summary, what varies masked), so a rule
-- that fired a thousand times has one text: the vectors (all-MiniLM-L6-v2, 384 dimensions, unit
-- length) are kept once per text in `similar_texts`, whose HNSW index answers
-- `ORDER BY cosineDistance(embedding, v) LIMIT n` over the distinct texts only, and each
-- incident is a row of `similar_incidents` naming its text (`text_hash`, FNV-1a of the text),
-- ordered so that a text's latest occurrences are a range of the primary key.
CREATE TABLE IF NOT EXISTS similar_texts
(
    tenant    LowCardinality(String),
    text_hash UInt64,
    embedding Array(Float32) CODEC(ZSTD(1)),
    INDEX by_embedding embedding TYPE vector_similarity('hnsw', 'cosineDistance', 384) GRANULARITY 100000000
)
ENGINE = ReplacingMergeTree
ORDER BY (tenant, text_hash)
SETTINGS non_replicated_deduplication_window = 1000;

CREATE TABLE IF NOT EXISTS similar_incidents
(
    tenant      LowCardinality(String),
    text_hash   UInt64,
    first_seen  DateTime64(3, 'UTC'),
    incident_id String,
    service     String
)
ENGINE = ReplacingMergeTree
ORDER BY (tenant, text_hash, first_seen, incident_id)
SETTINGS non_replicated_deduplication_window = 1000;
