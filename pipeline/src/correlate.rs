//! `[correlate]`: correlation across groups in the worker (`quench_core::correlate`), and what
//! it needs from outside the core: its settings, the dependency map, and the kinds that go
//! together, learned from ClickHouse history by the worker in the background.

use std::path::PathBuf;

use quench_core::{
    correlate::{Dependencies, Settings},
    rules::RouteTree,
};
use quench_schemas::Alert;
use serde::{Deserialize, Serialize};

/// Correlation across groups (off by default). With it on, the ingest keys alerts by tenant
/// instead of by group key, so that all of a tenant's groups meet in one worker partition: the
/// tenant's alerts are then processed by one worker at a time.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CorrelateConfig {
    pub enabled: bool,
    /// Incidents whose first alerts are at most this far apart may be linked.
    pub window_s: i64,
    /// The later kind must follow the earlier one in this share of its onsets in history...
    pub min_confidence: f64,
    /// ...this many times more often than chance...
    pub min_lift: f64,
    /// ...seen at least this many times; or the alerts' templates (names and summaries) share
    /// at least this share of their words (above 1: text alone never links).
    pub min_support: u64,
    pub min_similarity: f64,
    /// Links that no label shows, `a,b` per line (label values: `orders-db:5432,checkout`).
    pub dependencies: Option<PathBuf>,
    /// How much of ClickHouse's `alerts` history to learn from, and how often to learn again.
    pub history_hours: u64,
    pub learn_interval_s: u64,
}

impl Default for CorrelateConfig {
    fn default() -> Self {
        let settings = Settings::default();
        Self {
            enabled: false,
            window_s: settings.window_s,
            min_confidence: settings.min_confidence,
            min_lift: settings.min_lift,
            min_support: settings.min_support,
            min_similarity: settings.min_similarity,
            dependencies: None,
            history_hours: 168,
            learn_interval_s: 3600,
        }
    }
}

impl CorrelateConfig {
    /// The Kafka key of `alert` on `alerts` (and on the re-keyed topic): its group key on its
    /// first route, or with correlation on its tenant, so that all of a tenant's groups meet in
    /// one worker partition. Ingest, the load generator and the re-keying stage all use it.
    pub fn partition_key(&self, rules: &RouteTree, alert: &Alert) -> String {
        match self.enabled {
            true => alert.tenant.clone(),
            false => rules.partition_key(alert),
        }
    }

    pub fn settings(&self) -> Settings {
        Settings {
            window_s: self.window_s,
            min_confidence: self.min_confidence,
            min_lift: self.min_lift,
            min_support: self.min_support,
            min_similarity: self.min_similarity,
        }
    }

    /// The dependency map (empty without a file).
    pub fn dependencies(&self) -> Result<Dependencies, String> {
        let Some(path) = &self.dependencies else { return Ok(Dependencies::default()) };
        let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        Dependencies::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    pub fn validate(&self) -> Result<(), (String, String)> {
        let fail = |key: &str, message: String| Err((format!("correlate.{key}"), message));
        if self.window_s < 1 {
            return fail("window_s", "must be at least 1".into());
        }
        if !(0.0..=1.0).contains(&self.min_confidence) {
            return fail("min_confidence", "must be between 0 and 1".into());
        }
        if self.min_similarity.is_nan() || self.min_similarity < 0.0 {
            return fail("min_similarity", "must be 0 or more (above 1: text alone never links)".into());
        }
        if self.history_hours == 0 || self.learn_interval_s == 0 {
            return fail(
                if self.history_hours == 0 { "history_hours" } else { "learn_interval_s" },
                "must be positive".into(),
            );
        }
        if self.enabled {
            self.dependencies().map(|_| ()).or_else(|e| fail("dependencies", e))?;
        }
        Ok(())
    }
}
