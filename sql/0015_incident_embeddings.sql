-- "Similar past incidents": one row per incident with the embedding of its text (alert names,
-- job and summary with what varies masked, as the local classifier reads them; the model is
-- all-MiniLM-L6-v2, 384 dimensions, unit length), written by `quench api`'s indexer. The HNSW
-- index answers `ORDER BY cosineDistance(embedding, v) LIMIT n` from a few granules instead of
-- reading every vector. `text_hash` (FNV-1a of the text) finds every occurrence of a text the
-- index returned: a rule that fired a thousand times has a thousand equal vectors, and the
-- lookup wants the latest of them, which the index alone would not rank first.
CREATE TABLE IF NOT EXISTS incident_embeddings
(
    tenant      LowCardinality(String),
    incident_id String,
    service     String,
    text_hash   UInt64,
    first_seen  DateTime64(3, 'UTC'),
    embedding   Array(Float32) CODEC(ZSTD(1)),
    INDEX by_embedding embedding TYPE vector_similarity('hnsw', 'cosineDistance', 384) GRANULARITY 100000000
)
ENGINE = ReplacingMergeTree
ORDER BY (tenant, incident_id)
SETTINGS non_replicated_deduplication_window = 1000;
