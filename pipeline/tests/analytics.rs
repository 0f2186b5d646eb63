//! The analytics views of `sql/0009_analytics.sql` and the Grafana dashboards' queries, against
//! the real ClickHouse of `infra/local/stack`, on a fixed data set whose numbers are worked out by
//! hand below. Each test uses a database of its own.

mod support;

use quench_pipeline::{
    clickhouse::{client, migrate, MIGRATIONS},
    config::Config,
};
use serde_json::{json, Value};

/// Three incidents of tenant `t` on 2026-11-02:
/// - `inc-1` (route `db`, team `dba` from routing, service `pg`, database, critical, P1): first
///   alert 10:00, announced 10:00:01, acknowledged 10:02 (119 s after), resolved 10:30 (1799 s);
///   10 alert records of 4 alerts. Its first version (open, 5 records) must not count.
///   Notifications: one event delivered at the second attempt, one escalation delivered.
/// - `inc-2` (the same slice): announced 11:00:01, acknowledged 11:04 (239 s), resolved 12:00
///   (3599 s); 20 records of 6 alerts; one event notification that failed after a retry.
/// - `inc-3` (route `web`, team `web` from its label, service `frontend`, network, warning, P3):
///   announced 12:00:01, still open, flapping; 6 records of 2 alerts; one event delivered.
///
/// Noise reduction is 1 - incidents / distinct alerts: 1 - 2/10 and 1 - 1/2.
///
/// Alerts: `PgDown` a1 fired, resolved, fired, resolved (one re-fire), a2 fired twice (a1 in
/// inc-1, a2 in inc-1 and inc-2); `HttpErrors` a3 fired once (inc-3); `PgSlowQueries` a4 fired once
/// (inc-1). One record is inserted twice with the same Kafka coordinates, as a replay would, and
/// counts once.
///
/// Predictions: `PgDown` on db-1 came true after 600 s (two versions), `HttpErrors` on web-1
/// missed. The learned graph's newest snapshot (2) says `PgDown` precedes `PgSlowQueries` in 80%
/// (over 10 onsets); its `HttpErrors` → `PgDown` edge has too little support (3) to hint.
const FIXTURE: &[&str] = &[
    "INSERT INTO incidents (tenant, incident_id, group_key, status, title, summary, severity, priority, category, \
     first_seen, last_seen, acknowledged_at, resolved_at, alert_count, distinct_alerts, common_labels, flapping, version) VALUES \
     ('t', 'inc-1', 'db|t|alertname=\"PgDown\"', 'open', 'PgDown', '', 'critical', 'P1', 'database', \
      '2026-11-02 10:00:00', '2026-11-02 10:01:00', NULL, NULL, 5, 2, {'service': 'pg'}, false, 1), \
     ('t', 'inc-1', 'db|t|alertname=\"PgDown\"', 'resolved', 'PgDown', '', 'critical', 'P1', 'database', \
      '2026-11-02 10:00:00', '2026-11-02 10:30:00', '2026-11-02 10:02:00', '2026-11-02 10:30:00', 10, 4, {'service': 'pg'}, false, 2), \
     ('t', 'inc-2', 'db|t|alertname=\"PgDown\"', 'resolved', 'PgDown', '', 'critical', 'P1', 'database', \
      '2026-11-02 11:00:00', '2026-11-02 12:00:00', '2026-11-02 11:04:00', '2026-11-02 12:00:00', 20, 6, {'service': 'pg'}, false, 3), \
     ('t', 'inc-3', 'web|t|alertname=\"HttpErrors\"', 'open', 'HttpErrors', '', 'warning', 'P3', 'network', \
      '2026-11-02 12:00:00', '2026-11-02 12:20:00', NULL, NULL, 6, 2, {'service': 'frontend', 'team': 'web'}, true, 1)",
    "INSERT INTO routing_events (tenant, event_id, incident_id, reason, status, severity, team, incident_version, emitted_at) VALUES \
     ('t', 'e1', 'inc-1', 'opened', 'open', 'critical', 'dba', 1, '2026-11-02 10:00:01'), \
     ('t', 'e2', 'inc-2', 'opened', 'open', 'critical', 'dba', 1, '2026-11-02 11:00:01'), \
     ('t', 'e3', 'inc-3', 'opened', 'open', 'warning', NULL, 1, '2026-11-02 12:00:01')",
    "INSERT INTO notifications (tenant, incident_id, event_id, idempotency_key, channel, target, kind, attempt, outcome, \
     status, error, latency_ms, at, emitted_at) VALUES \
     ('t', 'inc-1', 'e1', 'k1', 'slack', 'dba', 'event', 1, 'retrying', 503, 'busy', 40, '2026-11-02 10:00:02', '2026-11-02 10:00:01'), \
     ('t', 'inc-1', 'e1', 'k1', 'slack', 'dba', 'event', 2, 'delivered', 200, '', 60, '2026-11-02 10:00:05', '2026-11-02 10:00:01'), \
     ('t', 'inc-1', 'e1', 'k2', 'pagerduty', 'dba', 'escalation', 1, 'delivered', 202, '', 80, '2026-11-02 10:01:01', '2026-11-02 10:00:01'), \
     ('t', 'inc-2', 'e2', 'k3', 'slack', 'dba', 'event', 1, 'retrying', 500, 'oops', 40, '2026-11-02 11:00:02', '2026-11-02 11:00:01'), \
     ('t', 'inc-2', 'e2', 'k3', 'slack', 'dba', 'event', 2, 'failed', 500, 'oops', 40, '2026-11-02 11:00:09', '2026-11-02 11:00:01'), \
     ('t', 'inc-3', 'e3', 'k4', 'webhook', 'web', 'event', 1, 'delivered', 200, '', 30, '2026-11-02 12:00:02', '2026-11-02 12:00:01')",
    "INSERT INTO alerts (tenant, received_at, starts_at, status, source, alertname, fingerprint, kafka_partition, kafka_offset) VALUES \
     ('t', '2026-11-02 10:00:00', '2026-11-02 10:00:00', 'firing', 'alertmanager', 'PgDown', 'a1', 0, 1), \
     ('t', '2026-11-02 10:10:00', '2026-11-02 10:00:00', 'resolved', 'alertmanager', 'PgDown', 'a1', 0, 2), \
     ('t', '2026-11-02 10:10:00', '2026-11-02 10:00:00', 'resolved', 'alertmanager', 'PgDown', 'a1', 0, 2), \
     ('t', '2026-11-02 10:15:00', '2026-11-02 10:15:00', 'firing', 'alertmanager', 'PgDown', 'a1', 0, 3), \
     ('t', '2026-11-02 10:25:00', '2026-11-02 10:15:00', 'resolved', 'alertmanager', 'PgDown', 'a1', 0, 4), \
     ('t', '2026-11-02 10:00:30', '2026-11-02 10:00:30', 'firing', 'alertmanager', 'PgDown', 'a2', 1, 1), \
     ('t', '2026-11-02 11:00:00', '2026-11-02 10:00:30', 'firing', 'alertmanager', 'PgDown', 'a2', 1, 2), \
     ('t', '2026-11-02 12:00:00', '2026-11-02 12:00:00', 'firing', 'grafana', 'HttpErrors', 'a3', 2, 1), \
     ('t', '2026-11-02 10:01:00', '2026-11-02 10:01:00', 'firing', 'alertmanager', 'PgSlowQueries', 'a4', 1, 3)",
    "INSERT INTO incident_alerts (tenant, incident_id, fingerprint, first_seen, last_seen) VALUES \
     ('t', 'inc-1', 'a1', '2026-11-02 10:00:00', '2026-11-02 10:30:00'), \
     ('t', 'inc-1', 'a2', '2026-11-02 10:00:00', '2026-11-02 10:30:00'), \
     ('t', 'inc-2', 'a2', '2026-11-02 11:00:00', '2026-11-02 12:00:00'), \
     ('t', 'inc-3', 'a3', '2026-11-02 12:00:00', '2026-11-02 12:20:00'), \
     ('t', 'inc-1', 'a4', '2026-11-02 10:00:00', '2026-11-02 10:30:00')",
    "INSERT INTO predictions (tenant, prediction_id, alertname, entity, entity_label, probability, issued_at, \
     window_start, window_end, expected_lead_s, evidence_alertname, evidence_entity, evidence_fingerprint, \
     edge_support, model_version, outcome, came_at, lead_s, version) VALUES \
     ('t', 'p1', 'PgDown', 'db-1', 'instance', 0.8, '2026-11-02 09:50:00', '2026-11-02 09:55:00', \
      '2026-11-02 10:20:00', 600, 'PgSlowQueries', 'db-1', 'a4', 10, 1, 'pending', NULL, NULL, 1), \
     ('t', 'p1', 'PgDown', 'db-1', 'instance', 0.8, '2026-11-02 09:50:00', '2026-11-02 09:55:00', \
      '2026-11-02 10:20:00', 600, 'PgSlowQueries', 'db-1', 'a4', 10, 1, 'came_true', '2026-11-02 10:00:00', 600, 2), \
     ('t', 'p2', 'HttpErrors', 'web-1', 'instance', 0.6, '2026-11-02 11:00:00', '2026-11-02 11:05:00', \
      '2026-11-02 11:30:00', 900, 'HttpErrors', 'web-1', '', 0, 1, 'missed', NULL, NULL, 2)",
    "INSERT INTO precursor_edges (tenant, model_version, cause, effect, linked, probability, window_probability, \
     support, lead_p50_s, fitted_at) VALUES \
     ('t', 1, 'PgDown', 'PgSlowQueries', false, 0.5, 0.5, 10, 60, '2026-11-01 00:00:00'), \
     ('t', 2, 'PgDown', 'PgSlowQueries', false, 0.8, 0.5, 10, 60, '2026-11-02 00:00:00'), \
     ('t', 2, 'HttpErrors', 'PgDown', false, 0.9, 0.5, 3, 60, '2026-11-02 00:00:00')",
];

/// A database of its own with every migration applied and the fixture inserted.
async fn fixture_database() -> clickhouse::Client {
    let mut config = Config::load(None, std::env::vars()).expect("test environment config");
    config.clickhouse.database = support::database("analytics");
    // The fixture is a fixed day in the past: kept for ever, or the 30-day retention of these two
    // tables drops its rows as they are inserted once that day is 30 days old.
    for table in ["alerts", "precursor_edges"] {
        config.clickhouse.ttl_days.insert(table.into(), 0);
    }
    migrate(&config.clickhouse, MIGRATIONS).await.unwrap();
    let client = client(&config.clickhouse);
    for insert in FIXTURE {
        client.query(insert).execute().await.unwrap();
    }
    client
}

/// The rows of a query, as JSON objects.
async fn rows(client: &clickhouse::Client, sql: &str) -> Vec<Value> {
    let bytes = client
        .query(sql)
        .with_setting("output_format_json_quote_64bit_integers", "0")
        .fetch_bytes("JSONEachRow")
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .collect()
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    String::from_utf8(bytes.to_vec()).unwrap().lines().map(|line| serde_json::from_str(line).unwrap()).collect()
}

#[tokio::test]
async fn the_analytics_views_give_the_numbers_worked_out_by_hand() {
    let client = fixture_database().await;

    let daily = rows(
        &client,
        "SELECT team, service, category, route, incidents, alerts, distinct_alerts, round(noise_reduction, 4) AS noise, \
         acknowledged, mtta_s, resolved, mttr_s, ttr_p50_s, notifications, delivered, failed, \
         round(notification_success_rate, 4) AS success, escalations, flapping_incidents \
         FROM analytics_daily WHERE tenant = 't' AND day = '2026-11-02' ORDER BY route",
    )
    .await;
    assert_eq!(
        daily,
        [
            json!({"team": "dba", "service": "pg", "category": "database", "route": "db", "incidents": 2,
                   "alerts": 30, "distinct_alerts": 10, "noise": 0.8, "acknowledged": 2, "mtta_s": 179,
                   "resolved": 2, "mttr_s": 2699, "ttr_p50_s": 2699, "notifications": 3, "delivered": 2, "failed": 1,
                   "success": 0.6667, "escalations": 1, "flapping_incidents": 0}),
            json!({"team": "web", "service": "frontend", "category": "network", "route": "web", "incidents": 1,
                   "alerts": 6, "distinct_alerts": 2, "noise": 0.5, "acknowledged": 0, "mtta_s": null,
                   "resolved": 0, "mttr_s": null, "ttr_p50_s": null, "notifications": 1, "delivered": 1, "failed": 0,
                   "success": 1, "escalations": 0, "flapping_incidents": 1}),
        ]
    );

    let priorities = rows(
        &client,
        "SELECT priority, severity, incidents, open, acknowledged, resolved FROM incidents_by_priority \
         WHERE tenant = 't' ORDER BY priority",
    )
    .await;
    assert_eq!(
        priorities,
        [
            json!({"priority": "P1", "severity": "critical", "incidents": 2, "open": 0, "acknowledged": 0, "resolved": 2}),
            json!({"priority": "P3", "severity": "warning", "incidents": 1, "open": 1, "acknowledged": 0, "resolved": 0}),
        ]
    );

    let kinds = rows(
        &client,
        "SELECT alertname, alerts, distinct_alerts, refires, flapping_alerts, incidents FROM alert_kind_noise \
         WHERE tenant = 't' ORDER BY alerts DESC, alertname",
    )
    .await;
    assert_eq!(
        kinds,
        [
            json!({"alertname": "PgDown", "alerts": 6, "distinct_alerts": 2, "refires": 1, "flapping_alerts": 1, "incidents": 2}),
            json!({"alertname": "HttpErrors", "alerts": 1, "distinct_alerts": 1, "refires": 0, "flapping_alerts": 0, "incidents": 1}),
            json!({"alertname": "PgSlowQueries", "alerts": 1, "distinct_alerts": 1, "refires": 0, "flapping_alerts": 0, "incidents": 1}),
        ]
    );

    let quality = rows(
        &client,
        "SELECT alertname, predictions, came_true, missed, pending, precision, lead_p50_s FROM prediction_quality \
         WHERE tenant = 't' ORDER BY alertname",
    )
    .await;
    assert_eq!(
        quality,
        [
            json!({"alertname": "HttpErrors", "predictions": 1, "came_true": 0, "missed": 1, "pending": 0, "precision": 0, "lead_p50_s": null}),
            json!({"alertname": "PgDown", "predictions": 1, "came_true": 1, "missed": 0, "pending": 0, "precision": 1, "lead_p50_s": 600}),
        ]
    );

    let causes =
        rows(&client, "SELECT incident_id, cause, effect_kinds, effect_alerts, hint FROM incident_root_causes").await;
    assert_eq!(
        causes,
        [json!({"incident_id": "inc-1", "cause": "PgDown", "effect_kinds": 1, "effect_alerts": 1,
                "hint": "PgDown precedes this alert in 80% of history"})]
    );
}

/// A panel query as Grafana's ClickHouse data source would send it for 2026-11-02 (UTC) and
/// tenant `t`: its macros and variables replaced.
fn expand_macros(sql: &str) -> String {
    let (from, to) = ("toDateTime64('2026-11-02 00:00:00', 3)", "toDateTime64('2026-11-03 00:00:00', 3)");
    let sql = regex::Regex::new(r"\$__timeFilter\(([\w.]+)\)")
        .unwrap()
        .replace_all(sql, format!("($1 >= {from} AND $1 <= {to})"));
    let sql = regex::Regex::new(r"\$__timeInterval\(([\w.]+)\)")
        .unwrap()
        .replace_all(&sql, "toStartOfInterval($1, INTERVAL 3600 second)");
    sql.replace("$__fromTime", from).replace("$__toTime", to).replace("${tenant:singlequote}", "'t'")
}

#[tokio::test]
async fn every_dashboard_panel_returns_the_columns_it_shows_on_the_fixture() {
    let client = fixture_database().await;
    let folder = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../infra/grafana");
    let mut panels = 0;
    for entry in std::fs::read_dir(&folder).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let dashboard: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        // The dashboard of Quench's own metrics is over Prometheus: tests/operations.rs runs it.
        if dashboard["templating"]["list"][0]["query"] == "prometheus" {
            continue;
        }
        for panel in dashboard["panels"].as_array().unwrap() {
            let name = format!("{} / {}", path.file_name().unwrap().to_string_lossy(), panel["title"]);
            assert_eq!(panel["datasource"]["type"], "grafana-clickhouse-datasource", "{name}");
            // The columns a panel shows are the ones its field overrides name.
            let shown: Vec<&str> = panel["fieldConfig"]["overrides"]
                .as_array()
                .unwrap()
                .iter()
                .map(|o| o["matcher"]["options"].as_str().unwrap())
                .collect();
            assert!(!shown.is_empty(), "{name} names its columns");
            for target in panel["targets"].as_array().unwrap() {
                let sql = expand_macros(target["rawSql"].as_str().unwrap());
                assert!(!sql.contains('$'), "{name}: a macro left in {sql}");
                let rows = rows(&client, &sql).await;
                assert!(!rows.is_empty(), "{name}: no rows on the fixture from {sql}");
                let columns: Vec<&String> = rows[0].as_object().unwrap().keys().collect();
                for column in &shown {
                    assert!(columns.iter().any(|c| c == column), "{name}: no column {column} in {columns:?}");
                }
                panels += 1;
            }
        }
    }
    assert!(panels >= 24, "every dashboard was read: {panels} panels");
}
