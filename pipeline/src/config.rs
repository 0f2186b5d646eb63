//! Quench's configuration: one TOML file plus `QUENCH_<SECTION>__<KEY>` environment overrides.
//!
//! Every key has a default that works against `infra/local/stack`, so no file is needed to try
//! Quench. Unknown keys are errors (a misspelt key silently ignored is a production incident), and
//! every error names the key and where it came from: the file or the environment variable.

use std::{collections::BTreeMap, fmt, path::Path, time::Duration};

use quench_secret::Secret;
use serde::{Deserialize, Serialize};

/// Environment variables starting with this prefix and containing `__` override file keys.
pub const ENV_PREFIX: &str = "QUENCH_";

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub kafka: KafkaConfig,
    pub topics: TopicsConfig,
    pub registry: RegistryConfig,
    pub clickhouse: ClickHouseConfig,
    pub worker: WorkerConfig,
    pub sink: SinkConfig,
    pub http: HttpConfig,
    pub log: LogConfig,
    /// `quench ingest`: webhook endpoints, limits and sources.
    pub ingest: quench_ingest::IngestConfig,
    /// Incident classification: provider, batching, taxonomy, local classifier, cache, breaker.
    pub classify: quench_classify::ClassifyConfig,
    /// `quench notify`: channel targets, users, schedules, escalation policies, templates, API.
    pub notify: quench_notify::NotifyConfig,
    /// `quench predict`: what is learned from history, and the prediction horizon.
    pub predict: crate::predict::PredictConfig,
    /// Correlation across groups in the worker (and the ingest's keys when it is on).
    pub correlate: crate::correlate::CorrelateConfig,
    /// `quench api`: incidents over HTTP, tokens scoped to tenants.
    pub api: crate::api::ApiConfig,
    /// OpenTelemetry traces of alerts from ingest to delivery, over OTLP.
    pub trace: quench_trace::TraceConfig,
}

/// The stream worker (`quench run`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WorkerConfig {
    /// Consumer group shared by all workers.
    pub group_id: String,
    /// Stable per worker process across restarts: it names the transactional producer, so that a
    /// restarted worker fences its previous incarnation at once. Defaults to the host name.
    pub instance_id: Option<String>,
    /// How often the transaction holding outputs, changelog and offsets commits.
    pub commit_interval_ms: u64,
    /// How far behind a partition's newest event time its watermark trails.
    pub allowed_lateness_ms: u64,
    /// After this long without records, a partition's event time advances with the wall clock,
    /// so that an idle partition still flushes its windows.
    pub idle_timeout_ms: u64,
    /// Whether producers key `alerts` by group key (Quench's ingest connectors do). When false, a
    /// re-keying stage first writes every alert to `topics.rekey` keyed by group key.
    pub input_keyed_by_group: bool,
    /// How long the group waits for a silent worker before moving its partitions.
    pub session_timeout_ms: u64,
    /// Open groups one input partition may hold; alerts that would open more are dead-lettered
    /// (`quench_dlq_records_total{reason="group_limit"}`), so that a storm of distinct group keys
    /// cannot exhaust a worker's memory.
    pub max_open_groups: usize,
    /// Open groups one tenant may hold on an input partition (0: no limit of its own); alerts
    /// that would open more are dead-lettered the same way, so one tenant's storm of distinct
    /// groups cannot take the partition's `max_open_groups` from the others.
    pub max_open_groups_per_tenant: usize,
    /// Routes and windows (TOML); the built-in default groups by alertname with Alertmanager's timings.
    pub rules: Option<std::path::PathBuf>,
    /// Routing rules (YAML): team, targets and escalation policy of each routing event. Without
    /// it, routing events carry none.
    pub routing: Option<std::path::PathBuf>,
    /// Alert names that routes with a `transient_pause` always hold (besides those learned).
    pub transient_kinds: Vec<String>,
    /// How often the transient kinds are learned again from ClickHouse's alerts (0: never, only
    /// `transient_kinds`): kinds whose episodes mostly resolved within `transient_max_duration_s`.
    pub transient_learn_interval_s: u64,
    pub transient_max_duration_s: u64,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            group_id: "quench-worker".into(),
            instance_id: None,
            commit_interval_ms: 100,
            allowed_lateness_ms: 5_000,
            idle_timeout_ms: 2_000,
            input_keyed_by_group: true,
            session_timeout_ms: 15_000,
            max_open_groups: 200_000,
            max_open_groups_per_tenant: 0,
            rules: None,
            routing: None,
            transient_kinds: Vec::new(),
            transient_learn_interval_s: 600,
            transient_max_duration_s: 300,
        }
    }
}

/// The ClickHouse sink (`quench sink`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SinkConfig {
    pub group_id: String,
    /// A batch is written when it holds this many rows...
    pub batch_rows: usize,
    /// ...or when its oldest record is this old.
    pub flush_interval_ms: u64,
    /// Longest wait between two attempts while ClickHouse is unavailable.
    pub max_backoff_ms: u64,
}

impl Default for SinkConfig {
    fn default() -> Self {
        Self { group_id: "quench-sink".into(), batch_rows: 50_000, flush_interval_ms: 1_000, max_backoff_ms: 30_000 }
    }
}

/// The operations endpoint of long-running commands: `/metrics`, `/healthz`, `/readyz`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Listen address; empty turns the endpoint off.
    pub listen: String,
    /// Limits of the listeners that face the network: ingest's webhooks, the incident API and
    /// the acknowledgement API.
    pub limits: crate::serve::Limits,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self { listen: "127.0.0.1:9464".into(), limits: crate::serve::Limits::default() }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaConfig {
    /// Bootstrap servers, comma-separated `host:port`.
    pub brokers: String,
    /// Client id prefix reported to the brokers.
    pub client_id: String,
    /// How long start-up waits for the brokers before failing.
    pub connect_timeout_ms: u64,
    /// Extra librdkafka properties (for example `security.protocol`), applied to every client.
    #[serde(serialize_with = "quench_secret::serialize_properties", deserialize_with = "properties")]
    pub properties: BTreeMap<String, String>,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        Self {
            brokers: "127.0.0.1:9092".into(),
            client_id: "quench".into(),
            connect_timeout_ms: 5_000,
            properties: BTreeMap::new(),
        }
    }
}

impl KafkaConfig {
    pub fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms)
    }
}

/// Topic names and how `quench init` creates them.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TopicsConfig {
    pub alerts: String,
    pub incidents: String,
    pub routing: String,
    pub state: String,
    pub dlq: String,
    pub actions: String,
    /// Every alert of every incident, once (JSON), for the `incident_alerts` table.
    pub incident_alerts: String,
    /// Rows ClickHouse refused for good, with its answer (JSON), written by the sink.
    pub sink_dlq: String,
    /// Internal repartition topic of the re-keying stage.
    pub rekey: String,
    /// Every delivery attempt of the notifiers (JSON), for the `notifications` table.
    pub notifications: String,
    /// Deliveries that failed for good, with the reason.
    pub notifications_dlq: String,
    /// The notifiers' delivery log, keyed by idempotency key (compacted).
    pub deliveries: String,
    /// The notifiers' escalation timers and Slack threads (compacted).
    pub notify_state: String,
    /// Silences by id (JSON, compacted), written by the Alertmanager API, read by every worker.
    pub silences: String,
    /// Source alerts of inhibition rules (JSON, compacted), written and read by every worker.
    pub inhibit_sources: String,
    /// What `quench predict` expects, then the same predictions with their outcome (Avro).
    pub predictions: String,
    pub partitions: i32,
    pub replication_factor: i32,
}

impl Default for TopicsConfig {
    fn default() -> Self {
        Self {
            alerts: "alerts".into(),
            incidents: "incidents".into(),
            routing: "incident-routing".into(),
            state: "quench-state".into(),
            dlq: "alerts-dlq".into(),
            actions: "incident-actions".into(),
            incident_alerts: "incident-alerts".into(),
            sink_dlq: "clickhouse-dlq".into(),
            rekey: "quench-rekey".into(),
            notifications: "notifications".into(),
            notifications_dlq: "notifications-dlq".into(),
            deliveries: "quench-notify-deliveries".into(),
            notify_state: "quench-notify-state".into(),
            silences: "quench-silences".into(),
            inhibit_sources: "quench-inhibit-sources".into(),
            predictions: "predictions".into(),
            partitions: 4,
            replication_factor: 1,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RegistryConfig {
    /// Base URL of a Confluent-compatible schema registry API (a password in it is shown masked).
    #[serde(serialize_with = "quench_secret::serialize_url")]
    pub url: String,
    pub timeout_ms: u64,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        Self { url: "http://127.0.0.1:8081/apis/ccompat/v7".into(), timeout_ms: 5_000 }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClickHouseConfig {
    /// HTTP interface of ClickHouse (a password in it is shown masked).
    #[serde(serialize_with = "quench_secret::serialize_url")]
    pub url: String,
    pub database: String,
    pub user: String,
    pub password: Secret,
    /// Block compression of the HTTP protocol: `lz4` for real servers, `none` for the chdb
    /// adapter of the local stack, which does not implement ClickHouse's compressed framing.
    pub compression: Compression,
    /// Days each table keeps its rows, by table (`alerts = 30`), applied by `quench migrate` and
    /// `quench init`; 0 keeps them for ever. A table not named keeps its last setting (at first
    /// what its DDL says: alerts 30 days, the rest for ever).
    pub ttl_days: BTreeMap<String, u32>,
}

impl Default for ClickHouseConfig {
    fn default() -> Self {
        Self {
            url: "http://127.0.0.1:8123".into(),
            database: "quench".into(),
            user: "default".into(),
            password: Secret::default(),
            compression: Compression::Lz4,
            ttl_days: BTreeMap::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    None,
    Lz4,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `json` (one object per line, for log pipelines) or `text` (for people).
    pub format: LogFormat,
    /// A tracing filter such as `info` or `quench=debug,rdkafka=warn`.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self { format: LogFormat::Text, level: "info".into() }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Json,
    Text,
}

/// A configuration error that names the key and its origin.
#[derive(Debug)]
pub struct ConfigError(String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid configuration: {}", self.0)
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// Loads `file` (if any), applies `QUENCH_*__*` overrides from `env`, and validates the result.
    pub fn load(file: Option<&Path>, env: impl IntoIterator<Item = (String, String)>) -> Result<Self, ConfigError> {
        let tree = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| ConfigError(format!("cannot read config file {}: {e}", path.display())))?;
                text.parse::<toml::Table>().map_err(|e| ConfigError(toml_error(path, &text, &e)))?
            }
            None => toml::Table::new(),
        };
        Self::from_tree(tree, file, env)
    }

    /// This configuration with every topic and consumer group renamed under `prefix` (see
    /// [`isolated_names`]).
    /// Built without serialising this configuration, which would mask its secrets.
    pub fn isolated(&self, prefix: &str) -> Result<Self, ConfigError> {
        let renamed = Self::from_tree(toml::Table::new(), None, isolated_names(prefix))?;
        let mut config = self.clone();
        config.topics = TopicsConfig {
            partitions: self.topics.partitions,
            replication_factor: self.topics.replication_factor,
            ..renamed.topics
        };
        config.worker.group_id = renamed.worker.group_id;
        config.sink.group_id = renamed.sink.group_id;
        config.notify.group_id = renamed.notify.group_id;
        config.predict.group_id = renamed.predict.group_id;
        Ok(config)
    }

    fn from_tree(
        mut tree: toml::Table,
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let mut origins = BTreeMap::new();
        for (name, value) in env {
            let Some(path) = name.strip_prefix(ENV_PREFIX).filter(|rest| rest.contains("__")) else { continue };
            let keys: Vec<String> = path.split("__").map(str::to_lowercase).collect();
            set_path(&mut tree, &keys, parse_scalar(&value)).map_err(|e| ConfigError(format!("{name}: {e}")))?;
            origins.insert(keys.join("."), name);
        }
        let origin_of =
            |key: &str| match origins.iter().find(|(k, _)| k.starts_with(key) || key.starts_with(k.as_str())) {
                Some((_, var)) => format!(" (set by environment variable {var})"),
                None => file.map(|p| format!(" (in {})", p.display())).unwrap_or_default(),
            };
        let config: Config = serde_path_to_error::deserialize(toml::Value::Table(tree)).map_err(|e| {
            let key = e.path().to_string();
            let inner = e.into_inner().to_string();
            // At the top level serde_path_to_error's path is `.`; the unknown field's name is in the message.
            let key = match unknown_field(&inner) {
                Some(field) if key == "." => field.to_string(),
                _ => key,
            };
            ConfigError(format!("key `{key}`: {}{}", first_line(&inner), origin_of(&key)))
        })?;
        config
            .validate()
            .map_err(|(key, message)| ConfigError(format!("key `{key}`: {message}{}", origin_of(&key))))?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), (String, String)> {
        self.validate_connections().map_err(|(key, message)| (key.to_string(), message))?;
        self.ingest.validate()?;
        self.http.limits.validate()?;
        self.validate_ttls()?;
        self.notify.validate()?;
        self.predict.validate()?;
        self.correlate.validate()?;
        self.api.validate()?;
        self.trace.validate()?;
        self.classify.validate()
    }

    fn validate_ttls(&self) -> Result<(), (String, String)> {
        match self.clickhouse.ttl_days.keys().find(|table| crate::clickhouse::ttl_column(table).is_none()) {
            Some(table) => Err((
                format!("clickhouse.ttl_days.{table}"),
                format!("not a table with a time to expire by: {}", crate::clickhouse::ttl_tables()),
            )),
            None => Ok(()),
        }
    }

    fn validate_connections(&self) -> Result<(), (&'static str, String)> {
        if self.kafka.brokers.trim().is_empty() {
            return Err(("kafka.brokers", "must list at least one host:port".into()));
        }
        for broker in self.kafka.brokers.split(',') {
            let ok = broker
                .trim()
                .rsplit_once(':')
                .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
            if !ok {
                return Err(("kafka.brokers", format!("`{broker}` is not host:port")));
            }
        }
        for (key, url) in [("registry.url", &self.registry.url), ("clickhouse.url", &self.clickhouse.url)] {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                let url = quench_secret::mask_url_password(url);
                return Err((key, format!("`{url}` is not an http:// or https:// URL")));
            }
        }
        if self.topics.partitions < 1 {
            return Err(("topics.partitions", "must be at least 1".into()));
        }
        if self.topics.replication_factor < 1 {
            return Err(("topics.replication_factor", "must be at least 1".into()));
        }
        if self.clickhouse.database.is_empty()
            || !self.clickhouse.database.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            return Err(("clickhouse.database", "must be a plain identifier (letters, digits, _)".into()));
        }
        Ok(())
    }
}

/// `QUENCH_*` settings that give every topic and consumer group a name of its own under `prefix`,
/// so that test runs and benchmarks can share a cluster without reading each other's records.
pub fn isolated_names(prefix: &str) -> Vec<(String, String)> {
    [
        ("TOPICS__ALERTS", "alerts"),
        ("TOPICS__INCIDENTS", "incidents"),
        ("TOPICS__ROUTING", "routing"),
        ("TOPICS__STATE", "state"),
        ("TOPICS__DLQ", "dlq"),
        ("TOPICS__ACTIONS", "actions"),
        ("TOPICS__INCIDENT_ALERTS", "incident-alerts"),
        ("TOPICS__SINK_DLQ", "clickhouse-dlq"),
        ("TOPICS__REKEY", "rekey"),
        ("TOPICS__NOTIFICATIONS", "notifications"),
        ("TOPICS__NOTIFICATIONS_DLQ", "notifications-dlq"),
        ("TOPICS__DELIVERIES", "deliveries"),
        ("TOPICS__NOTIFY_STATE", "notify-state"),
        ("TOPICS__SILENCES", "silences"),
        ("TOPICS__INHIBIT_SOURCES", "inhibit-sources"),
        ("TOPICS__PREDICTIONS", "predictions"),
        ("PREDICT__GROUP_ID", "predict"),
        ("WORKER__GROUP_ID", "worker"),
        ("SINK__GROUP_ID", "sink"),
        ("NOTIFY__GROUP_ID", "notify"),
    ]
    .into_iter()
    .map(|(key, name)| (format!("{ENV_PREFIX}{key}"), format!("{prefix}-{name}")))
    .collect()
}

/// This process's `QUENCH_*` variables with every topic and consumer group renamed under `prefix`
/// and `overrides` applied last: the environment of the `quench` processes a test run or a
/// benchmark starts on a shared cluster.
pub fn isolated_env(
    prefix: &str,
    overrides: impl IntoIterator<Item = (&'static str, String)>,
) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = std::env::vars().filter(|(k, _)| k.starts_with(ENV_PREFIX)).collect();
    let overrides = overrides.into_iter().map(|(k, v)| (k.to_string(), v));
    for (key, value) in isolated_names(prefix).into_iter().chain(overrides) {
        env.retain(|(k, _)| *k != key);
        env.push((key, value));
    }
    env
}

/// `quench <command>` with exactly `env`, plus PATH and where the setup scripts put the embedding
/// model: a `quench` process that a test run or a benchmark starts, configured by nothing else.
pub fn quench_command(quench: &Path, command: &str, env: &[(String, String)]) -> std::process::Command {
    let mut child = std::process::Command::new(quench);
    child
        .args(command.split_whitespace())
        .env_clear()
        .envs(env.iter().cloned())
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(
            ["HOME", "XDG_CACHE_HOME", "QUENCH_MODEL_HOME"]
                .into_iter()
                .filter_map(|k| Some((k, std::env::var(k).ok()?))),
        );
    child
}

/// librdkafka takes every property as a string; numbers and booleans, as TOML and environment
/// variables (`QUENCH_KAFKA__PROPERTIES__linger.ms=5`) give them, are taken as written.
fn properties<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<BTreeMap<String, String>, D::Error> {
    BTreeMap::<String, toml::Value>::deserialize(deserializer)?
        .into_iter()
        .map(|(key, value)| match value {
            toml::Value::String(s) => Ok((key, s)),
            toml::Value::Integer(_) | toml::Value::Float(_) | toml::Value::Boolean(_) => Ok((key, value.to_string())),
            other => Err(serde::de::Error::custom(format!(
                "property `{key}` must be a string, number or boolean, not {}",
                other.type_str()
            ))),
        })
        .collect()
}

/// Environment values are TOML scalars when they parse as one (`4`, `true`), strings otherwise.
/// An environment value as TOML when it reads back as written (`8`, `true`, `["a"]`), else as
/// a string: `0x1F` or `1_000` set as a password stay what was typed.
fn parse_scalar(raw: &str) -> toml::Value {
    format!("v = {raw}")
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
        // Dates stay strings (no setting is a TOML date; schedules take "2026-01-01" as text).
        .filter(|v| !v.is_table() && !v.is_datetime())
        .filter(|v| v.is_array() || v.to_string() == raw.trim())
        .unwrap_or_else(|| toml::Value::String(raw.to_string()))
}

/// A TOML syntax error by its line and column and message, without the quoted source line (which
/// may be a `password = ...` line).
fn toml_error(path: &Path, text: &str, error: &toml::de::Error) -> String {
    let at = error.span().map(|span| {
        let before = text.get(..span.start).unwrap_or(text);
        let line = before.matches('\n').count() + 1;
        let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
        format!(" line {line}, column {column}")
    });
    format!("{}{}: {}", path.display(), at.unwrap_or_default(), error.message())
}

fn set_path(tree: &mut toml::Table, keys: &[String], value: toml::Value) -> Result<(), String> {
    let (last, parents) = keys.split_last().ok_or("empty key")?;
    let mut table = tree;
    for key in parents {
        table = table
            .entry(key.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()))
            .as_table_mut()
            .ok_or_else(|| format!("`{key}` is not a section"))?;
    }
    // A string override of a key that the file holds as a list or number keeps serde's type error.
    table.insert(last.clone(), value);
    Ok(())
}

fn unknown_field(message: &str) -> Option<&str> {
    let rest = message.strip_prefix("unknown field `")?;
    rest.split('`').next()
}

fn first_line(message: &str) -> &str {
    message.lines().next().unwrap_or(message)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn defaults_need_no_file() {
        let config = Config::load(None, env(&[])).unwrap();
        assert_eq!(config.kafka.brokers, "127.0.0.1:9092");
        assert_eq!(config.clickhouse.compression, Compression::Lz4);
    }

    #[test]
    fn environment_overrides_file_and_parses_scalars() {
        let dir = std::env::temp_dir().join(format!("quench-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("quench.toml");
        std::fs::write(&file, "[kafka]\nbrokers = \"k1:9092\"\n[topics]\npartitions = 2\n").unwrap();
        let config = Config::load(
            Some(&file),
            env(&[
                ("QUENCH_TOPICS__PARTITIONS", "12"),
                ("QUENCH_CLICKHOUSE__COMPRESSION", "none"),
                ("QUENCH_CONFIG", "x"),
            ]),
        )
        .unwrap();
        assert_eq!(config.kafka.brokers, "k1:9092");
        assert_eq!(config.topics.partitions, 12);
        assert_eq!(config.clickhouse.compression, Compression::None);
    }

    #[test]
    fn unknown_keys_are_named_with_their_origin() {
        let err = Config::load(None, env(&[("QUENCH_KAFKA__BROKERZ", "x:1")])).unwrap_err().to_string();
        assert!(err.contains("kafka.brokerz"), "{err}");
        assert!(err.contains("QUENCH_KAFKA__BROKERZ"), "{err}");
        let err = Config::load(None, env(&[("QUENCH_NOPE__X", "1")])).unwrap_err().to_string();
        assert!(err.contains("`nope`"), "{err}");
    }

    #[test]
    fn isolated_names_are_valid_overrides_under_the_prefix() {
        let config = Config::load(None, isolated_names("t1")).unwrap();
        assert_eq!(config.topics.alerts, "t1-alerts");
        assert_eq!(config.topics.rekey, "t1-rekey");
        assert_eq!(config.sink.group_id, "t1-sink");
        let mut base = Config::load(None, env(&[("QUENCH_TOPICS__PARTITIONS", "7")])).unwrap();
        base.worker.rules = Some("rules.toml".into());
        let isolated = base.isolated("t2").unwrap();
        assert_eq!(
            (isolated.topics.incidents.as_str(), isolated.worker.group_id.as_str()),
            ("t2-incidents", "t2-worker")
        );
        assert_eq!(isolated.topics.partitions, 7, "everything else is kept");
        assert_eq!(isolated.worker.rules, base.worker.rules);
    }

    #[test]
    fn printed_configuration_hides_secrets() {
        let config = Config::load(
            None,
            env(&[
                ("QUENCH_INGEST__SOURCES__ALERTMANAGER__TOKEN", "secret-token-0123456789"),
                ("QUENCH_CLICKHOUSE__PASSWORD", "hunter2"),
            ]),
        )
        .unwrap();
        let printed = toml::to_string_pretty(&config).unwrap();
        assert!(!printed.contains("secret-token") && !printed.contains("hunter2"), "{printed}");
        assert!(printed.contains("[ingest.sources.alertmanager]"));
        assert!(!format!("{config:?}").contains("hunter2"), "nor in logs");
        assert_eq!(config.clickhouse.password.expose(), "hunter2", "it is still used");
    }

    #[test]
    fn printed_configuration_hides_kafka_credentials_and_passwords_in_urls() {
        let config = Config::load(
            None,
            env(&[
                ("QUENCH_KAFKA__PROPERTIES__sasl.password", "kafka-pass"),
                ("QUENCH_REGISTRY__URL", "https://reg:reg-pass@registry:8081/apis/ccompat/v7"),
                ("QUENCH_CLICKHOUSE__URL", "https://ch:ch-pass@clickhouse:8443"),
            ]),
        )
        .unwrap();
        let printed = toml::to_string_pretty(&config).unwrap();
        for secret in ["kafka-pass", "reg-pass", "ch-pass"] {
            assert!(!printed.contains(secret), "{secret} in {printed}");
        }
        assert!(printed.contains("https://ch:<redacted>@clickhouse:8443"), "{printed}");
        assert_eq!(config.kafka.properties["sasl.password"], "kafka-pass", "librdkafka still gets it");
    }

    #[test]
    fn secrets_from_the_environment_are_read_as_written_and_never_echoed() {
        let config = Config::load(
            None,
            env(&[("QUENCH_CLICKHOUSE__PASSWORD", "12345678"), ("QUENCH_NOTIFY__CALLBACKS__MAX_AGE_S", "300")]),
        )
        .unwrap();
        assert_eq!(config.clickhouse.password.expose(), "12345678", "an all-digit password");
        let config = Config::load(None, env(&[("QUENCH_CLICKHOUSE__PASSWORD", "0x1F")])).unwrap();
        assert_eq!(config.clickhouse.password.expose(), "0x1F", "not read as the number 31");
        let bad = Config::load(None, env(&[("QUENCH_CLICKHOUSE__URL", "ftp://ch:ch-pass-9@clickhouse")])).unwrap_err();
        assert!(!bad.to_string().contains("ch-pass-9"), "{bad}");
    }

    #[test]
    fn a_syntax_error_in_the_file_names_the_line_but_does_not_quote_it() {
        let dir = std::env::temp_dir().join(format!("quench-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("bad.toml");
        std::fs::write(&file, "[clickhouse]\npassword = \"hunter2-pass\" oops\n").unwrap();
        let error = Config::load(Some(&file), env(&[])).unwrap_err().to_string();
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(error.contains("line 2"), "{error}");
        assert!(!error.contains("hunter2"), "{error}");
    }

    #[test]
    fn kafka_properties_take_numbers_and_booleans_as_written() {
        let config = Config::load(
            None,
            env(&[
                ("QUENCH_KAFKA__PROPERTIES__linger.ms", "5"),
                ("QUENCH_KAFKA__PROPERTIES__enable.idempotence", "true"),
            ]),
        )
        .unwrap();
        assert_eq!(config.kafka.properties["linger.ms"], "5");
        assert_eq!(config.kafka.properties["enable.idempotence"], "true");
    }

    #[test]
    fn ingest_sources_are_validated_with_their_key() {
        let e = Config::load(None, env(&[("QUENCH_INGEST__SOURCES__TEAM__TOKEN", "0123456789abcdef")])).unwrap_err();
        assert!(e.to_string().contains("key `ingest.sources.team.format`"), "{e}");
    }

    #[test]
    fn bad_values_name_the_key() {
        let err = Config::load(None, env(&[("QUENCH_CLICKHOUSE__COMPRESSION", "gzip")])).unwrap_err().to_string();
        assert!(err.contains("clickhouse.compression") && err.contains("gzip"), "{err}");
        let err = Config::load(None, env(&[("QUENCH_KAFKA__BROKERS", "nohost")])).unwrap_err().to_string();
        assert!(err.contains("kafka.brokers") && err.contains("nohost"), "{err}");
        let err = Config::load(None, env(&[("QUENCH_TOPICS__PARTITIONS", "0")])).unwrap_err().to_string();
        assert!(err.contains("topics.partitions"), "{err}");
        let err = Config::load(None, env(&[("QUENCH_CLICKHOUSE__TTL_DAYS__ALERTZ", "7")])).unwrap_err().to_string();
        assert!(err.contains("clickhouse.ttl_days.alertz") && err.contains("notifications"), "{err}");
    }

    #[test]
    fn classification_settings_are_validated_with_their_key() {
        let err = Config::load(None, env(&[("QUENCH_CLASSIFY__PROVIDER", "anthropic")])).unwrap_err().to_string();
        assert!(err.contains("classify.llm.model") && err.contains("anthropic"), "{err}");
        let err = Config::load(None, env(&[("QUENCH_CLASSIFY__PROVIDER", "gemini")])).unwrap_err().to_string();
        assert!(err.contains("classify.provider") && err.contains("gemini"), "{err}");
        let err = Config::load(None, env(&[("QUENCH_CLASSIFY__REDACT__PATTERNS", "[\"(\"]")])).unwrap_err().to_string();
        assert!(err.contains("classify.redact.patterns[0]"), "{err}");
        let err = Config::load(None, env(&[("QUENCH_CLASSIFY__TAXONOMY__SEVERITIES", "[\"urgent\"]")]))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("key `classify.taxonomy.severity_aliases."),
            "aliases must name levels of the scale: {err}"
        );
        let config = Config::load(
            None,
            env(&[
                ("QUENCH_CLASSIFY__PROVIDER", "openai"),
                ("QUENCH_CLASSIFY__LLM__MODEL", "m"),
                ("QUENCH_CLASSIFY__LLM__API_KEY", "sk-abc"),
            ]),
        )
        .unwrap();
        assert!(!toml::to_string(&config).unwrap().contains("sk-abc"), "quench config masks the key");
    }
}
