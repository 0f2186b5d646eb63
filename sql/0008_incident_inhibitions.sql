-- How many incidents each incident's alerts inhibited (Alertmanager's inhibit_rules): the
-- source side of incidents.inhibited_by, for the source incident's page in dashboards.
CREATE VIEW IF NOT EXISTS incident_inhibitions AS
SELECT tenant, source AS incident_id, inhibited_incidents, last_inhibited
FROM
(
    SELECT tenant, source, uniqExact(incident_id) AS inhibited_incidents, max(last_seen) AS last_inhibited
    FROM incidents FINAL
    ARRAY JOIN inhibited_by AS source
    GROUP BY tenant, source
);
