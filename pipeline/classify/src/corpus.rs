//! The labelled alert corpus (`pipeline/classify/data/examples.jsonl`, from the awesome-prometheus-
//! alerts collection, CC BY 4.0; see `data/README.md`): one alert rule per line with its expected
//! severity and category. It seeds the demo and the load generator with realistic alert names and
//! texts, is the local classifier's default set of labelled examples, and is what
//! `quench eval classify` reads. It is compiled into the binary, so that every command finds it
//! wherever it runs from; `--corpus FILE` (or `--input`) reads another file of the same format.

use std::{collections::BTreeMap, path::Path};

use anyhow::Context;
use serde::Deserialize;

use crate::Subject;

#[derive(Debug, Clone, Default, Deserialize)]
pub struct CorpusAlert {
    pub id: String,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    #[serde(default)]
    pub service: String,
    /// The rule's PromQL expression and `for:` duration, when the file has them.
    #[serde(default)]
    pub expr: String,
    #[serde(default, rename = "for")]
    pub pending_for: String,
    /// Absent in files that are only to be classified.
    #[serde(default)]
    pub expected: Option<Expected>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Expected {
    pub severity: String,
    pub category: String,
}

impl CorpusAlert {
    /// The alert as a one-alert incident, as the worker would describe it.
    pub fn subject(&self) -> Subject {
        Subject {
            expr: self.expr.clone(),
            pending_for: self.pending_for.clone(),
            ..Subject::from_alert(&self.id, &self.labels, &self.annotations)
        }
    }
}

/// Services dealt into folds round-robin in name order, so that every fold mixes families: how
/// `quench eval` holds services out, and how the classifier gets out-of-fold evidence.
pub struct Folds {
    services: Vec<String>,
    count: usize,
}

impl Folds {
    pub fn deal<'a>(services: impl IntoIterator<Item = &'a str>, count: usize) -> Self {
        let mut services: Vec<String> = services.into_iter().map(str::to_string).collect();
        services.sort_unstable();
        services.dedup();
        Self { services, count: count.max(1) }
    }

    /// The fold of `service` (the first for a service not dealt).
    pub fn of(&self, service: &str) -> usize {
        self.services.binary_search_by(|s| s.as_str().cmp(service)).unwrap_or(0) % self.count
    }
}

/// The corpus shipped with Quench, as text.
pub const BUILT_IN: &str = include_str!("../data/examples.jsonl");

/// Reads `path`, or the built-in corpus without one; a corpus to generate alerts from must not
/// be empty.
pub fn load_or_built_in(path: Option<&Path>) -> anyhow::Result<Vec<CorpusAlert>> {
    let alerts = match path {
        Some(path) => load(path)?,
        None => parse(BUILT_IN, "the built-in corpus")?,
    };
    anyhow::ensure!(!alerts.is_empty(), "the corpus {} holds no alerts", name(path));
    Ok(alerts)
}

/// How messages name the corpus at `path` (the built-in one without a path).
pub fn name(path: Option<&Path>) -> String {
    path.map_or_else(|| "built into quench".to_string(), |p| p.display().to_string())
}

/// Reads a JSON-lines corpus, naming the file and line of any malformed entry.
pub fn load(path: &Path) -> anyhow::Result<Vec<CorpusAlert>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading corpus {}", path.display()))?;
    parse(&text, &path.display().to_string())
}

/// Parses JSON lines; `origin` names the text in errors.
pub fn parse(text: &str, origin: &str) -> anyhow::Result<Vec<CorpusAlert>> {
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(i, line)| serde_json::from_str(line).with_context(|| format!("{origin}:{}: not a corpus alert", i + 1)))
        .collect()
}

/// A few corpus lines in the shared format, for tests that must not depend on files outside the
/// repository.
#[doc(hidden)]
pub const SAMPLE: &str = r#"{"id": "t-1", "labels": {"alertname": "PostgresqlDown", "job": "postgres-exporter"}, "annotations": {"summary": "Postgresql down (instance {{ $labels.instance }})"}, "service": "PostgreSQL", "expected": {"severity": "critical", "category": "database"}}
{"id": "t-2", "labels": {"alertname": "PostgresqlTooManyConnections", "job": "postgres-exporter"}, "annotations": {"summary": "Too many connections"}, "service": "PostgreSQL", "expected": {"severity": "warning", "category": "database"}}
{"id": "t-3", "labels": {"alertname": "KafkaConsumerLag", "job": "kafka-exporter"}, "annotations": {"summary": "Kafka consumer lag"}, "service": "Kafka", "expected": {"severity": "warning", "category": "messaging"}}
{"id": "t-4", "labels": {"alertname": "KafkaTopicsReplicas", "job": "kafka-exporter"}, "annotations": {"summary": "Kafka topic replicas"}, "service": "Kafka", "expected": {"severity": "critical", "category": "messaging"}}
{"id": "t-5", "labels": {"alertname": "HostHighCpuLoad", "job": "node-exporter"}, "annotations": {"summary": "Host high CPU load"}, "service": "Host and hardware", "expected": {"severity": "warning", "category": "infrastructure"}}
"#;

#[cfg(test)]
mod tests {
    use super::*;

    fn write(name: &str, text: &str) -> std::path::PathBuf {
        let path = std::env::temp_dir().join(format!("quench-corpus-{}-{name}.jsonl", std::process::id()));
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn corpus_lines_load_with_labels_and_expectations() {
        let corpus = load(&write("ok", &format!("{SAMPLE}\n"))).unwrap();
        assert_eq!(corpus.len(), 5, "blank lines are skipped");
        assert_eq!(corpus[0].labels["alertname"], "PostgresqlDown");
        assert_eq!(corpus[2].expected.as_ref().unwrap().category, "messaging");
    }

    #[test]
    fn a_malformed_line_is_named_by_file_and_number() {
        let path = write("bad", &format!("{SAMPLE}{{\"id\": 1}}\n"));
        let error = format!("{:#}", load(&path).unwrap_err());
        assert!(error.contains(&format!("{}:6", path.display())), "{error}");
    }
}
