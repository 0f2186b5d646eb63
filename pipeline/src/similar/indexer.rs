//! Embeds the incidents that `incident_embeddings` does not hold yet, a batch at a time, and
//! writes their vectors. Runs in `quench api`; after a restart or a ClickHouse outage it takes up
//! where the table ends (a day back, for incidents that arrived late), and a second API replica
//! doing the same work only writes rows the table collapses.

use std::{
    collections::BTreeMap,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::Duration,
};

use quench_classify::embed::Embedder;
use serde::{Deserialize, Serialize};

use super::{text, text_hash};

/// An incident to embed.
#[derive(Debug, clickhouse::Row, Deserialize)]
struct Pending {
    tenant: String,
    incident_id: String,
    title: String,
    summary: String,
    common_labels: BTreeMap<String, String>,
    first_seen: i64,
}

/// A row of `incident_embeddings`.
#[derive(Debug, clickhouse::Row, Serialize)]
pub struct EmbeddingRow {
    pub tenant: String,
    pub incident_id: String,
    pub service: String,
    pub text_hash: u64,
    pub first_seen: i64,
    pub embedding: Vec<f32>,
}

const BATCH: u64 = 256;

/// Embeds and writes until `shutdown`; errors are logged and retried at the next interval.
pub async fn run(
    clickhouse: clickhouse::Client,
    embedder: Arc<Embedder>,
    interval: Duration,
    shutdown: Arc<AtomicBool>,
) {
    while !shutdown.load(Ordering::SeqCst) {
        match once(&clickhouse, &embedder).await {
            Ok(n) if n as u64 == BATCH => continue,
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "indexing incidents for similar incidents failed; retrying"),
        }
        tokio::time::sleep(interval).await;
    }
}

/// One batch: the number of incidents embedded.
pub async fn once(clickhouse: &clickhouse::Client, embedder: &Arc<Embedder>) -> anyhow::Result<usize> {
    let pending: Vec<Pending> = clickhouse
        .query(
            "SELECT tenant, incident_id, title, summary, common_labels, first_seen \
             FROM incidents \
             WHERE first_seen >= (SELECT max(first_seen) FROM incident_embeddings) - INTERVAL 1 DAY \
             AND (tenant, incident_id) NOT IN (SELECT tenant, incident_id FROM incident_embeddings) \
             ORDER BY first_seen LIMIT 1 BY tenant, incident_id LIMIT ?",
        )
        .bind(BATCH)
        .fetch_all()
        .await?;
    if pending.is_empty() {
        return Ok(0);
    }
    let texts: Vec<String> = pending.iter().map(|p| text(&p.title, &p.summary, &p.common_labels)).collect();
    let (embedder, owned) = (embedder.clone(), texts.clone());
    let vectors =
        tokio::task::spawn_blocking(move || embedder.embed(&owned.iter().map(String::as_str).collect::<Vec<_>>()))
            .await??;
    let mut insert = clickhouse.insert::<EmbeddingRow>("incident_embeddings").await?;
    for ((incident, embedding), text) in pending.iter().zip(vectors).zip(&texts) {
        insert
            .write(&EmbeddingRow {
                tenant: incident.tenant.clone(),
                incident_id: incident.incident_id.clone(),
                service: incident.common_labels.get("service").cloned().unwrap_or_default(),
                text_hash: text_hash(text),
                first_seen: incident.first_seen,
                embedding,
            })
            .await?;
    }
    insert.end().await?;
    tracing::debug!(incidents = pending.len(), "embedded incidents for similar incidents");
    Ok(pending.len())
}
