//! What is classified: an incident as its alerts describe it, and what is decided about it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::text;

/// An incident as the classifier sees it: names, labels and the texts of its alerts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Subject {
    /// The incident id; answers are matched to requests by it.
    pub id: String,
    /// Distinct alert names in the incident, most frequent first.
    pub alertnames: Vec<String>,
    /// Labels common to the incident's alerts.
    pub labels: BTreeMap<String, String>,
    pub summary: String,
    pub description: String,
    /// Distinct alerts (fingerprints): how broad the incident is, for the priority's impact.
    pub alerts: usize,
}

/// What the classifier decided about one subject.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Classification {
    pub severity: String,
    pub priority: String,
    pub category: String,
    pub confidence: f32,
    pub summary: String,
    /// `provider/model`, or `local`.
    pub classified_by: String,
}

/// Labels that name what is alerting, in the order they are read; the rest (instance, pod...)
/// vary between alerts of one rule and say nothing of the kind of problem.
const DESCRIPTIVE_LABELS: &[&str] = &["job", "service", "app", "component", "container", "namespace", "team"];

impl Subject {
    /// A one-alert subject, as `quench eval classify` makes from each corpus line.
    pub fn from_alert(
        id: impl Into<String>,
        labels: &BTreeMap<String, String>,
        annotations: &BTreeMap<String, String>,
    ) -> Self {
        Self {
            id: id.into(),
            alertnames: labels.get("alertname").cloned().into_iter().collect(),
            labels: labels.clone(),
            summary: annotations.get("summary").or_else(|| annotations.get("message")).cloned().unwrap_or_default(),
            description: annotations.get("description").cloned().unwrap_or_default(),
            alerts: 1,
        }
    }

    /// The rule behind the subject, with what varies between its alerts masked: "Postgresql
    /// Down. job postgres-exporter. Postgresql down (instance _). Postgresql instance is down".
    /// Embeddings are cached by it, so a storm of one rule across a fleet costs one embedding.
    pub fn template(&self) -> String {
        let mut parts: Vec<String> = Vec::new();
        if !self.alertnames.is_empty() {
            parts.push(self.alertnames.iter().map(|n| text::split_camel(n)).collect::<Vec<_>>().join(", "));
        }
        if let Some(job) = self.labels.get("job") {
            parts.push(format!("job {}", text::template(job)));
        }
        for annotation in [&self.summary, &self.description] {
            let masked = text::template(annotation);
            if !masked.is_empty() {
                parts.push(masked);
            }
        }
        parts.join(". ")
    }

    /// The classification cache's key: the template plus the values of `labels` (by default
    /// `severity`, so that an incident whose severity changed is judged again, while a re-sent,
    /// repeated or fleet-wide one is not).
    pub fn signature(&self, labels: &[String]) -> String {
        let mut signature = self.template();
        for name in labels {
            signature.push('\u{1f}');
            signature.push_str(self.labels.get(name).map(String::as_str).unwrap_or(""));
        }
        signature
    }

    /// (text, weight) pairs for the catalog: names and jobs say most, descriptions least.
    pub fn fields(&self) -> Vec<(&str, f32)> {
        let mut fields: Vec<(&str, f32)> = self.alertnames.iter().map(|n| (n.as_str(), 3.0)).collect();
        for name in DESCRIPTIVE_LABELS {
            if let Some(value) = self.labels.get(*name) {
                fields.push((value.as_str(), if *name == "job" || *name == "service" { 3.0 } else { 1.5 }));
            }
        }
        fields.push((self.summary.as_str(), 2.0));
        fields.push((self.description.as_str(), 1.0));
        fields
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subject(instance: &str, value: &str) -> Subject {
        let labels = BTreeMap::from([
            ("alertname".to_string(), "PostgresqlTooManyConnections".to_string()),
            ("job".to_string(), "postgres-exporter".to_string()),
            ("instance".to_string(), instance.to_string()),
        ]);
        let annotations = BTreeMap::from([
            ("summary".to_string(), format!("Too many connections on {instance}")),
            ("description".to_string(), format!("{value} of connections are in use")),
        ]);
        Subject::from_alert("inc-1", &labels, &annotations)
    }

    #[test]
    fn alerts_of_one_rule_share_a_template_and_signature() {
        let a = subject("10.1.2.3:9187", "91%");
        let b = subject("10.1.2.4:9187", "97.5%");
        assert_eq!(a.template(), b.template());
        let labels = ["severity".to_string()];
        assert_eq!(a.signature(&labels), b.signature(&labels));
        assert_eq!(
            a.template(),
            "Postgresql Too Many Connections. job postgres-exporter. Too many connections on _. _ of connections are in use"
        );
    }

    #[test]
    fn chosen_labels_are_part_of_the_signature() {
        let labels = ["severity".to_string()];
        let a = subject("db-1:9187", "91%");
        let mut b = a.clone();
        b.labels.insert("severity".into(), "critical".into());
        assert_ne!(a.signature(&labels), b.signature(&labels));
        b.labels.insert("service".into(), "billing".into());
        let mut c = b.clone();
        c.labels.insert("service".into(), "search".into());
        assert_eq!(b.signature(&labels), c.signature(&labels), "other labels are not");
        assert_ne!(b.signature(&["service".to_string()]), c.signature(&["service".to_string()]));
    }
}
