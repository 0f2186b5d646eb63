//! Labelled examples from the user's own history: incidents an LLM classified, read back from
//! ClickHouse, so that the local classifier's neighbours (and so the fallback during an outage)
//! learn the categories and severities of this fleet.

use clickhouse::Row;
use quench_classify::corpus::{CorpusAlert, Expected};
use serde::Deserialize;

use super::client;
use crate::config::ClickHouseConfig;

#[derive(Row, Deserialize)]
struct Labelled {
    incident_id: String,
    names: Vec<String>,
    values: Vec<String>,
    summary: String,
    category: String,
    severity: String,
}

/// The newest `limit` incidents classified by an LLM (not by the local classifier), as examples.
pub async fn labelled_incidents(config: &ClickHouseConfig, limit: usize) -> anyhow::Result<Vec<CorpusAlert>> {
    let rows: Vec<Labelled> = client(config)
        .query(
            "SELECT incident_id, CAST(mapKeys(common_labels), 'Array(String)') AS names, \
             mapValues(common_labels) AS values, summary, assumeNotNull(category) AS category, \
             toString(severity) AS severity FROM incidents FINAL \
             WHERE category IS NOT NULL AND classified_by IS NOT NULL \
             AND classified_by NOT IN ('local', 'local-fallback') \
             ORDER BY last_seen DESC LIMIT ?",
        )
        .bind(limit as u64)
        .fetch_all()
        .await?;
    Ok(rows
        .into_iter()
        .map(|row| CorpusAlert {
            id: row.incident_id,
            labels: row.names.into_iter().zip(row.values).collect(),
            annotations: [("summary".to_string(), row.summary)].into_iter().collect(),
            expected: Some(Expected { severity: row.severity, category: row.category }),
            ..Default::default()
        })
        .collect())
}
