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
    /// The alerting rule's PromQL expression when the alerts carry it (Prometheus puts it in
    /// `generatorURL` as `g0.expr`); empty when unknown.
    #[serde(default)]
    pub expr: String,
    /// How long the rule's condition held before it fired (the rule's `for:`, "5m"); empty when
    /// unknown, as it is from Alertmanager, which does not send it.
    #[serde(default)]
    pub pending_for: String,
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
            expr: String::new(),
            pending_for: String::new(),
        }
    }
}

/// The PromQL expression in a Prometheus `generatorURL` (`…/graph?g0.expr=…&g0.tab=1`),
/// percent-decoded; `None` when the URL has none or it does not decode to UTF-8.
pub fn expr_of_generator_url(url: &str) -> Option<String> {
    let query = url.split_once('?')?.1;
    let value = query.split('&').find_map(|pair| pair.strip_prefix("g0.expr="))?;
    let bytes = value.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .filter(|h| h.iter().all(u8::is_ascii_hexdigit))
            .and_then(|h| u8::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                decoded.push(byte);
                i += 3;
                continue;
            }
            (b'+', _) => decoded.push(b' '),
            (byte, _) => decoded.push(byte),
        }
        i += 1;
    }
    String::from_utf8(decoded).ok()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_expression_is_read_from_a_prometheus_generator_url() {
        let url = "http://prometheus:9090/graph?g0.expr=up%7Bjob%3D%22redis%22%7D+%3D%3D+0&g0.tab=1";
        assert_eq!(expr_of_generator_url(url).as_deref(), Some(r#"up{job="redis"} == 0"#));
        assert_eq!(expr_of_generator_url("http://p/graph?g0.tab=1"), None);
        assert_eq!(expr_of_generator_url("http://p/graph"), None);
        assert_eq!(
            expr_of_generator_url("http://p/graph?g0.expr=50%25%zz%+5").as_deref(),
            Some("50%%zz% 5"),
            "a + is a space"
        );
    }
}
