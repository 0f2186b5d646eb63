-- The precursor graph `quench predict` learned, one snapshot per fit (model_version, ms since the
-- epoch): how often an onset of `effect` followed one of `cause` on the same entity (or a linked
-- one) within the learned lead times, over how many onsets of the cause, and the median lead.
CREATE TABLE IF NOT EXISTS precursor_edges
(
    tenant          LowCardinality(String),
    model_version   Int64,
    cause           LowCardinality(String),
    effect          LowCardinality(String),
    linked          Bool,            -- on a linked entity rather than the same one
    probability     Float64,         -- P(effect follows within the learned lead times | cause)
    window_probability Float64,      -- P(effect in the prediction horizon's best window | cause)
    support         UInt64,          -- onsets of the cause counted
    lead_p50_s      Int64,
    fitted_at       DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(fitted_at)
ORDER BY (tenant, model_version, cause, effect, linked)
TTL toDateTime(fitted_at) + INTERVAL 30 DAY DELETE;

-- Root-cause hints: for each incident, the alert kind among its alerts that the newest learned
-- graph says precedes the most of its other kinds (same-entity edges, probability >= 0.5,
-- learned over at least 5 onsets), and that started no later than they did in this incident,
-- with a sentence for people. The entity shown is the first of the usual entity labels
-- (instance, host, node, pod, device, service) the cause's alert carries. An incident without
-- such a kind has no row.
CREATE VIEW IF NOT EXISTS incident_root_causes AS
WITH
    latest AS
    (
        SELECT tenant, max(model_version) AS model_version FROM precursor_edges FINAL GROUP BY tenant
    ),
    edges AS
    (
        SELECT e.tenant AS tenant, cause, effect, probability, support
        FROM precursor_edges AS e FINAL
        INNER JOIN latest AS l ON l.tenant = e.tenant AND l.model_version = e.model_version
        WHERE NOT linked AND probability >= 0.5 AND support >= 5 AND cause != effect
    ),
    kinds AS
    (
        SELECT ia.tenant AS tenant, ia.incident_id AS incident_id, a.alertname AS alertname,
               uniqExact(a.fingerprint) AS alerts, min(a.starts_at) AS first_start,
               any(arrayFirst(x -> x != '', [a.labels['instance'], a.labels['host'], a.labels['node'],
                                             a.labels['pod'], a.labels['device'], a.labels['service']])) AS entity
        FROM incident_alerts AS ia FINAL
        INNER JOIN alerts AS a ON a.tenant = ia.tenant AND a.fingerprint = ia.fingerprint
        GROUP BY tenant, incident_id, alertname
    ),
    scored AS
    (
        SELECT c.tenant AS tenant, c.incident_id AS incident_id, c.alertname AS candidate, any(c.entity) AS on_entity,
               count() AS kinds_followed, sum(e.alerts) AS alerts_followed, avg(g.probability) AS p
        FROM kinds AS c
        INNER JOIN edges AS g ON g.tenant = c.tenant AND g.cause = c.alertname
        INNER JOIN kinds AS e ON e.tenant = c.tenant AND e.incident_id = c.incident_id AND e.alertname = g.effect
        WHERE c.first_start <= e.first_start
        GROUP BY tenant, incident_id, candidate
    )
SELECT
    tenant, incident_id,
    argMax(candidate, (kinds_followed, p)) AS cause,
    argMax(on_entity, (kinds_followed, p)) AS entity,
    max(kinds_followed) AS effect_kinds,
    argMax(alerts_followed, (kinds_followed, p)) AS effect_alerts,
    argMax(p, (kinds_followed, p)) AS probability,
    format('{}{} precedes {} in {}% of history', cause, if(entity = '', '', concat(' on ', entity)),
           if(effect_alerts = 1, 'this alert', concat('these ', toString(effect_alerts), ' alerts')),
           toString(round(probability * 100)))
        AS hint
FROM scored
GROUP BY tenant, incident_id;
