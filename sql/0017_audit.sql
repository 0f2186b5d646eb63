-- Erasures (`quench erase`), and one audit trail over what people and Quench did: actions on
-- incidents (who the request named, and the token that vouched for it), notification attempts,
-- silence changes as the silences topic recorded them, and erasures; by tenant and time.
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

CREATE VIEW IF NOT EXISTS audit AS
SELECT at, tenant, actor AS who, token, concat('incident.', kind) AS what, incident_id AS target,
       ifNull(comment, '') AS detail
FROM actions
UNION ALL
SELECT at, tenant, 'quench' AS who, '' AS token, concat('notification.', outcome) AS what, incident_id AS target,
       concat(channel, ':', target, ' attempt ', toString(attempt), if(error = '', '', concat(': ', error))) AS detail
FROM notifications
UNION ALL
SELECT at, tenant, actor AS who, '' AS token, 'erase' AS what, tenant AS target,
       concat('label ', if(label = '', '(any)', label), ', before ', ifNull(toString(before), '(any time)'), ': ',
              toString(alerts), ' alerts, ', toString(incidents), ' incidents') AS detail
FROM erasures;
