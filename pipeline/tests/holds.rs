//! Quench's holds through the real pipeline (Kafka, the registry, ClickHouse, `quench run`),
//! across a worker SIGKILL: a flapping alert is held and announced once when stable, with how
//! often it changed; an alert of a kind that the worker learned from ClickHouse history to be
//! transient, resolving within its pause, is recorded as transient and never announced, while one
//! of the same kind that keeps firing is announced once the pause is over.

mod support;

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use quench_pipeline::{
    clickhouse::{client, migrate, MIGRATIONS},
    kafka::create_topics,
};
use quench_schemas::{now_ms, Alert, AlertStatus, Encoder, Incident, IncidentStatus, RoutingEvent, RoutingReason};
use rdkafka::Message;
use support::{alert, decode_all, produce, read_until, wait_for_log, KillOnDrop, Run};

const RULES: &str = "[route]\ngroup_by = [\"alertname\", \"instance\"]\ngroup_wait = \"1s\"\ngroup_interval = \"1s\"\n\
resolve_timeout = \"1h\"\nflap_changes = 4\nflap_window = \"60s\"\nflap_stable = \"6s\"\ntransient_pause = \"5s\"\n";

/// History in ClickHouse, two hours ago: six `CpuSpike` episodes that resolved after 20 s (a
/// transient kind) and six `DiskFull` episodes that lasted ten minutes (not one).
async fn insert_history(clickhouse: &clickhouse::Client) {
    let start = now_ms() - 2 * 3_600_000;
    let mut rows = Vec::new();
    for (name, lasted_ms) in [("CpuSpike", 20_000), ("DiskFull", 600_000)] {
        for host in 0..6 {
            let (starts, ends) = (start + host * 60_000, start + host * 60_000 + lasted_ms);
            // Received a second after they started, as from a sender that reports the start.
            for (status, at, end) in [
                ("firing", starts + 1_000, "NULL".to_string()),
                ("resolved", ends, format!("fromUnixTimestamp64Milli({ends})")),
            ] {
                rows.push(format!(
                    "('default', fromUnixTimestamp64Milli({at}), fromUnixTimestamp64Milli({starts}), {end}, '{status}', 'test', \
                     '{name}', 'fp-{name}-{host}', {{'alertname': '{name}'}}, 0, {})",
                    rows.len()
                ));
            }
        }
    }
    clickhouse
        .query(&format!(
            "INSERT INTO alerts (tenant, received_at, starts_at, ends_at, status, source, alertname, fingerprint, labels, \
             kafka_partition, kafka_offset) VALUES {}",
            rows.join(", ")
        ))
        .execute()
        .await
        .unwrap();
}

/// What else comes on the topic, read until nothing more came for 3 s.
fn drain(consumer: &rdkafka::consumer::BaseConsumer) -> Vec<support::Read> {
    let mut read = Vec::new();
    let mut quiet = Instant::now();
    while quiet.elapsed() < Duration::from_secs(3) {
        if let Some(message) = consumer.poll(Duration::from_millis(200)) {
            read.push((None, message.unwrap().payload().unwrap_or_default().to_vec(), Vec::new()));
            quiet = Instant::now();
        }
    }
    read
}

#[tokio::test(flavor = "multi_thread")]
async fn a_flapping_alert_is_announced_once_when_stable_and_a_transient_one_never_across_a_worker_kill() {
    let mut run = Run::new("holds");
    let rules = std::env::temp_dir().join(format!("quench-holds-{}.toml", std::process::id()));
    std::fs::write(&rules, RULES).unwrap();
    run.set("QUENCH_WORKER__RULES", &rules.display().to_string());
    run.set("QUENCH_CLICKHOUSE__DATABASE", &support::database("holds"));
    run.set("QUENCH_WORKER__TRANSIENT_LEARN_INTERVAL_S", "3600");
    run.set("QUENCH_WORKER__TRANSIENT_MAX_DURATION_S", "60");
    run.set("QUENCH_LOG__LEVEL", "info");
    create_topics(&run.config.kafka, &run.config.topics).await.unwrap();
    migrate(&run.config.clickhouse, MIGRATIONS).await.unwrap();
    insert_history(&client(&run.config.clickhouse)).await;

    let log = std::env::temp_dir().join(format!("quench-holds-{}.log", std::process::id()));
    let mut worker = KillOnDrop(run.start_logged("run", &log));
    wait_for_log(&mut worker, &log, "alert kinds' durations read for the transient pause");
    let text = regex::Regex::new("\x1b\\[[0-9;]*m")
        .unwrap()
        .replace_all(&std::fs::read_to_string(&log).unwrap(), "")
        .into_owned();
    assert!(text.contains("transient pause kinds=2"), "CpuSpike and DiskFull read from history: {text}");

    let encoder = Encoder::<Alert>::register(&run.registry(), &run.config.topics.alerts).await.unwrap();
    let started = Instant::now();
    let send = |name: &str, host: usize, starts_at: i64, firing: bool| {
        let mut a = alert(name, host, starts_at);
        a.received_at = now_ms();
        if !firing {
            a.status = AlertStatus::Resolved;
            a.ends_at = Some(a.received_at);
        }
        (format!("{name}/host-{host}"), encoder.encode(&a).unwrap())
    };
    // Paced on the wall clock: the worker's event time follows it (no allowed lateness).
    let at = |ms: u64| {
        let due = started + Duration::from_millis(ms);
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
    };
    let t0 = now_ms();
    produce(&run, vec![send("Flappy", 1, t0, true), send("CpuSpike", 1, t0, true), send("CpuSpike", 2, t0, true)])
        .await;
    at(1_500);
    produce(&run, vec![send("CpuSpike", 1, t0, false)]).await;
    // Flappy changes four times within its minute: resolved, firing, resolved, firing.
    for (i, firing) in [false, true, false, true].into_iter().enumerate() {
        at(2_500 + 500 * i as u64);
        produce(&run, vec![send("Flappy", 1, t0 + 2_500 + 500 * i as i64, firing)]).await;
    }
    at(4_500);
    // Killed while Flappy is held and the first CpuSpike waits in its pause.
    worker.0.kill().unwrap();
    worker.0.wait().unwrap();
    let _worker = KillOnDrop(run.start_logged("run", &log));

    let registry = run.registry();
    let routing = run.consumer(&run.config.topics.routing);
    // Flappy opened, the second CpuSpike opened after its pause, Flappy settled.
    let mut read = read_until(&routing, |seen| seen.len() >= 3);
    // Anything duplicated or late would follow within seconds: the holds ended before this.
    read.extend(drain(&routing));
    let events: Vec<RoutingEvent> = decode_all(&registry, &read).await;
    let said: Vec<(String, RoutingReason, i64)> = events.iter().map(|e| (e.title.clone(), e.reason, e.flaps)).collect();
    let count = |title: &str, reason: RoutingReason| said.iter().filter(|(t, r, _)| t == title && *r == reason).count();
    assert_eq!(count("Flappy (instance=host-1)", RoutingReason::Opened), 1, "{said:?}");
    assert_eq!(
        count("Flappy (instance=host-1)", RoutingReason::AlertsAdded),
        1,
        "announced once when stable: {said:?}"
    );
    assert_eq!(said.iter().filter(|(t, _, _)| t.starts_with("Flappy")).count(), 2, "nothing else: {said:?}");
    assert!(said.contains(&("Flappy (instance=host-1)".into(), RoutingReason::AlertsAdded, 4)), "{said:?}");
    assert_eq!(count("CpuSpike (instance=host-2)", RoutingReason::Opened), 1, "announced after its pause: {said:?}");
    assert!(!said.iter().any(|(t, _, _)| t == "CpuSpike (instance=host-1)"), "never announced: {said:?}");

    // The incidents, newest state of each: Flappy flapped, the first CpuSpike was transient.
    let incidents: Vec<Incident> = decode_all(&registry, &drain(&run.consumer(&run.config.topics.incidents))).await;
    let mut latest: HashMap<String, Incident> = HashMap::new();
    for incident in incidents {
        let newer = latest.get(&incident.title).is_none_or(|known| known.version < incident.version);
        if newer {
            latest.insert(incident.title.clone(), incident);
        }
    }
    let titles: Vec<&String> = latest.keys().collect();
    assert_eq!(titles.len(), 3, "{titles:?}");
    let flappy = &latest["Flappy (instance=host-1)"];
    assert!(flappy.flapping && flappy.state_changes == 4, "{flappy:?}");
    let transient = &latest["CpuSpike (instance=host-1)"];
    assert!(transient.transient && transient.status == IncidentStatus::Resolved, "{transient:?}");
    assert!(!latest["CpuSpike (instance=host-2)"].transient);
}
