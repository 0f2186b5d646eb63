-- Every change of a silence (made, changed, expired) as `quench ingest`'s Alertmanager API and
-- `quench api` wrote it to the silences topic: who the request named, the token that made it,
-- the matchers and times. Silences mute every tenant, so they have none. The audit view gains them.
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

CREATE OR REPLACE VIEW audit AS
SELECT at, tenant, actor AS who, token, concat('incident.', kind) AS what, incident_id AS target,
       ifNull(comment, '') AS detail
FROM actions
UNION ALL
SELECT at, tenant, 'quench' AS who, '' AS token, concat('notification.', outcome) AS what, incident_id AS target,
       concat(channel, ':', notifications.target, ' attempt ', toString(attempt),
              if(error = '', '', concat(': ', error))) AS detail
FROM notifications
UNION ALL
SELECT at, '*' AS tenant, created_by AS who, token, concat('silence.', change) AS what, silence_id AS target,
       concat(matchers, ' from ', toString(starts_at), ' to ', toString(ends_at), ': ', comment) AS detail
FROM silence_changes
UNION ALL
SELECT at, tenant, actor AS who, '' AS token, 'erase' AS what, tenant AS target,
       concat('label ', if(label = '', '(any)', label), ', before ', ifNull(toString(before), '(any time)'), ': ',
              toString(alerts), ' alerts, ', toString(incidents), ' incidents') AS detail
FROM erasures;
