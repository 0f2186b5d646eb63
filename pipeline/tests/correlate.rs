//! Correlation across groups through the real pipeline (Kafka, the registry, ClickHouse,
//! `quench run`), across a worker SIGKILL: the worker learns from ClickHouse history that
//! `NodeUnreachable` follows `LinkDown`; live, a `LinkDown` group opens, the worker is killed,
//! and its successor links the `NodeUnreachable` group of the same cluster under the `LinkDown`
//! incident (the decision it restored from the changelog), with the explanation, once. An
//! unrelated kind in that cluster and the same kind in another cluster stay on their own.

mod support;

use std::time::{Duration, Instant};

use quench_pipeline::{
    clickhouse::{client, migrate, MIGRATIONS},
    kafka::create_topics,
};
use quench_schemas::{now_ms, Alert, Encoder, RoutingEvent, RoutingReason};
use support::{decode_all, produce, read_until, wait_for_log, KillOnDrop, Run};

/// Ten times in the last day, `LinkDown` then `NodeUnreachable` 20 s later; `DiskFull` now and
/// then on its own.
async fn insert_history(clickhouse: &clickhouse::Client) {
    let start = now_ms() - 20 * 3_600_000;
    let mut rows = Vec::new();
    let mut row = |name: &str, at: i64| {
        rows.push(format!(
            "('default', fromUnixTimestamp64Milli({at} + 1000), fromUnixTimestamp64Milli({at}), 'firing', 'test', '{name}', \
             'fp-{name}-{at}', {{'alertname': '{name}'}}, 0, {})",
            rows.len()
        ));
    };
    for i in 0..10 {
        row("LinkDown", start + i * 3_600_000);
        row("NodeUnreachable", start + i * 3_600_000 + 20_000);
        row("DiskFull", start + i * 3_600_000 + 1_800_000);
    }
    clickhouse
        .query(&format!(
            "INSERT INTO alerts (tenant, received_at, starts_at, status, source, alertname, fingerprint, labels, \
             kafka_partition, kafka_offset) VALUES {}",
            rows.join(", ")
        ))
        .execute()
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn two_groups_of_one_root_cause_become_one_parent_incident_with_its_explanation_across_a_worker_kill() {
    let mut run = Run::new("correlate");
    let rules = std::env::temp_dir().join(format!("quench-correlate-{}.toml", std::process::id()));
    std::fs::write(
        &rules,
        "[route]\ngroup_by = [\"alertname\", \"cluster\"]\ngroup_wait = \"2s\"\ngroup_interval = \"2s\"\nresolve_timeout = \"1h\"\n",
    )
    .unwrap();
    run.set("QUENCH_WORKER__RULES", &rules.display().to_string());
    run.set("QUENCH_CLICKHOUSE__DATABASE", &support::database("correlate"));
    run.set("QUENCH_CORRELATE__ENABLED", "true");
    run.set("QUENCH_WORKER__TRANSIENT_LEARN_INTERVAL_S", "0");
    run.set("QUENCH_LOG__LEVEL", "info");
    create_topics(&run.config.kafka, &run.config.topics).await.unwrap();
    migrate(&run.config.clickhouse, MIGRATIONS).await.unwrap();
    insert_history(&client(&run.config.clickhouse)).await;

    let log = std::env::temp_dir().join(format!("quench-correlate-{}.log", std::process::id()));
    let mut worker = KillOnDrop(run.start_logged("run", &log));
    wait_for_log(&mut worker, &log, "learned which alert kinds go together");

    let encoder = Encoder::<Alert>::register(&run.registry(), &run.config.topics.alerts).await.unwrap();
    let alert = |name: &str, labels: &[(&str, &str)]| {
        let mut a = support::alert(name, 0, now_ms());
        a.labels.remove("instance");
        a.labels.extend(labels.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        // Keyed by tenant, as the ingest keys alerts when correlation is on.
        ("default".to_string(), encoder.encode(&a).unwrap())
    };
    let started = Instant::now();
    produce(&run, vec![alert("LinkDown", &[("cluster", "c1"), ("device", "sw-1")])]).await;
    // The LinkDown group opens at group_wait (2 s) and its decision is committed; then the
    // worker is killed before the other groups open.
    let routing = run.consumer(&run.config.topics.routing);
    let mut read = read_until(&routing, |seen| !seen.is_empty());
    worker.0.kill().unwrap();
    worker.0.wait().unwrap();
    produce(
        &run,
        vec![
            alert("NodeUnreachable", &[("cluster", "c1"), ("node", "n1")]),
            alert("DiskFull", &[("cluster", "c1"), ("node", "n2")]),
            alert("NodeUnreachable", &[("cluster", "c2"), ("node", "n9")]),
        ],
    )
    .await;
    assert!(started.elapsed() < Duration::from_secs(170), "within the correlation window");
    let mut worker = KillOnDrop(run.start_logged("run", &log));
    wait_for_log(&mut worker, &log, "learned which alert kinds go together");

    read.extend(read_until(&routing, |seen| seen.len() >= 3));
    let events: Vec<RoutingEvent> = decode_all(&run.registry(), &read).await;
    let opened = |title: &str| {
        let matching: Vec<&RoutingEvent> =
            events.iter().filter(|e| e.title == title && e.reason == RoutingReason::Opened).collect();
        assert_eq!(matching.len(), 1, "{title} opened once: {events:#?}");
        matching[0]
    };
    let parent = opened("LinkDown (cluster=c1)");
    let child = opened("NodeUnreachable (cluster=c1)");
    assert_eq!(parent.parent_incident_id, None);
    assert_eq!(child.parent_incident_id.as_deref(), Some(parent.incident_id.as_str()), "{child:?}");
    let why = child.correlation.as_deref().unwrap_or_default();
    assert!(
        why.starts_with("same cluster `c1`, NodeUnreachable follows LinkDown in 100% of history"),
        "the link explains itself: {why}"
    );
    assert_eq!(opened("DiskFull (cluster=c1)").parent_incident_id, None, "no history ties DiskFull to LinkDown");
    assert_eq!(opened("NodeUnreachable (cluster=c2)").parent_incident_id, None, "another cluster");
}
