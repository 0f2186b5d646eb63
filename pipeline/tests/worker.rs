//! `quench run` against the real Kafka and registry of `infra/local/stack`: alerts in, incidents
//! and routing events out exactly once, dead letters for what cannot be read, and no loss or
//! duplicate when the worker is killed with SIGKILL and restarted.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    process::{Child, Command},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use quench_pipeline::{config::Config, kafka::create_topics};
use quench_schemas::{Alert, AlertStatus, Decoder, Encoder, Incident, Registry, RoutingEvent, RoutingReason};
use rdkafka::{
    consumer::{BaseConsumer, Consumer},
    producer::{FutureProducer, FutureRecord},
    ClientConfig, Message,
};

/// A record as read back: key, value and headers.
type Read = (Option<String>, Vec<u8>, Vec<(String, String)>);

struct Run {
    env: Vec<(String, String)>,
    config: Config,
}

impl Run {
    fn new(name: &str) -> Self {
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos();
        let prefix = format!("test-{name}-{}-{nanos}", std::process::id());
        let rules = std::env::temp_dir().join(format!("{prefix}-rules.toml"));
        std::fs::write(&rules, "[route]\ngroup_by = [\"alertname\"]\ngroup_wait = \"1s\"\ngroup_interval = \"1s\"\nresolve_timeout = \"1h\"\n").unwrap();
        let mut env: Vec<(String, String)> = std::env::vars().filter(|(k, _)| k.starts_with("QUENCH_")).collect();
        for (key, value) in [
            ("QUENCH_TOPICS__ALERTS", format!("{prefix}-alerts")),
            ("QUENCH_TOPICS__INCIDENTS", format!("{prefix}-incidents")),
            ("QUENCH_TOPICS__ROUTING", format!("{prefix}-routing")),
            ("QUENCH_TOPICS__STATE", format!("{prefix}-state")),
            ("QUENCH_TOPICS__DLQ", format!("{prefix}-dlq")),
            ("QUENCH_TOPICS__ACTIONS", format!("{prefix}-actions")),
            ("QUENCH_TOPICS__PARTITIONS", "3".into()),
            ("QUENCH_WORKER__GROUP_ID", format!("{prefix}-worker")),
            ("QUENCH_WORKER__INSTANCE_ID", "w1".into()),
            ("QUENCH_WORKER__ALLOWED_LATENESS_MS", "0".into()),
            ("QUENCH_WORKER__IDLE_TIMEOUT_MS", "300".into()),
            ("QUENCH_WORKER__RULES", rules.display().to_string()),
            ("QUENCH_METRICS__LISTEN", String::new()),
        ] {
            env.retain(|(k, _)| k != key);
            env.push((key.into(), value));
        }
        let config = Config::load(None, env.clone()).unwrap();
        Self { env, config }
    }

    fn start_worker(&self) -> Child {
        Command::new(env!("CARGO_BIN_EXE_quench"))
            .arg("run")
            .env_clear()
            .envs(self.env.iter().cloned())
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .spawn()
            .unwrap()
    }

    fn registry(&self) -> Registry {
        Registry::new(&self.config.registry.url, Duration::from_secs(10)).unwrap()
    }

    fn consumer(&self, topic: &str) -> BaseConsumer {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &self.config.kafka.brokers)
            .set("group.id", format!("{topic}-reader"))
            .set("auto.offset.reset", "earliest")
            .set("enable.auto.commit", "false")
            .set("isolation.level", "read_committed")
            .create()
            .unwrap();
        consumer.subscribe(&[topic]).unwrap();
        consumer
    }
}

fn alert(name: &str, instance: usize, now: i64) -> Alert {
    Alert {
        source: "test".into(),
        status: AlertStatus::Firing,
        labels: BTreeMap::from([("alertname".into(), name.into()), ("instance".into(), format!("host-{instance}"))]),
        annotations: BTreeMap::new(),
        starts_at: now,
        ends_at: None,
        received_at: now,
        generator_url: None,
        fingerprint: None,
        tenant: "default".into(),
    }
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64
}

async fn produce(run: &Run, records: Vec<(String, Vec<u8>)>) {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &run.config.kafka.brokers)
        .set("enable.idempotence", "true")
        .create()
        .unwrap();
    for (key, value) in records {
        producer
            .send(FutureRecord::to(&run.config.topics.alerts).key(&key).payload(&value), Duration::from_secs(10))
            .await
            .map_err(|(e, _)| e)
            .unwrap();
    }
}

/// Reads a topic with read_committed until `done` holds on what was read, or fails after 90 s.
fn read_until(consumer: &BaseConsumer, mut done: impl FnMut(&[Read]) -> bool) -> Vec<Read> {
    use rdkafka::message::Headers;
    let started = Instant::now();
    let mut seen = Vec::new();
    while !done(&seen) {
        assert!(started.elapsed() < Duration::from_secs(90), "gave up after 90 s with {} records", seen.len());
        if let Some(message) = consumer.poll(Duration::from_millis(200)) {
            let message = message.unwrap();
            let headers = message
                .headers()
                .map(|h| {
                    h.iter()
                        .map(|h| (h.key.to_string(), String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned()))
                        .collect()
                })
                .unwrap_or_default();
            seen.push((
                message.key().map(|k| String::from_utf8_lossy(k).into_owned()),
                message.payload().unwrap_or_default().to_vec(),
                headers,
            ));
        }
    }
    seen
}

async fn decode_all<T: quench_schemas::Record>(registry: &Registry, records: &[Read]) -> Vec<T> {
    let decoder = Decoder::<T>::new(registry.clone());
    let mut out = Vec::new();
    for (_, value, _) in records {
        out.push(decoder.decode(value).await.unwrap());
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn alerts_become_incidents_exactly_once_and_garbage_goes_to_the_dlq() {
    let run = Run::new("basic");
    create_topics(&run.config).await.unwrap();
    let registry = run.registry();
    let encoder = Encoder::<Alert>::register(&registry, &run.config.topics.alerts).await.unwrap();
    let now = now_ms();
    let mut records = Vec::new();
    for name in ["PgDown", "DiskFull", "HighLatency"] {
        for instance in 0..20 {
            records.push((name.to_string(), encoder.encode(&alert(name, instance, now)).unwrap()));
        }
    }
    records.push(("junk".into(), b"not avro at all".to_vec()));
    let mut nameless = alert("x", 0, now);
    nameless.labels.remove("alertname");
    records.push(("nameless".into(), encoder.encode(&nameless).unwrap()));
    produce(&run, records).await;

    let mut worker = run.start_worker();
    let routing = read_until(&run.consumer(&run.config.topics.routing), |seen| seen.len() >= 3);
    let dlq = read_until(&run.consumer(&run.config.topics.dlq), |seen| seen.len() >= 2);
    let incidents = read_until(&run.consumer(&run.config.topics.incidents), |seen| seen.len() >= 3);
    sigterm(&worker);
    assert!(worker.wait().unwrap().success(), "SIGTERM ends the worker cleanly");

    let events: Vec<RoutingEvent> = decode_all(&registry, &routing).await;
    assert_eq!(events.len(), 3, "one routing event per incident, not per alert: {events:?}");
    assert!(events.iter().all(|e| e.reason == RoutingReason::Opened));
    let incidents: Vec<Incident> = decode_all(&registry, &incidents).await;
    let counts: HashMap<String, i64> = incidents.iter().map(|i| (i.title.clone(), i.alert_count)).collect();
    assert_eq!(counts, HashMap::from([("PgDown".into(), 20), ("DiskFull".into(), 20), ("HighLatency".into(), 20)]));
    let reasons: Vec<&str> = dlq
        .iter()
        .flat_map(|(_, _, h)| h.iter().filter(|(k, _)| k == "quench.reason").map(|(_, v)| v.as_str()))
        .collect();
    assert!(reasons.iter().any(|r| r.contains("magic byte")), "{reasons:?}");
    assert!(reasons.iter().any(|r| r.contains("`alertname`")), "{reasons:?}");
    assert!(dlq.iter().any(|(_, v, _)| v == b"not avro at all"), "original bytes are kept");
}

fn sigterm(child: &Child) {
    Command::new("kill").arg("-TERM").arg(child.id().to_string()).status().unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn killing_the_worker_repeatedly_loses_and_duplicates_nothing() {
    let run = Run::new("kill");
    create_topics(&run.config).await.unwrap();
    let registry = run.registry();
    let encoder = Encoder::<Alert>::register(&registry, &run.config.topics.alerts).await.unwrap();
    let names: Vec<String> = (0..12).map(|i| format!("Rule{i}")).collect();
    let mut sent: HashMap<String, i64> = HashMap::new();
    let mut worker = run.start_worker();
    for round in 0..4 {
        let now = now_ms();
        let mut records = Vec::new();
        for (i, name) in names.iter().enumerate() {
            // Re-sends of the same alerts each round: every one must be counted exactly once.
            for instance in 0..(5 + i) {
                records.push((name.clone(), encoder.encode(&alert(name, instance, now)).unwrap()));
                *sent.entry(name.clone()).or_default() += 1;
            }
        }
        produce(&run, records).await;
        tokio::time::sleep(Duration::from_millis(300 + 400 * round)).await;
        worker.kill().unwrap();
        worker.wait().unwrap();
        worker = run.start_worker();
    }
    let incidents_consumer = run.consumer(&run.config.topics.incidents);
    let total: i64 = sent.values().sum();
    let decoder = Decoder::<Incident>::new(registry.clone());
    let mut latest: HashMap<String, Incident> = HashMap::new();
    let started = Instant::now();
    while latest.values().map(|i| i.alert_count).sum::<i64>() < total {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "incidents hold {:?} of {total} alerts",
            latest.values().map(|i| i.alert_count).sum::<i64>()
        );
        if let Some(message) = incidents_consumer.poll(Duration::from_millis(200)) {
            let incident = decoder.decode(message.unwrap().payload().unwrap()).await.unwrap();
            latest.insert(incident.title.clone(), incident);
        }
    }
    sigterm(&worker);
    assert!(worker.wait().unwrap().success());
    let counts: HashMap<String, i64> = latest.values().map(|i| (i.title.clone(), i.alert_count)).collect();
    assert_eq!(counts, sent, "every alert counted exactly once despite the kills");
    let ids: HashSet<&String> = latest.values().map(|i| &i.incident_id).collect();
    assert_eq!(ids.len(), names.len(), "one incident per group");

    // Everything the worker emitted: read until the topic has been quiet for 3 s.
    let mut last_growth = (0, Instant::now());
    let routing = read_until(&run.consumer(&run.config.topics.routing), |seen| {
        if seen.len() != last_growth.0 {
            last_growth = (seen.len(), Instant::now());
        }
        seen.len() >= names.len() && last_growth.1.elapsed() > Duration::from_secs(3)
    });
    let events: Vec<RoutingEvent> = decode_all(&registry, &routing).await;
    let opened: Vec<&RoutingEvent> = events.iter().filter(|e| e.reason == RoutingReason::Opened).collect();
    assert_eq!(opened.len(), names.len(), "each incident opened exactly once: {opened:?}");
    let event_ids: HashSet<&String> = events.iter().map(|e| &e.event_id).collect();
    assert_eq!(event_ids.len(), events.len(), "no routing event twice");
}
