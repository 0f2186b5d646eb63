//! Helpers shared by the integration tests: a run with topics and groups of its own on the
//! local stack, the `quench` binary as a child process, and reading topics with read_committed.
// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::{Child, Command},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

pub mod browser;
pub mod fake_llm;
pub mod fake_peers;
pub mod ingest;

use quench_pipeline::config::{isolated_env, quench_command, Config};
use quench_schemas::{Alert, AlertStatus, Decoder, Registry};
use rdkafka::{
    consumer::{BaseConsumer, Consumer},
    producer::{FutureProducer, FutureRecord},
    ClientConfig, Message,
};

/// The previous release's `quench`, for the upgrade tests: `infra/test` builds it from the commit
/// that `infra/previous-release` names and sets `QUENCH_PREVIOUS_BIN`.
pub fn previous_quench() -> PathBuf {
    let path = std::env::var_os("QUENCH_PREVIOUS_BIN").map(PathBuf::from).expect(
        "QUENCH_PREVIOUS_BIN names the previous release's quench: run infra/test, or \
         `export QUENCH_PREVIOUS_BIN=$(infra/previous-release)`",
    );
    assert!(path.is_file(), "QUENCH_PREVIOUS_BIN={} is not a file", path.display());
    path
}

/// A record as read back: key, value and headers.
pub type Read = (Option<String>, Vec<u8>, Vec<(String, String)>);

pub struct Run {
    pub env: Vec<(String, String)>,
    pub config: Config,
}

impl Run {
    /// Topics, groups and a rules file of this run's own, on the stack named by QUENCH_* variables.
    pub fn new(name: &str) -> Self {
        let prefix = format!("test-{name}-{}-{}", std::process::id(), now_nanos());
        let rules = std::env::temp_dir().join(format!("{prefix}-rules.toml"));
        std::fs::write(&rules, "[route]\ngroup_by = [\"alertname\"]\ngroup_wait = \"1s\"\ngroup_interval = \"1s\"\nresolve_timeout = \"1h\"\n").unwrap();
        let env = isolated_env(
            &prefix,
            [
                ("QUENCH_TOPICS__PARTITIONS", "3".into()),
                ("QUENCH_WORKER__INSTANCE_ID", "w1".into()),
                ("QUENCH_WORKER__ALLOWED_LATENESS_MS", "0".into()),
                ("QUENCH_WORKER__IDLE_TIMEOUT_MS", "300".into()),
                ("QUENCH_WORKER__RULES", rules.display().to_string()),
                ("QUENCH_HTTP__LISTEN", String::new()),
                ("QUENCH_LOG__LEVEL", "warn".into()),
            ],
        );
        let config = Config::load(None, env.clone()).unwrap();
        Self { env, config }
    }

    /// Overrides a setting for this run's processes and its config.
    pub fn set(&mut self, key: &str, value: &str) {
        self.set_all(&[(key, value.to_string())]);
    }

    /// Overrides settings that are only valid together (a token and its tenants).
    pub fn set_all(&mut self, settings: &[(&str, String)]) {
        for (key, value) in settings {
            self.env.retain(|(k, _)| k != key);
            self.env.push((key.to_string(), value.clone()));
        }
        self.config = Config::load(None, self.env.clone()).unwrap();
    }

    /// Starts `quench <command>` with this run's settings.
    pub fn start(&self, command: &str) -> Child {
        self.start_with(command, &[])
    }

    /// Starts `quench <command>` with this run's settings and a few of its own.
    pub fn start_with(&self, command: &str, extra: &[(&str, &str)]) -> Child {
        self.start_binary(Path::new(env!("CARGO_BIN_EXE_quench")), command, extra)
    }

    /// The same with another build of `quench` (the previous release: [`previous_quench`]).
    pub fn start_binary(&self, quench: &Path, command: &str, extra: &[(&str, &str)]) -> Child {
        quench_command(quench, command, &self.env)
            .envs(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())))
            .spawn()
            .unwrap()
    }

    /// Starts `quench <command>` with its log (stderr) appended to `log`, for tests that read it.
    pub fn start_logged(&self, command: &str, log: &Path) -> Child {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(log).unwrap();
        quench_command(Path::new(env!("CARGO_BIN_EXE_quench")), command, &self.env).stderr(log).spawn().unwrap()
    }

    pub fn registry(&self) -> Registry {
        Registry::new(&self.config.registry.url, Duration::from_secs(10)).unwrap()
    }

    pub fn consumer(&self, topic: &str) -> BaseConsumer {
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

pub fn alert(name: &str, instance: usize, now: i64) -> Alert {
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
        stateful: false,
    }
}

pub async fn produce(run: &Run, records: Vec<(String, Vec<u8>)>) {
    produce_over(run, records, Duration::ZERO).await;
}

/// [`produce`] with the records queued evenly over `spread` (a share every 20 ms), as a steady
/// stream rather than one burst; partitions added meanwhile get their share within a second.
pub async fn produce_over(run: &Run, records: Vec<(String, Vec<u8>)>, spread: Duration) {
    const STEP: Duration = Duration::from_millis(20);
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &run.config.kafka.brokers)
        .set("enable.idempotence", "true")
        .set("queue.buffering.max.messages", "1000000")
        .set("topic.metadata.refresh.interval.ms", "1000")
        .create()
        .unwrap();
    let shares = (spread.as_millis() / STEP.as_millis()).max(1) as usize;
    // Queue everything first, then wait for every acknowledgement: one round trip per batch, not per record.
    let mut deliveries = Vec::new();
    for (i, share) in records.chunks(records.len().div_ceil(shares).max(1)).enumerate() {
        if i > 0 {
            tokio::time::sleep(STEP).await;
        }
        deliveries.extend(share.iter().map(|(key, value)| {
            producer
                .send_result(FutureRecord::to(&run.config.topics.alerts).key(key).payload(value))
                .map_err(|(e, _)| e)
                .unwrap()
        }));
    }
    for delivery in deliveries {
        delivery.await.unwrap().map_err(|(e, _)| e).unwrap();
    }
}

/// Reads a topic with read_committed until `done` holds on what was read, or fails after 90 s.
pub fn read_until(consumer: &BaseConsumer, mut done: impl FnMut(&[Read]) -> bool) -> Vec<Read> {
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

/// Reads a topic until it holds at least `at_least` records and nothing more came for `quiet`:
/// everything written so far, when the writers have stopped or caught up.
pub fn read_until_quiet(consumer: &BaseConsumer, at_least: usize, quiet: Duration) -> Vec<Read> {
    let mut last_growth = (0, Instant::now());
    read_until(consumer, |seen| {
        if seen.len() != last_growth.0 {
            last_growth = (seen.len(), Instant::now());
        }
        seen.len() >= at_least && last_growth.1.elapsed() > quiet
    })
}

pub async fn decode_all<T: quench_schemas::Record>(registry: &Registry, records: &[Read]) -> Vec<T> {
    let decoder = Decoder::<T>::new(registry.clone());
    let mut out = Vec::new();
    for (_, value, _) in records {
        out.push(decoder.decode(value).await.unwrap());
    }
    out
}

pub fn sigterm(child: &Child) {
    Command::new("kill").arg("-TERM").arg(child.id().to_string()).status().unwrap();
}

/// A server of the test's own (a named instance of `infra/local/stack` on ports of its own), for
/// tests that stop it without disturbing the other tests' stack.
pub struct PrivateServer {
    instance: String,
    service: &'static str,
    ports: Vec<(&'static str, u16)>,
    env: Vec<(&'static str, String)>,
}

impl PrivateServer {
    /// `ports` are the stack script's port variables, such as `("CLICKHOUSE_PORT", 18123)`.
    pub fn new(name: &str, service: &'static str, ports: &[(&'static str, u16)]) -> Self {
        Self { instance: format!("{name}-{}", std::process::id()), service, ports: ports.to_vec(), env: Vec::new() }
    }

    /// Another variable for the stack script, such as `SMTP_MAILDIR`.
    pub fn with_env(mut self, key: &'static str, value: impl Into<String>) -> Self {
        self.env.push((key, value.into()));
        self
    }

    /// `up` or `down`.
    pub fn stack(&self, action: &str) {
        self.stack_on(action, self.service);
    }

    /// What `stack env` prints for the instance (`export NAME=value` lines), by name.
    pub fn env(&self) -> std::collections::BTreeMap<String, String> {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../infra/local/stack");
        let output = Command::new(script)
            .arg("env")
            .env("QUENCH_STACK_INSTANCE", &self.instance)
            .envs(self.ports.iter().map(|(k, v)| (k.to_string(), v.to_string())))
            .envs(self.env.iter().cloned())
            .output()
            .unwrap();
        assert!(output.status.success(), "stack env: {}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter_map(|line| line.strip_prefix("export ")?.split_once('='))
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect()
    }

    /// `up`, `down` or `kill` one of the instance's services (`kafka2`: one node of a cluster).
    pub fn stack_on(&self, action: &str, service: &str) {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../infra/local/stack");
        let status = Command::new(script)
            .args([action, service])
            .env("QUENCH_STACK_INSTANCE", &self.instance)
            .envs(self.ports.iter().map(|(k, v)| (k.to_string(), v.to_string())))
            .envs(self.env.iter().cloned())
            .status()
            .unwrap();
        assert!(status.success(), "stack {action} {service} failed");
    }
}

impl PrivateServer {
    /// A schema registry of its own on `port` (management on `port + 1000`), started, and its
    /// Confluent-compatible URL.
    pub fn registry(name: &str, port: u16) -> (Self, String) {
        let server =
            Self::new(name, "registry", &[("REGISTRY_PORT", port), ("REGISTRY_MANAGEMENT_PORT", port + 1_000)]);
        server.stack("up");
        (server, format!("http://127.0.0.1:{port}/apis/ccompat/v7"))
    }

    /// The server's process id, to pause it (SIGSTOP) as a hung peer would be.
    pub fn pid(&self) -> u32 {
        let stack = std::env::var("QUENCH_STACK_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.stack"));
        let file = stack.join("instances").join(&self.instance).join("run").join(format!("{}.pid", self.service));
        std::fs::read_to_string(&file).unwrap().trim().parse().unwrap()
    }
}

impl Drop for PrivateServer {
    fn drop(&mut self) {
        self.stack("down");
    }
}

/// A child process killed when dropped, so that a failing test leaves no `quench` behind.
pub struct KillOnDrop(pub Child);

/// The processes of `workers`, for helpers that watch whether they still run.
pub fn children(workers: &mut [KillOnDrop]) -> Vec<&mut Child> {
    workers.iter_mut().map(|w| &mut w.0).collect()
}

impl std::ops::Deref for KillOnDrop {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for KillOnDrop {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        // Harmless when it already exited.
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs `quench <command>` with this run's settings until it exits by itself, which it must
/// within a minute (`why` says why it should); returns whether it succeeded and what it logged.
pub async fn run_to_exit(run: &Run, command: &str, why: &str) -> (bool, String) {
    let log = std::env::temp_dir().join(format!("quench-exit-{}-{}.log", std::process::id(), now_nanos()));
    let mut child = KillOnDrop(run.start_logged(command, &log));
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "`quench {command}` kept running: {why}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    (status.success(), std::fs::read_to_string(&log).unwrap_or_default())
}

/// A ClickHouse database name of a test's own. Nanoseconds, not milliseconds: the tests of one
/// binary start together, and two API tests once got the same name and raced to migrate it.
pub fn database(kind: &str) -> String {
    format!("quench_test_{kind}_{}_{}", std::process::id(), now_nanos())
}

fn now_nanos() -> u128 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos()
}

/// Inserts firing alerts into ClickHouse's `alerts`, as the sink would have: (alertname,
/// instance, fingerprint, time in ms) of `tenant`, each at Kafka offset = its place.
pub async fn insert_alerts(client: &clickhouse::Client, tenant: &str, alerts: &[(&str, String, String, i64)]) {
    let rows: Vec<String> = alerts
        .iter()
        .enumerate()
        .map(|(offset, (name, instance, fingerprint, at))| {
            format!(
                "('{tenant}', fromUnixTimestamp64Milli({at}), fromUnixTimestamp64Milli({at}), 'firing', 'test', \
                 '{name}', '{fingerprint}', {{'alertname': '{name}', 'instance': '{instance}'}}, 0, {offset})"
            )
        })
        .collect();
    client
        .query(&format!(
            "INSERT INTO alerts (tenant, received_at, starts_at, status, source, alertname, fingerprint, labels, \
             kafka_partition, kafka_offset) VALUES {}",
            rows.join(", ")
        ))
        .execute()
        .await
        .unwrap();
}

/// Waits until `log` holds `line`, or fails with the log after 60 s or when `child` exits.
pub fn wait_for_log(child: &mut std::process::Child, log: &std::path::Path, line: &str) {
    let started = Instant::now();
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if text.contains(line) {
            return;
        }
        assert!(child.try_wait().unwrap().is_none(), "exited before {line:?}:\n{text}");
        assert!(started.elapsed() < Duration::from_secs(60), "no {line:?} in 60 s:\n{text}");
        std::thread::sleep(Duration::from_millis(200));
    }
}
