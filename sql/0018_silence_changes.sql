-- Every change of a silence (made, changed, expired) as `quench ingest`'s Alertmanager API and
-- `quench api` wrote it to the silences topic: who the request named, the token that made it,
-- the matchers and times. Silences mute every tenant, so they have none. Part of the audit view.
CREATE TABLE IF NOT EXISTS silence_changes
(
    at          DateTime64(3, 'UTC'),
    silence_id  String,
    change      LowCardinality(String),
    created_by  String,
    token       String,
    matchers    String,
    starts_at   DateTime64(3, 'UTC'),
    ends_at     DateTime64(3, 'UTC'),
    comment     String CODEC(ZSTD(3))
)
ENGINE = MergeTree
ORDER BY (at, silence_id);
