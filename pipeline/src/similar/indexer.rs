//! Embeds the incidents that `similar_incidents` does not hold yet, a batch at a time: each
//! incident's row names its text, and a text not in `similar_texts` yet is embedded and written
//! once. Runs in `quench api`; after a restart or a ClickHouse outage it takes up where the
//! table ends (a day back, for incidents that arrived late), and a second API replica doing the
//! same work only writes rows the tables collapse.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::Duration,
};

use quench_classify::embed::Embedder;
use serde::{Deserialize, Serialize};

use super::{text, text_hash};

/// An incident to index.
#[derive(Debug, clickhouse::Row, Deserialize)]
struct Pending {
    tenant: String,
    incident_id: String,
    title: String,
    summary: String,
    common_labels: BTreeMap<String, String>,
    first_seen: i64,
}

/// A row of `similar_texts`.
#[derive(Debug, clickhouse::Row, Serialize)]
pub struct TextRow {
    pub tenant: String,
    pub text_hash: u64,
    pub embedding: Vec<f32>,
}

/// A row of `similar_incidents`.
#[derive(Debug, clickhouse::Row, Serialize)]
pub struct IncidentRow {
    pub tenant: String,
    pub text_hash: u64,
    pub first_seen: i64,
    pub incident_id: String,
    pub service: String,
}

const BATCH: u64 = 256;

/// Indexes until `shutdown`; errors are logged and retried at the next interval.
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

/// One batch: the number of incidents indexed.
pub async fn once(clickhouse: &clickhouse::Client, embedder: &Arc<Embedder>) -> anyhow::Result<usize> {
    let pending: Vec<Pending> = clickhouse
        .query(
            "SELECT tenant, incident_id, title, summary, common_labels, first_seen FROM incidents \
             WHERE first_seen >= (SELECT max(first_seen) FROM similar_incidents) - INTERVAL 1 DAY \
             AND (tenant, incident_id) NOT IN (SELECT tenant, incident_id FROM similar_incidents) \
             ORDER BY first_seen LIMIT 1 BY tenant, incident_id LIMIT ?",
        )
        .bind(BATCH)
        .fetch_all()
        .await?;
    if pending.is_empty() {
        return Ok(0);
    }
    let texts: Vec<(String, u64)> = pending
        .iter()
        .map(|p| {
            let text = text(&p.title, &p.summary, &p.common_labels);
            let hash = text_hash(&text);
            (text, hash)
        })
        .collect();
    store_texts(clickhouse, embedder, pending.iter().map(|p| p.tenant.as_str()).zip(&texts)).await?;
    let mut insert = clickhouse.insert::<IncidentRow>("similar_incidents").await?;
    for (incident, (_, hash)) in pending.iter().zip(&texts) {
        insert
            .write(&IncidentRow {
                tenant: incident.tenant.clone(),
                text_hash: *hash,
                first_seen: incident.first_seen,
                incident_id: incident.incident_id.clone(),
                service: incident.common_labels.get("service").cloned().unwrap_or_default(),
            })
            .await?;
    }
    insert.end().await?;
    tracing::debug!(incidents = pending.len(), "indexed incidents for similar incidents");
    Ok(pending.len())
}

/// Embeds and writes the texts (of their tenants) that `similar_texts` does not hold yet.
pub async fn store_texts<'a>(
    clickhouse: &clickhouse::Client,
    embedder: &Arc<Embedder>,
    texts: impl Iterator<Item = (&'a str, &'a (String, u64))>,
) -> anyhow::Result<()> {
    let mut wanted: BTreeMap<(String, u64), String> = BTreeMap::new();
    for (tenant, (text, hash)) in texts {
        wanted.entry((tenant.to_string(), *hash)).or_insert_with(|| text.clone());
    }
    let hashes: Vec<u64> = wanted.keys().map(|(_, h)| *h).collect::<BTreeSet<_>>().into_iter().collect();
    let known: Vec<(String, u64)> = clickhouse
        .query("SELECT tenant, text_hash FROM similar_texts WHERE text_hash IN ?")
        .bind(&hashes)
        .fetch_all()
        .await?;
    for key in known {
        wanted.remove(&key);
    }
    if wanted.is_empty() {
        return Ok(());
    }
    let owned: Vec<String> = wanted.values().cloned().collect();
    let embedder = embedder.clone();
    let vectors =
        tokio::task::spawn_blocking(move || embedder.embed(&owned.iter().map(String::as_str).collect::<Vec<_>>()))
            .await??;
    let mut insert = clickhouse.insert::<TextRow>("similar_texts").await?;
    for ((tenant, text_hash), embedding) in wanted.into_keys().zip(vectors) {
        insert.write(&TextRow { tenant, text_hash, embedding }).await?;
    }
    insert.end().await?;
    Ok(())
}
