//! The labelled alert corpus (`../shared/data/alert-corpus/*.jsonl`, from the awesome-prometheus-
//! alerts collection, CC BY 4.0): one alert rule per line with its expected severity and category.
//! It seeds the demo and the load generator with realistic alert names and texts.

use std::{collections::BTreeMap, path::Path};

use anyhow::Context;
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
pub struct CorpusAlert {
    pub id: String,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    #[serde(default)]
    pub service: String,
    pub expected: Expected,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Expected {
    pub severity: String,
    pub category: String,
}

/// Reads a JSON-lines corpus, naming the file and line of any malformed entry.
pub fn load(path: &Path) -> anyhow::Result<Vec<CorpusAlert>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading corpus {}", path.display()))?;
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(i, line)| {
            serde_json::from_str(line).with_context(|| format!("{}:{}: not a corpus alert", path.display(), i + 1))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_dev_corpus_loads_with_labels_and_expectations() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/alert-corpus/dev.jsonl");
        let corpus = load(&path).unwrap();
        assert_eq!(corpus.len(), 784);
        assert!(corpus.iter().all(|a| a.labels.contains_key("alertname") && !a.expected.category.is_empty()));
    }
}
