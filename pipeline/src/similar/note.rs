//! The line an opening notification gets when a resolved incident like it exists ("Looks like
//! inc-… of 2026-11-12, resolved in 14 min by alice"). The notifier asks while it delivers, in
//! the delivery's own task, so a slow or absent ClickHouse delays only that message, and by at
//! most `NOTE_TIMEOUT`; the answer is kept per incident, so every target of one incident (and a
//! retried attempt) shares one lookup. At most `LOOKUPS` lookups run at once, and a delivery
//! that finds them all busy goes without the line: a backlog of new incidents otherwise made
//! every delivery wait its turn at ClickHouse (the notifier's drain fell from 14.3 k to 104–121
//! notifications/s against the local stack's one-query-at-a-time ClickHouse).

use std::{
    collections::HashMap,
    num::NonZeroUsize,
    path::Path,
    sync::{Arc, Mutex},
    time::Duration,
};

use quench_classify::embed::Embedder;
use quench_schemas::RoutingEvent;

use super::{text, Similar, SimilarConfig};
use crate::events::SimilarSkipped;

/// How long a delivery waits for the line before going without it.
const NOTE_TIMEOUT: Duration = Duration::from_millis(800);
/// Incidents whose line is kept.
const KEPT: usize = 10_000;
/// Lookups at once: the rest of the notifier's slots deliver meanwhile.
const LOOKUPS: usize = 4;

pub struct Notes {
    similar: Similar,
    embedder: Arc<Embedder>,
    kept: Mutex<HashMap<String, Option<String>>>,
    lookups: tokio::sync::Semaphore,
}

impl Notes {
    /// `None` (with a warning) when the model cannot be loaded: the notifier then sends
    /// messages without the line rather than not at all.
    pub fn load(clickhouse: clickhouse::Client, config: &SimilarConfig, model_dir: &Path) -> Option<Self> {
        match Embedder::load(model_dir, NonZeroUsize::new(KEPT).expect("positive")) {
            Ok(embedder) => Some(Self {
                similar: Similar::new(clickhouse, config),
                embedder: Arc::new(embedder),
                kept: Mutex::new(HashMap::new()),
                lookups: tokio::sync::Semaphore::new(LOOKUPS),
            }),
            Err(e) => {
                tracing::warn!(error = %e, "no similar incidents in notifications: the model did not load");
                None
            }
        }
    }

    /// The line for `event`'s incident, if a resolved incident like it exists.
    pub async fn line(&self, event: &RoutingEvent) -> Option<String> {
        if let Some(kept) = self.kept.lock().expect("notes").get(&event.incident_id) {
            return kept.clone();
        }
        // Not kept when skipped: the incident's next delivery may find a lookup free.
        let Ok(_lookup) = self.lookups.try_acquire() else {
            SimilarSkipped::Busy.emit(&event.incident_id);
            return None;
        };
        let found = tokio::time::timeout(NOTE_TIMEOUT, self.look_up(event)).await.unwrap_or_else(|_| {
            SimilarSkipped::Slow.emit(&event.incident_id);
            None
        });
        let mut kept = self.kept.lock().expect("notes");
        if kept.len() >= KEPT {
            kept.clear();
        }
        kept.insert(event.incident_id.clone(), found.clone());
        found
    }

    async fn look_up(&self, event: &RoutingEvent) -> Option<String> {
        let text = text(&event.title, &event.summary, &event.common_labels);
        let embedder = self.embedder.clone();
        let vector = tokio::task::spawn_blocking(move || embedder.embed(&[text.as_str()])).await.ok()?.ok()?.pop()?;
        let service = event.common_labels.get("service").map_or("", String::as_str);
        // Only incidents that began before this one's first alert: none opened since.
        let began = event.alerts.iter().map(|a| a.starts_at).min().unwrap_or(event.emitted_at);
        match self.similar.lookup(&event.tenant, &vector, service, began).await {
            Ok(found) => found.first().and_then(|m| m["sentence"].as_str()).map(str::to_string),
            Err(e) => {
                tracing::warn!(error = %e, "similar incidents could not be read; sent without them");
                None
            }
        }
    }
}
