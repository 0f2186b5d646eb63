//! What a classifier is asked and what it answers: the contract between the stream worker, which
//! describes each incident it emits as a [`Subject`], and any classifier (the local one, an LLM).
//! Not a Kafka record of its own: the answer's fields travel on `quench.Incident` and
//! `quench.RoutingEvent`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// `classified_by` of an answer the local classifier gave in place of an LLM that has not
/// answered yet (or is down): the worker classifies the incident again when the LLM does.
pub const FALLBACK: &str = "local-fallback";

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
    /// The incident's tenant: answers are cached, and LLM requests batched, per tenant, so one
    /// tenant's text can neither decide nor be shown in another's classification.
    #[serde(default)]
    pub tenant: String,
    /// The severity its alerts' own labels give (the highest firing), the floor under an LLM's
    /// answer (`classify.llm.severity_floor`); empty when unknown.
    #[serde(default)]
    pub severity: String,
}

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
            tenant: String::new(),
            severity: labels.get("severity").cloned().unwrap_or_default(),
        }
    }
}

/// What the classifier decided about one subject.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Classification {
    pub severity: String,
    pub priority: String,
    pub category: String,
    pub confidence: f32,
    pub summary: String,
    /// `provider/model`, `local`, or [`FALLBACK`].
    pub classified_by: String,
}

impl Classification {
    /// Whether this answer stands in for an LLM answer still to come.
    pub fn awaits_llm(&self) -> bool {
        self.classified_by == FALLBACK
    }
}
