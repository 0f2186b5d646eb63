//! Quench on a three-broker Kafka cluster (KRaft, replication 3, `min.insync.replicas` 2; a named
//! instance of `infra/local/stack` with `KAFKA_NODES=3`): one broker killed with SIGKILL under
//! load and started again while ingest, worker, sink and notifier run. Every alert ingest
//! accepted is in ClickHouse and counted in its incident once; every routing event is delivered.

mod support;

use std::{
    collections::{BTreeSet, HashSet},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use quench_pipeline::{
    clickhouse::{client, migrate, MIGRATIONS},
    kafka::create_topics,
};
use quench_schemas::{now_ms, RoutingEvent};
use support::{
    decode_all,
    fake_peers::{self, Peers},
    ingest::{alertmanager_body, post, Ingest},
    read_until, sigterm, PrivateServer, Run,
};

const NAMES: usize = 20;
const PER_REQUEST: usize = 50;

#[tokio::test(flavor = "multi_thread")]
async fn a_broker_killed_under_load_loses_and_duplicates_nothing() {
    // Below Linux's ephemeral ports (32768 and up), where an outgoing connection may hold one.
    let port = 21_000 + (std::process::id() % 300) as u16 * 30;
    let kafka = PrivateServer::new("cluster", "kafka", &[("KAFKA_PORT", port), ("KAFKA_CONTROLLER_PORT", port + 1)])
        .with_env("KAFKA_NODES", "3");
    kafka.stack("up");
    let brokers: Vec<String> = (0..3).map(|n| format!("127.0.0.1:{}", port + 10 * n)).collect();
    let dir = std::env::temp_dir().join(format!("quench-cluster-{}-{}", std::process::id(), now_ms()));
    std::fs::create_dir_all(&dir).unwrap();
    let peers = Arc::new(Peers::default());
    let base = fake_peers::serve(peers.clone()).await;
    let (config, routing) = fake_peers::webhook_files(&dir, &base, "");
    let mut run = Run::new("cluster");
    run.set("QUENCH_CONFIG", &config.display().to_string());
    run.set("QUENCH_KAFKA__BROKERS", &brokers.join(","));
    run.set("QUENCH_TOPICS__REPLICATION_FACTOR", "3");
    run.set("QUENCH_WORKER__ROUTING", &routing.display().to_string());
    run.set("QUENCH_CLICKHOUSE__DATABASE", &support::database("cluster"));
    run.set("QUENCH_SINK__FLUSH_INTERVAL_MS", "300");
    create_topics(&run.config.kafka, &run.config.topics).await.unwrap();
    migrate(&run.config.clickhouse, MIGRATIONS).await.unwrap();

    let ingest = Ingest::start(&run, &[]);
    let mut processes = vec![run.start("run"), run.start("sink"), run.start("notify")];
    // A sender posting 50 alerts at a time, each request sent again after a 503 until taken.
    let (stop, accepted) = (Arc::new(AtomicBool::new(false)), Arc::new(Mutex::new(BTreeSet::new())));
    let sender = tokio::spawn({
        let (stop, accepted, url) = (stop.clone(), accepted.clone(), ingest.url.clone());
        async move {
            let client = reqwest::Client::new();
            let mut request = 0;
            while !stop.load(Ordering::SeqCst) {
                let instances = request * PER_REQUEST..(request + 1) * PER_REQUEST;
                let body = alertmanager_body(&format!("Storm{}", request % NAMES), instances.clone());
                let body = serde_json::to_vec(&body).unwrap();
                loop {
                    let status = post(&client, &url, "/v1/alertmanager", body.clone()).await.status().as_u16();
                    if status == 200 {
                        break;
                    }
                    assert_eq!(status, 503, "only unavailability is expected");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                accepted.lock().unwrap().extend(instances);
                request += 1;
            }
        }
    });
    let accepted_now = || accepted.lock().unwrap().len();
    wait_until("load to flow", || accepted_now() >= 2_000).await;
    kafka.stack_on("kill", "kafka2");
    let at_kill = accepted_now();
    tokio::time::sleep(Duration::from_secs(10)).await;
    wait_until("alerts taken with a broker down", || accepted_now() >= at_kill + 2_000).await;
    kafka.stack("up");
    tokio::time::sleep(Duration::from_secs(5)).await;
    stop.store(true, Ordering::SeqCst);
    sender.await.unwrap();
    for process in &mut processes {
        assert!(process.try_wait().unwrap().is_none(), "every process kept running");
    }
    let accepted = accepted.lock().unwrap().clone();

    // ClickHouse: every accepted alert, no record inserted twice, each counted in its incident once.
    let clickhouse = client(&run.config.clickhouse);
    let query = "SELECT assumeNotNull((SELECT uniqExact(labels['instance']) FROM alerts)), \
                 assumeNotNull((SELECT count() FROM alerts)), \
                 assumeNotNull((SELECT uniqExact(kafka_partition, kafka_offset) FROM alerts)), \
                 assumeNotNull((SELECT sum(distinct_alerts) FROM incidents FINAL))";
    let expected = accepted.len() as u64;
    let started = Instant::now();
    let (instances, rows, offsets, counted) = loop {
        let counts: (u64, u64, u64, u64) = clickhouse.query(query).fetch_one().await.unwrap();
        if (counts.0, counts.3) == (expected, expected) || started.elapsed() > Duration::from_secs(180) {
            break counts;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(instances, expected, "every accepted alert is in ClickHouse");
    assert_eq!(rows, offsets, "no record inserted twice");
    assert_eq!(counted, expected, "each alert counted once in its incident");

    // Every routing event (each once on the topic) delivered to the webhook.
    let records = read_until(&run.consumer(&run.config.topics.routing), {
        let since = Instant::now();
        move |_| since.elapsed() > Duration::from_secs(5)
    });
    let events: Vec<RoutingEvent> = decode_all(&run.registry(), &records).await;
    let ids: HashSet<&str> = events.iter().map(|e| e.event_id.as_str()).collect();
    assert_eq!(ids.len(), events.len(), "no routing event twice");
    wait_until("every routing event delivered", || {
        let delivered: HashSet<String> = peers.of("webhook/ops").into_iter().map(|r| r.key).collect();
        ids.iter().all(|id| delivered.contains(&format!("{id}|webhook:ops")))
    })
    .await;
    for mut process in processes {
        sigterm(&process);
        assert!(process.wait().unwrap().success(), "graceful shutdown");
    }
    eprintln!("{expected} alerts accepted ({at_kill} before the kill); {} routing events delivered", ids.len());
}

async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < Duration::from_secs(180), "gave up waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
