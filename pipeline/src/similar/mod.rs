//! Similar past incidents: each incident's text embedded with the local classifier's model and
//! kept in ClickHouse (`similar_texts`, one vector per distinct text under an HNSW index, and
//! `similar_incidents`, each incident's text; [`indexer`] fills them), and for an
//! incident the resolved incidents nearest to it, with how they ended (how long, who resolved,
//! the last comment). Looked up by `quench api` (an incident's detail) and `quench notify` (the
//! opening notification's line, [`note`]), outside any worker's transaction.
//!
//! Ranking: cosine similarity of the texts, plus `service_boost` when the service is the same
//! (an alert of one rule means more on the same service); ties go to the most recent, so a
//! recurring incident finds its last occurrence first.

pub mod indexer;
pub mod note;

use std::collections::BTreeMap;

use quench_classify::subject::{template, Subject};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// `[api.similar]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SimilarConfig {
    /// Index incidents, attach similar ones to an incident's detail, and add the best one's line
    /// to opening notifications.
    pub enabled: bool,
    /// Similar incidents shown.
    pub k: usize,
    /// Nearest texts read from the index; the 2k nearest of them are looked up.
    pub candidates: usize,
    /// Added to the similarity of an incident of the same service.
    pub service_boost: f32,
    /// Below this similarity (boost included) an incident is not similar.
    pub min_similarity: f32,
    /// How often the indexer looks for incidents not embedded yet.
    pub index_interval_ms: u64,
}

impl Default for SimilarConfig {
    fn default() -> Self {
        Self { enabled: true, k: 3, candidates: 20, service_boost: 0.05, min_similarity: 0.6, index_interval_ms: 2_000 }
    }
}

impl SimilarConfig {
    pub fn validate(&self) -> Result<(), (String, String)> {
        if self.k == 0 || self.candidates < self.k {
            return Err(("api.similar.candidates".into(), "must be at least api.similar.k (and k at least 1)".into()));
        }
        if !(0.0..=1.0).contains(&self.min_similarity) {
            return Err(("api.similar.min_similarity".into(), "must be between 0 and 1".into()));
        }
        if self.index_interval_ms == 0 {
            return Err(("api.similar.index_interval_ms".into(), "must be positive".into()));
        }
        Ok(())
    }
}

/// The text an incident is embedded by: its rule as the classifier reads it, what varies masked.
pub fn text(title: &str, summary: &str, labels: &BTreeMap<String, String>) -> String {
    let alertname = labels.get("alertname").cloned().unwrap_or_else(|| title.to_string());
    let subject = Subject {
        id: String::new(),
        alertnames: vec![alertname],
        labels: labels.clone(),
        summary: summary.to_string(),
        description: String::new(),
        alerts: 1,
        tenant: String::new(),
        severity: String::new(),
        expr: String::new(),
        pending_for: String::new(),
    };
    template(&subject)
}

/// FNV-1a, 64 bits: the same text has the same hash on every machine and release.
pub fn text_hash(text: &str) -> u64 {
    quench_schemas::fingerprint::fnv1a(text.bytes())
}

/// A text the index found near, and how near.
#[derive(Debug, clickhouse::Row, Deserialize)]
struct Near {
    text_hash: u64,
    distance: f32,
}

/// An occurrence of one of those texts.
#[derive(Debug, clickhouse::Row, Deserialize)]
struct Occurrence {
    incident_id: String,
    service: String,
    first_seen: i64,
    text_hash: u64,
}

/// A similar incident before ranking.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub incident_id: String,
    pub service: String,
    pub first_seen: i64,
    pub distance: f32,
}

/// How a resolved candidate ended.
#[derive(Debug, Clone, clickhouse::Row, Deserialize)]
struct Outcome {
    incident_id: String,
    title: String,
    resolved_at: i64,
    resolved_by: String,
    last_comment: String,
}

/// Reads the index and the outcomes of the nearest incidents.
pub struct Similar {
    clickhouse: clickhouse::Client,
    config: SimilarConfig,
}

/// An indexed incident: its text and what else the lookup needs.
#[derive(Debug, clickhouse::Row, Deserialize)]
struct Indexed {
    text_hash: u64,
    service: String,
    first_seen: i64,
}

impl Similar {
    pub fn new(clickhouse: clickhouse::Client, config: &SimilarConfig) -> Self {
        Self { clickhouse, config: config.clone() }
    }

    /// The incidents similar to `incident_id` of `tenant`, as JSON objects; empty while it is not
    /// indexed yet. It is looked up by the text it was indexed with, whatever changed since.
    pub async fn of_incident(&self, tenant: &str, incident_id: &str) -> Result<Vec<Value>, clickhouse::error::Error> {
        let indexed: Option<Indexed> = self
            .clickhouse
            .query(
                "SELECT text_hash, service, first_seen FROM similar_incidents \
                 WHERE tenant = ? AND incident_id = ? LIMIT 1",
            )
            .bind(tenant)
            .bind(incident_id)
            .fetch_optional()
            .await?;
        let Some(incident) = indexed else { return Ok(Vec::new()) };
        let vector: Option<Vec<f32>> = self
            .clickhouse
            .query("SELECT embedding FROM similar_texts WHERE tenant = ? AND text_hash = ? LIMIT 1")
            .bind(tenant)
            .bind(incident.text_hash)
            .fetch_optional()
            .await?;
        let Some(vector) = vector else { return Ok(Vec::new()) };
        self.lookup(tenant, &vector, &incident.service, incident.first_seen).await
    }

    /// The resolved incidents of `tenant` before `before_ms` most like `vector` (of an incident
    /// of `service`), best first, with how they ended.
    pub async fn lookup(
        &self,
        tenant: &str,
        vector: &[f32],
        service: &str,
        before_ms: i64,
    ) -> Result<Vec<Value>, clickhouse::error::Error> {
        let nearest = self.nearest(tenant, vector, service, before_ms).await?;
        self.outcomes(tenant, nearest, service).await
    }

    /// The candidates nearest `vector` among `tenant`'s incidents that started before
    /// `before_ms`, ranked (similarity, same-service boost, then the most recent).
    pub async fn nearest(
        &self,
        tenant: &str,
        vector: &[f32],
        service: &str,
        before_ms: i64,
    ) -> Result<Vec<(Candidate, f32)>, clickhouse::error::Error> {
        // The texts nearest, from the index.
        let near: Vec<Near> = self
            .clickhouse
            .query(
                "SELECT text_hash, toFloat32(cosineDistance(embedding, ?)) AS distance FROM similar_texts \
                 WHERE tenant = ? ORDER BY distance LIMIT ?",
            )
            // The tenant first, then the nearest of its texts: after the index, a small tenant's
            // texts could all fall outside the first candidates of every tenant's. A tenant's
            // distinct texts are few, so reading them all is cheap.
            .with_setting("vector_search_filter_strategy", "prefilter")
            .bind(vector)
            .bind(tenant)
            .bind(self.config.candidates as u64)
            .fetch_all()
            .await?;
        let mut distances: BTreeMap<u64, f32> = BTreeMap::new();
        for n in near {
            let d = distances.entry(n.text_hash).or_insert(n.distance);
            *d = d.min(n.distance);
        }
        if distances.is_empty() {
            return Ok(Vec::new());
        }
        // The nearest few texts are enough to fill k places (a text's occurrences on other
        // services, and its older ones, are its back-ups); reading the occurrences of all the
        // candidates would read most of a large table.
        let mut nearest: Vec<(u64, f32)> = distances.iter().map(|(h, d)| (*h, *d)).collect();
        nearest.sort_by(|a, b| a.1.total_cmp(&b.1));
        let hashes: Vec<u64> = nearest.iter().take(2 * self.config.k).map(|(h, _)| *h).collect();
        // Their latest occurrences on each service: a range of the primary key per text.
        let occurrences: Vec<Occurrence> = self
            .clickhouse
            .query(
                "SELECT incident_id, service, first_seen, text_hash FROM similar_incidents \
                 WHERE tenant = ? AND text_hash IN ? AND first_seen < fromUnixTimestamp64Milli(?) \
                 ORDER BY first_seen DESC LIMIT ? BY text_hash, service",
            )
            .bind(tenant)
            .bind(&hashes)
            .bind(before_ms)
            // A few more than shown: the latest may still be open.
            .bind(self.config.k as u64 + 2)
            .fetch_all()
            .await?;
        let candidates = occurrences
            .into_iter()
            .map(|o| Candidate {
                distance: distances[&o.text_hash],
                incident_id: o.incident_id,
                service: o.service,
                first_seen: o.first_seen,
            })
            .collect();
        Ok(rank(candidates, service, &self.config))
    }

    /// The resolved ones among `ranked`, best first, at most `k`, with how each ended.
    async fn outcomes(
        &self,
        tenant: &str,
        ranked: Vec<(Candidate, f32)>,
        service: &str,
    ) -> Result<Vec<Value>, clickhouse::error::Error> {
        if ranked.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<&str> = ranked.iter().map(|(c, _)| c.incident_id.as_str()).collect();
        let outcomes: Vec<Outcome> = self
            .clickhouse
            .query(
                "SELECT i.incident_id AS incident_id, i.title AS title, \
                 assumeNotNull(i.resolved_at) AS resolved_at, \
                 a.resolved_by AS resolved_by, a.last_comment AS last_comment \
                 FROM (SELECT incident_id, title, resolved_at FROM incidents FINAL \
                       WHERE tenant = ? AND incident_id IN ? AND status = 'resolved') AS i \
                 LEFT JOIN (SELECT incident_id, argMaxIf(actor, at, kind = 'resolve') AS resolved_by, \
                            ifNull(argMaxIf(comment, at, kind = 'comment'), '') AS last_comment \
                            FROM actions FINAL WHERE tenant = ? AND incident_id IN ? GROUP BY incident_id) AS a \
                 ON a.incident_id = i.incident_id",
            )
            .bind(tenant)
            .bind(&ids)
            .bind(tenant)
            .bind(&ids)
            .fetch_all()
            .await?;
        let by_id: BTreeMap<&str, &Outcome> = outcomes.iter().map(|o| (o.incident_id.as_str(), o)).collect();
        Ok(ranked
            .iter()
            .filter_map(|(candidate, _)| {
                let outcome = by_id.get(candidate.incident_id.as_str())?;
                Some(describe(candidate, outcome, service))
            })
            .take(self.config.k)
            .collect())
    }
}

/// Similarity (1 - cosine distance) plus the boost of the same service, above the floor, best
/// first; ties to the most recent.
pub fn rank(candidates: Vec<Candidate>, service: &str, config: &SimilarConfig) -> Vec<(Candidate, f32)> {
    let mut ranked: Vec<(Candidate, f32)> = candidates
        .into_iter()
        .map(|c| {
            let boost = if !service.is_empty() && c.service == service { config.service_boost } else { 0.0 };
            let score = 1.0 - c.distance + boost;
            (c, score)
        })
        .filter(|(_, score)| *score >= config.min_similarity)
        .collect();
    ranked.sort_by(|(a, x), (b, y)| y.total_cmp(x).then(b.first_seen.cmp(&a.first_seen)));
    ranked
}

fn describe(candidate: &Candidate, outcome: &Outcome, service: &str) -> Value {
    let took_s = (outcome.resolved_at - candidate.first_seen).max(0) / 1000;
    let day = crate::ask::time_text(candidate.first_seen);
    let took = if took_s < 120 { format!("{took_s} s") } else { format!("{} min", took_s / 60) };
    let by = if outcome.resolved_by.is_empty() { String::new() } else { format!(" by {}", outcome.resolved_by) };
    let mut sentence = format!("Looks like {} of {}, resolved in {took}{by}", candidate.incident_id, &day[..10]);
    if !outcome.last_comment.is_empty() {
        sentence.push_str(&format!(": \"{}\"", outcome.last_comment));
    }
    json!({
        "incident_id": candidate.incident_id,
        "title": outcome.title,
        "service": candidate.service,
        "similarity": ((1.0 - f64::from(candidate.distance)) * 1000.0).round() / 1000.0,
        "same_service": !service.is_empty() && candidate.service == service,
        "first_seen": crate::ask::time_text(candidate.first_seen),
        "resolved_in_s": took_s,
        "resolved_by": outcome.resolved_by,
        "last_comment": outcome.last_comment,
        "sentence": sentence,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candidate(id: &str, service: &str, first_seen: i64, distance: f32) -> Candidate {
        Candidate { incident_id: id.into(), service: service.into(), first_seen, distance }
    }

    #[test]
    fn the_same_service_and_then_the_latest_come_first() {
        let config = SimilarConfig::default();
        let ranked = rank(
            vec![
                candidate("other-service", "mysql", 5, 0.0),
                candidate("older", "pg", 1, 0.0),
                candidate("latest", "pg", 3, 0.0),
                candidate("unlike", "pg", 9, 0.6),
            ],
            "pg",
            &config,
        );
        let ids: Vec<&str> = ranked.iter().map(|(c, _)| c.incident_id.as_str()).collect();
        assert_eq!(ids, ["latest", "older", "other-service"], "below min_similarity: left out");
    }

    #[test]
    fn the_text_is_the_rule_with_what_varies_masked() {
        let labels = BTreeMap::from([("alertname".to_string(), "PostgresqlDown".to_string())]);
        assert_eq!(
            text("x", "Postgres down on db-7 (10.0.0.7)", &labels),
            text("x", "Postgres down on db-9 (10.0.0.9)", &labels)
        );
    }
}
