//! `quench sink` against real Kafka and ClickHouse: what the worker committed lands in ClickHouse
//! exactly once, including across a 30 s ClickHouse outage. The outage test stops a ClickHouse
//! of its own (a named instance of `infra/local/stack`), so other tests keep theirs.

mod support;

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use clickhouse::Row;
use quench_pipeline::{
    clickhouse::{client, migrate, MIGRATIONS},
    kafka::create_topics,
};
use quench_schemas::{now_ms, Alert, Encoder, RefusedRow};
use serde::Deserialize;
use support::{alert, produce, run_to_exit, sigterm, KillOnDrop, PrivateServer, Run};

#[derive(Row, Deserialize, Debug)]
struct Counts {
    rows: u64,
    distinct_offsets: u64,
}

#[derive(Row, Deserialize, Debug)]
struct IncidentCount {
    title: String,
    alert_count: u64,
}

async fn alert_counts(run: &Run) -> Option<Counts> {
    client(&run.config.clickhouse)
        .query("SELECT count() AS rows, uniqExact(kafka_partition, kafka_offset) AS distinct_offsets FROM alerts FINAL")
        .fetch_one()
        .await
        .ok()
}

async fn wait_for_alerts(run: &Run, expected: u64, limit: Duration) -> Counts {
    let started = Instant::now();
    loop {
        if let Some(counts) = alert_counts(run).await {
            if counts.rows >= expected {
                return counts;
            }
        }
        assert!(
            started.elapsed() < limit,
            "ClickHouse holds {:?} of {expected} alerts after {limit:?}",
            alert_counts(run).await
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_clickhouse_outage_pauses_the_sink_and_loses_or_duplicates_nothing() {
    let port = 18_000 + (std::process::id() % 1_000) as u16;
    let clickhouse = PrivateServer::new("sink-outage", "clickhouse", &[("CLICKHOUSE_PORT", port)]);
    clickhouse.stack("up");
    let mut run = Run::new("sink");
    run.set("QUENCH_CLICKHOUSE__URL", &format!("http://127.0.0.1:{port}"));
    run.set("QUENCH_CLICKHOUSE__DATABASE", "quench_sink_test");
    run.set("QUENCH_SINK__FLUSH_INTERVAL_MS", "300");
    run.set("QUENCH_SINK__MAX_BACKOFF_MS", "2000");
    create_topics(&run.config.kafka, &run.config.topics).await.unwrap();
    migrate(&run.config.clickhouse, MIGRATIONS).await.unwrap();
    let encoder = Encoder::<Alert>::register(&run.registry(), &run.config.topics.alerts).await.unwrap();
    let names = ["PgDown", "DiskFull", "HighLatency", "OOMKilled"];
    let mut sent: HashMap<String, u64> = HashMap::new();
    let mut batch = |instances: usize| {
        let now = now_ms();
        let mut records = Vec::new();
        for name in names {
            for instance in 0..instances {
                records.push((name.to_string(), encoder.encode(&alert(name, instance, now)).unwrap()));
                *sent.entry(name.to_string()).or_default() += 1;
            }
        }
        records
    };

    let mut worker = run.start("run");
    let mut sink = run.start("sink");
    // Alerts from 4 groups of 5,000 hosts before the outage, and again (re-sent) during it.
    produce(&run, batch(5_000)).await;
    wait_for_alerts(&run, 20_000, Duration::from_secs(120)).await;

    clickhouse.stack("down");
    produce(&run, batch(5_000)).await;
    produce(&run, batch(2_500)).await;
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert!(sink.try_wait().unwrap().is_none(), "the sink keeps running through the outage");
    clickhouse.stack("up");

    let total: u64 = sent.values().sum();
    let counts = wait_for_alerts(&run, total, Duration::from_secs(180)).await;
    assert_eq!(counts.rows, total, "every alert exactly once");
    assert_eq!(counts.distinct_offsets, total);

    // Incidents: the newest version of each, with every alert counted.
    let started = Instant::now();
    let expected: HashMap<String, u64> = sent.clone();
    loop {
        let rows: Vec<IncidentCount> = client(&run.config.clickhouse)
            .query("SELECT title, alert_count FROM incidents FINAL ORDER BY title")
            .fetch_all()
            .await
            .unwrap();
        let got: HashMap<String, u64> = rows.into_iter().map(|r| (r.title, r.alert_count)).collect();
        if got == expected {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "incidents in ClickHouse {got:?}, expected {expected:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // Every distinct alert of each incident once in incident_alerts (from `incident-alerts`),
    // and counted in the incident's distinct_alerts.
    let query = "SELECT assumeNotNull((SELECT count() FROM incident_alerts FINAL)), \
                 assumeNotNull((SELECT sum(distinct_alerts) FROM incidents FINAL))";
    let started = Instant::now();
    loop {
        let (joined, distinct): (u64, u64) = client(&run.config.clickhouse).query(query).fetch_one().await.unwrap();
        if (joined, distinct) == (20_000, 20_000) {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "incident_alerts {joined}, distinct_alerts {distinct}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    for child in [&mut worker, &mut sink] {
        sigterm(child);
        assert!(child.wait().unwrap().success(), "graceful shutdown");
    }
}

/// A batch whose incidents span 1970, 2999 and 200 months (more partitions than one insert may
/// touch), and an alert the table refuses: one such batch once stopped the sink for good.
#[tokio::test(flavor = "multi_thread")]
async fn rows_clickhouse_refuses_go_to_the_dead_letter_topic_and_the_rest_is_written() {
    let port = 17_000 + (std::process::id() % 1_000) as u16;
    let clickhouse = PrivateServer::new("sink-refuse", "clickhouse", &[("CLICKHOUSE_PORT", port)]);
    clickhouse.stack("up");
    let mut run = Run::new("sink-refuse");
    run.set("QUENCH_CLICKHOUSE__URL", &format!("http://127.0.0.1:{port}"));
    run.set("QUENCH_CLICKHOUSE__DATABASE", "quench_sink_refuse");
    run.set("QUENCH_SINK__FLUSH_INTERVAL_MS", "2000");
    create_topics(&run.config.kafka, &run.config.topics).await.unwrap();
    migrate(&run.config.clickhouse, MIGRATIONS).await.unwrap();
    let clickhouse_client = client(&run.config.clickhouse);
    clickhouse_client
        .query("ALTER TABLE alerts ADD CONSTRAINT refuse CHECK alertname != 'Refused'")
        .execute()
        .await
        .unwrap();

    let encoder = Encoder::<Alert>::register(&run.registry(), &run.config.topics.alerts).await.unwrap();
    let now = now_ms();
    const MONTH: i64 = 31 * 24 * 3_600_000;
    let mut alerts: Vec<Alert> =
        (0..200).map(|i| alert(&format!("Month{i}"), 0, 631_152_000_000 + i * MONTH)).collect();
    alerts.push(alert("Epoch", 0, 0));
    alerts.push(alert("Far", 0, 32_503_680_000_000));
    alerts.push(alert("Refused", 0, now));
    let records: Vec<(String, Vec<u8>)> = alerts
        .iter_mut()
        .map(|a| {
            a.received_at = now;
            (a.labels["alertname"].clone(), encoder.encode(a).unwrap())
        })
        .collect();
    produce(&run, records).await;
    let mut worker = run.start("run");
    let mut sink = run.start("sink");

    let refused = support::read_until(&run.consumer(&run.config.topics.sink_dlq), |seen| {
        seen.iter().any(|(_, value, _)| String::from_utf8_lossy(value).contains("Refused"))
    });
    let letters: Vec<RefusedRow> = refused.iter().map(|(_, value, _)| serde_json::from_slice(value).unwrap()).collect();
    let letter = letters.iter().find(|l| l.table == "alerts").expect("the refused alert's row");
    assert_eq!(letter.row["alertname"], "Refused");
    assert!(letter.error.contains("refuse"), "ClickHouse's reason: {}", letter.error);

    // Everything else is written: all other alerts, and every incident (or, should ClickHouse
    // refuse a year-2999 row, in the dead-letter topic with its reason).
    let started = Instant::now();
    loop {
        let (alerts_written, incidents_written): (u64, u64) = clickhouse_client
            .query("SELECT assumeNotNull((SELECT count() FROM alerts FINAL)), assumeNotNull((SELECT count() FROM incidents FINAL))")
            .fetch_one()
            .await
            .unwrap();
        let incidents_refused = letters.iter().filter(|l| l.table == "incidents").count() as u64;
        if alerts_written == 202 && incidents_written + incidents_refused == 203 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "alerts {alerts_written} of 202, incidents {incidents_written} (+{incidents_refused} refused) of 203"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(sink.try_wait().unwrap().is_none(), "the sink keeps running");
    for child in [&mut worker, &mut sink] {
        sigterm(child);
        assert!(child.wait().unwrap().success(), "graceful shutdown");
    }
}

/// Every table the sink writes, as one string: incidents (newest versions, what a query with
/// FINAL sees) row by row, and the other tables' distinct rows counted.
async fn snapshot(run: &Run) -> String {
    let query = "SELECT assumeNotNull(concat( \
        (SELECT toString(groupArray(tuple(incident_id, version, status, title, alert_count, distinct_alerts, \
            summary, severity, category, first_seen, last_seen, resolved_at, fingerprints, common_labels))) \
            FROM (SELECT * FROM incidents FINAL ORDER BY incident_id)), \
        ' alerts ', toString((SELECT count() FROM alerts FINAL)), \
        ' incident_alerts ', toString((SELECT count() FROM incident_alerts FINAL)), \
        ' routing_events ', toString((SELECT count() FROM routing_events FINAL))))";
    client(&run.config.clickhouse).query(query).fetch_one().await.unwrap()
}

/// The alerts the newest version of each incident counts, summed.
async fn alerts_in_incidents(run: &Run) -> u64 {
    let query = "SELECT toUInt64(sum(alert_count)) FROM incidents FINAL";
    client(&run.config.clickhouse).query(query).fetch_one().await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn sink_from_the_beginning_rebuilds_the_same_tables_from_kafka_into_an_empty_database() {
    let mut run = Run::new("sink-rebuild");
    run.set("QUENCH_CLICKHOUSE__DATABASE", &support::database("rebuilt_from"));
    run.set("QUENCH_SINK__FLUSH_INTERVAL_MS", "300");
    create_topics(&run.config.kafka, &run.config.topics).await.unwrap();
    migrate(&run.config.clickhouse, MIGRATIONS).await.unwrap();
    let encoder = Encoder::<Alert>::register(&run.registry(), &run.config.topics.alerts).await.unwrap();
    let now = now_ms();
    let mut records = Vec::new();
    for name in ["PgDown", "DiskFull", "HighLatency"] {
        for instance in 0..200 {
            records.push((name.to_string(), encoder.encode(&alert(name, instance, now)).unwrap()));
        }
    }
    produce(&run, records).await;
    let worker = KillOnDrop(run.start("run"));
    let mut sink = KillOnDrop(run.start("sink"));
    wait_for_alerts(&run, 600, Duration::from_secs(120)).await;
    // Settled: the same snapshot twice, a few flushes apart, with every alert in its incident
    // (the alerts reach ClickHouse first: a slow worker start once left the incidents empty for
    // two snapshots, and the rebuild was compared with that).
    let mut before = String::new();
    let started = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let now = snapshot(&run).await;
        if now == before && now.contains(" alerts 600 ") && alerts_in_incidents(&run).await == 600 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(120), "ClickHouse did not settle: {now}");
        before = now;
    }
    // While a sink of the group runs, setting the group back is refused (its commits would undo it).
    let (succeeded, said) = run_to_exit(&run, "sink --from-beginning", "refused beside a running sink").await;
    assert!(!succeeded && said.contains("stop every `quench sink` of the group first"), "{said}");
    sigterm(&sink);
    assert!(sink.wait().unwrap().success(), "graceful shutdown");

    // A new, empty database; the sink's group has committed everything, so only the flag
    // makes it read the topics again.
    run.set("QUENCH_CLICKHOUSE__DATABASE", &support::database("rebuilt_to"));
    migrate(&run.config.clickhouse, MIGRATIONS).await.unwrap();
    let rebuild = KillOnDrop(run.start("sink --from-beginning"));
    let started = Instant::now();
    loop {
        let now = snapshot(&run).await;
        if now == before {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(120), "rebuilt {now}\nexpected {before}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(before.contains("PgDown") && !before.ends_with("routing_events 0"), "{before}");
    for child in [&worker, &rebuild] {
        sigterm(child);
    }
}
