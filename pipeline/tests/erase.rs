//! `quench erase` against the real ClickHouse and Kafka of `infra/local/stack`: a tenant's
//! incidents with a label, and the alerts that carry it, are gone from every table and get
//! tombstones on the compacted incidents topic; everything else (another label, another tenant)
//! stays; the erasure is in the audit view.

mod support;

use std::path::Path;

use quench_pipeline::{
    clickhouse::{client, migrate, MIGRATIONS},
    config::quench_command,
    kafka::create_topics,
};
use support::{read_until, Run};

/// Tenant `a`: `inc-pg` (service pg, its alert `f-pg`) and `inc-web` (service web, alert `f-web`);
/// tenant `b`: `inc-bpg` (service pg too, alert `f-bpg`). Each with a notification and an action.
const FIXTURE: &[&str] = &[
    "INSERT INTO alerts (tenant, received_at, starts_at, status, source, alertname, fingerprint, labels, kafka_partition, kafka_offset) VALUES \
     ('a', '2026-11-02 10:00:00', '2026-11-02 10:00:00', 'firing', 'am', 'PgDown', 'f-pg', {'service':'pg','alertname':'PgDown'}, 0, 1), \
     ('a', '2026-11-02 10:00:00', '2026-11-02 10:00:00', 'firing', 'am', 'WebDown', 'f-web', {'service':'web','alertname':'WebDown'}, 0, 2), \
     ('b', '2026-11-02 10:00:00', '2026-11-02 10:00:00', 'firing', 'am', 'PgDown', 'f-bpg', {'service':'pg','alertname':'PgDown'}, 0, 3)",
    "INSERT INTO incidents (tenant, incident_id, group_key, status, title, severity, first_seen, last_seen, alert_count, \
     distinct_alerts, common_labels, version) VALUES \
     ('a', 'inc-pg', 'k1', 'open', 'PgDown', 'critical', '2026-11-02 10:00:00', '2026-11-02 10:00:00', 1, 1, {'alertname':'PgDown'}, 1), \
     ('a', 'inc-web', 'k2', 'open', 'WebDown', 'critical', '2026-11-02 10:00:00', '2026-11-02 10:00:00', 1, 1, {'service':'web'}, 1), \
     ('b', 'inc-bpg', 'k3', 'open', 'PgDown', 'critical', '2026-11-02 10:00:00', '2026-11-02 10:00:00', 1, 1, {'service':'pg'}, 1)",
    "INSERT INTO incident_alerts (tenant, incident_id, fingerprint, first_seen, last_seen) VALUES \
     ('a', 'inc-pg', 'f-pg', '2026-11-02 10:00:00', '2026-11-02 10:00:00'), \
     ('a', 'inc-web', 'f-web', '2026-11-02 10:00:00', '2026-11-02 10:00:00'), \
     ('b', 'inc-bpg', 'f-bpg', '2026-11-02 10:00:00', '2026-11-02 10:00:00')",
    "INSERT INTO notifications (tenant, incident_id, event_id, idempotency_key, channel, target, kind, attempt, outcome, \
     status, error, latency_ms, at, emitted_at) VALUES \
     ('a', 'inc-pg', 'e1', 'k1', 'slack', 'dba', 'event', 1, 'delivered', 200, '', 40, '2026-11-02 10:00:01', '2026-11-02 10:00:01'), \
     ('a', 'inc-web', 'e2', 'k2', 'slack', 'web', 'event', 1, 'delivered', 200, '', 40, '2026-11-02 10:00:01', '2026-11-02 10:00:01'), \
     ('b', 'inc-bpg', 'e3', 'k3', 'slack', 'dba', 'event', 1, 'delivered', 200, '', 40, '2026-11-02 10:00:01', '2026-11-02 10:00:01')",
    "INSERT INTO actions (tenant, incident_id, action_id, kind, actor, token, comment, at) VALUES \
     ('a', 'inc-pg', 'x1', 'comment', 'alice', 'ops', 'the pg password is hunter2', '2026-11-02 10:05:00'), \
     ('b', 'inc-bpg', 'x2', 'comment', 'bob', 'ops', 'looking', '2026-11-02 10:05:00')",
];

async fn remaining(clickhouse: &clickhouse::Client, table: &str) -> Vec<String> {
    let key = if table == "alerts" { "fingerprint" } else { "incident_id" };
    let sql = format!("SELECT concat(tenant, '/', {key}) FROM {table} ORDER BY 1");
    clickhouse.query(&sql).fetch_all::<String>().await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tenants_labelled_data_is_erased_from_every_table_and_the_incidents_topic_and_recorded() {
    let mut run = Run::new("erase");
    run.set_all(&[
        ("QUENCH_CLICKHOUSE__DATABASE", support::database("erase")),
        // Notifications kept ten years (longer than the fixture's fixed day is old: rows already
        // past a TTL are dropped as they are inserted), erasures for ever (none to remove: no error).
        ("QUENCH_CLICKHOUSE__TTL_DAYS__NOTIFICATIONS", "3650".into()),
        ("QUENCH_CLICKHOUSE__TTL_DAYS__ERASURES", "0".into()),
        // The fixture's alerts are of a fixed day in the past: kept for ever, not for 30 days.
        ("QUENCH_CLICKHOUSE__TTL_DAYS__ALERTS", "0".into()),
    ]);
    create_topics(&run.config.kafka, &run.config.topics).await.unwrap();
    migrate(&run.config.clickhouse, MIGRATIONS).await.unwrap();
    let clickhouse = client(&run.config.clickhouse);
    for insert in FIXTURE {
        clickhouse.query(insert).execute().await.unwrap();
    }
    let ttl: String = clickhouse
        .query("SELECT engine_full FROM system.tables WHERE database = currentDatabase() AND name = 'notifications'")
        .fetch_one()
        .await
        .unwrap();
    assert!(ttl.contains("TTL toDateTime(at) + toIntervalDay(3650)"), "clickhouse.ttl_days applied: {ttl}");
    let erase = |args: &str| {
        let output = quench_command(Path::new(env!("CARGO_BIN_EXE_quench")), &format!("erase {args}"), &run.env)
            .output()
            .unwrap();
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8_lossy(&output.stdout).into_owned()
    };

    let dry = erase("--tenant a --label service=pg --dry-run");
    assert!(dry.contains("would erase 1 alerts and 1 incidents of tenant a"), "{dry}");
    assert_eq!(remaining(&clickhouse, "incidents").await.len(), 3, "a dry run changes nothing");

    let done = erase("--tenant a --label service=pg --actor dpo@example.com");
    assert!(done.contains("erased 1 alerts and 1 incidents of tenant a"), "{done}");
    assert_eq!(remaining(&clickhouse, "alerts").await, ["a/f-web", "b/f-bpg"]);
    for table in ["incidents", "incident_alerts", "notifications"] {
        assert_eq!(remaining(&clickhouse, table).await, ["a/inc-web", "b/inc-bpg"], "{table}");
    }
    assert_eq!(remaining(&clickhouse, "actions").await, ["b/inc-bpg"], "the comment went with its incident");

    let consumer = run.consumer(&run.config.topics.incidents);
    let records = read_until(&consumer, |seen| !seen.is_empty());
    assert_eq!(records.len(), 1, "one tombstone: {records:?}");
    assert_eq!((records[0].0.as_deref(), records[0].1.is_empty()), (Some("inc-pg"), true));

    let audit: Vec<(String, String, String)> =
        clickhouse.query("SELECT who, what, detail FROM audit WHERE what = 'erase'").fetch_all().await.unwrap();
    assert_eq!(audit.len(), 1, "{audit:?}");
    assert_eq!(audit[0].0, "dpo@example.com");
    assert!(audit[0].2.contains("label service=pg") && audit[0].2.contains("1 alerts, 1 incidents"), "{audit:?}");
    assert!(!audit[0].2.contains("hunter2"), "the record says what went, not what it said");
}
