-- Every reload of a worker's rules files (windowing, routing), taken or refused: which instance,
-- which file, and why a refused one was refused. Then the audit trail over what people and Quench
-- did: actions on incidents (who the request named, and the token that vouched for it),
-- notification attempts, silence changes, rules reloads and erasures, by tenant and time.
CREATE TABLE IF NOT EXISTS rules_reloads
(
    at        DateTime64(3, 'UTC'),
    instance  String,
    rules     LowCardinality(String),
    file      String,
    outcome   LowCardinality(String),
    error     String
)
ENGINE = MergeTree
ORDER BY (at, instance);

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
SELECT at, '*' AS tenant, instance AS who, '' AS token, concat('rules.', outcome) AS what, rules AS target,
       concat(file, if(error = '', '', concat(': ', error))) AS detail
FROM rules_reloads
UNION ALL
SELECT at, tenant, actor AS who, '' AS token, 'erase' AS what, tenant AS target,
       concat('label ', if(label = '', '(any)', label), ', before ', ifNull(toString(before), '(any time)'), ': ',
              toString(alerts), ' alerts, ', toString(incidents), ' incidents') AS detail
FROM erasures;
