-- Analytics an analyst starts from: one row per incident with what incidents are sliced by, then
-- rollups per day. Plain views over FINAL rather than materialized views: an incident changes
-- after it is first written (acknowledged, resolved, more alerts), and a materialized view would
-- aggregate every version instead of the latest one.

-- One row per incident, latest state. `team` is the routing rules' team (what the notifiers
-- used), else the incident's `team` label; `route` is the route id its group key starts with.
-- `opened_at` is when the worker first told anyone (its first routing event), else its first
-- alert's start: an alert that had fired for an hour before it reached Quench does not count
-- that hour against the responders. Durations are seconds from `opened_at`; NULL until the
-- incident is acknowledged or resolved. `alerts` counts alert records (re-sends included),
-- `distinct_alerts` the alerts; noise reduction is computed on the latter.
CREATE VIEW IF NOT EXISTS incident_facts AS
SELECT
    i.tenant AS tenant,
    i.incident_id AS incident_id,
    toDate(i.first_seen) AS day,
    if(r.team != '', r.team, i.common_labels['team']) AS team,
    i.common_labels['service'] AS service,
    ifNull(i.category, '') AS category,
    substring(i.group_key, 1, position(i.group_key, concat('|', i.tenant, '|')) - 1) AS route,
    i.severity AS severity,
    ifNull(i.priority, '') AS priority,
    i.status AS status,
    i.flapping AS flapping,
    i.first_seen AS first_seen,
    if(r.incident_id = '', i.first_seen, r.opened_at) AS opened_at,
    i.acknowledged_at AS acknowledged_at,
    i.resolved_at AS resolved_at,
    dateDiff('millisecond', opened_at, i.acknowledged_at) / 1000 AS tta_s,
    dateDiff('millisecond', opened_at, i.resolved_at) / 1000 AS ttr_s,
    i.alert_count AS alerts,
    i.distinct_alerts AS distinct_alerts,
    n.notifications AS notifications,
    n.delivered AS delivered,
    n.failed AS failed,
    n.escalations AS escalations
FROM incidents AS i FINAL
LEFT JOIN
(
    SELECT tenant, incident_id, ifNull(anyIf(team, team != ''), '') AS team, min(emitted_at) AS opened_at
    FROM routing_events FINAL
    GROUP BY tenant, incident_id
) AS r ON r.tenant = i.tenant AND r.incident_id = i.incident_id
LEFT JOIN
(
    -- A notification is one idempotency key, however many attempts it took; delivered when any
    -- attempt was, failed when an attempt gave up and none was delivered.
    SELECT
        tenant,
        incident_id,
        count() AS notifications,
        countIf(was_delivered) AS delivered,
        countIf(gave_up AND NOT was_delivered) AS failed,
        countIf(kind = 'escalation') AS escalations
    FROM
    (
        SELECT tenant, incident_id, idempotency_key, any(kind) AS kind,
               max(outcome = 'delivered') AS was_delivered, max(outcome = 'failed') AS gave_up
        FROM notifications FINAL
        GROUP BY tenant, incident_id, idempotency_key
    )
    GROUP BY tenant, incident_id
) AS n ON n.tenant = i.tenant AND n.incident_id = i.incident_id;

-- Per tenant, day (of the incident's opening), team, service, category and route. Sums and
-- counts roll up further by summing; the averages and medians (interpolated) do not, so the sums of the
-- durations are kept beside them (mean = sum / count).
CREATE VIEW IF NOT EXISTS analytics_daily AS
SELECT
    tenant, day, team, service, category, route,
    count() AS incidents,
    sum(f.alerts) AS alerts,
    sum(f.distinct_alerts) AS distinct_alerts,
    if(sum(f.distinct_alerts) = 0, NULL, 1 - count() / sum(f.distinct_alerts)) AS noise_reduction,
    countIf(acknowledged_at IS NOT NULL) AS acknowledged,
    sum(f.tta_s) AS tta_sum_s,
    avgOrNull(f.tta_s) AS mtta_s,
    quantileExactInclusiveOrNull(0.5)(f.tta_s) AS tta_p50_s,
    countIf(resolved_at IS NOT NULL) AS resolved,
    sum(f.ttr_s) AS ttr_sum_s,
    avgOrNull(f.ttr_s) AS mttr_s,
    quantileExactInclusiveOrNull(0.5)(f.ttr_s) AS ttr_p50_s,
    sum(f.notifications) AS notifications,
    sum(f.delivered) AS delivered,
    sum(f.failed) AS failed,
    if(sum(f.delivered) + sum(f.failed) = 0, NULL, sum(f.delivered) / (sum(f.delivered) + sum(f.failed)))
        AS notification_success_rate,
    sum(f.escalations) AS escalations,
    countIf(f.flapping) AS flapping_incidents
FROM incident_facts AS f
GROUP BY tenant, day, team, service, category, route;

-- Incidents per tenant, day, priority and severity, and how many are still open.
CREATE VIEW IF NOT EXISTS incidents_by_priority AS
SELECT
    tenant, day, priority, severity,
    count() AS incidents,
    countIf(status = 'open') AS open,
    countIf(status = 'acknowledged') AS acknowledged,
    countIf(status = 'resolved') AS resolved
FROM incident_facts
GROUP BY tenant, day, priority, severity;

-- Alert kinds (alertname) by how much they send, per tenant and day: alert records, distinct
-- alerts, the incidents those alerts joined (on any day: do not sum this column over days), and
-- re-fires within the day (a record firing again after its alert's previous record that day
-- resolved it), which is what a flapping alert does. Order by `alerts` for the noisiest kinds,
-- by `refires` for the flappiest.
CREATE VIEW IF NOT EXISTS alert_kind_noise AS
SELECT
    a.tenant AS tenant,
    a.day AS day,
    a.alertname AS alertname,
    sum(a.records) AS alerts,
    count() AS distinct_alerts,
    sum(a.refires) AS refires,
    countIf(a.refires > 0) AS flapping_alerts,
    uniqExactMerge(j.incidents) AS incidents
FROM
(
    SELECT
        tenant, day, alertname, fingerprint,
        length(statuses) AS records,
        arraySum((before, after) -> before = 'resolved' AND after = 'firing',
                 arrayPopBack(statuses), arrayPopFront(statuses)) AS refires
    FROM
    (
        -- Each alert's records in the order Kafka has them (received_at ties are common).
        SELECT tenant, toDate(received_at) AS day, alertname, fingerprint,
               arrayMap(x -> x.4, arraySort(groupArray((received_at, kafka_partition, kafka_offset, toString(status)))))
                   AS statuses
        FROM alerts FINAL
        GROUP BY tenant, day, alertname, fingerprint
    )
) AS a
LEFT JOIN
(
    SELECT tenant, fingerprint, uniqExactState(incident_id) AS incidents
    FROM incident_alerts FINAL
    GROUP BY tenant, fingerprint
) AS j ON j.tenant = a.tenant AND j.fingerprint = a.fingerprint
GROUP BY tenant, day, alertname;
