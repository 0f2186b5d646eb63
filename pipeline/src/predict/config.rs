use std::path::PathBuf;

use quench_core::predict::{live::Settings, topology::DEFAULT_ENTITY_LABELS, Horizon};
use serde::{Deserialize, Serialize};

/// `quench predict`: what is learned from history, and the prediction horizon.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PredictConfig {
    /// Consumer group on the `alerts` topic.
    pub group_id: String,
    /// The labels that name an alert's entity, most specific first; an alert with none of them
    /// is not predicted from or about.
    pub entity_labels: Vec<String>,
    /// Links between entities, `a,b` per line (values of the entity labels): a kind that starts
    /// on one is a precursor of what follows on the other.
    pub topology: Option<PathBuf>,
    /// How much of ClickHouse's `alerts` history to learn from.
    pub history_hours: u64,
    /// How often to learn again from history (what came since is learned online meanwhile).
    pub refit_interval_s: u64,
    /// A prediction expects its alert more than `lead_min_s`...
    pub lead_min_s: i64,
    /// ... and at most `lead_max_s` seconds after it is made.
    pub lead_max_s: i64,
    /// How long a kind must be silent on an entity for its next alert to count as an onset.
    pub quiet_s: i64,
    /// The probability a prediction needs; unset, the one that would have predicted the history
    /// best (F1), as `quench predict eval` chooses it.
    pub min_probability: Option<f64>,
}

impl Default for PredictConfig {
    fn default() -> Self {
        let horizon = Horizon::default();
        Self {
            group_id: "quench-predict".into(),
            entity_labels: DEFAULT_ENTITY_LABELS.iter().map(|s| s.to_string()).collect(),
            topology: None,
            history_hours: 168,
            refit_interval_s: 3600,
            lead_min_s: horizon.lead_min,
            lead_max_s: horizon.lead_max,
            quiet_s: 1800,
            min_probability: None,
        }
    }
}

impl PredictConfig {
    pub fn horizon(&self) -> Horizon {
        Horizon { lead_min: self.lead_min_s, lead_max: self.lead_max_s }
    }

    pub fn settings(&self) -> Settings {
        Settings { horizon: self.horizon(), quiet: self.quiet_s, threshold: self.min_probability }
    }

    pub fn validate(&self) -> Result<(), (String, String)> {
        let fail = |key: &str, message: &str| Err((format!("predict.{key}"), message.to_string()));
        if self.lead_min_s < 1 {
            return fail("lead_min_s", "must be at least 1");
        }
        if self.lead_max_s <= self.lead_min_s {
            return fail("lead_max_s", "must be more than predict.lead_min_s");
        }
        if self.quiet_s < 1 || self.history_hours == 0 || self.refit_interval_s == 0 {
            let key = if self.quiet_s < 1 {
                "quiet_s"
            } else if self.history_hours == 0 {
                "history_hours"
            } else {
                "refit_interval_s"
            };
            return fail(key, "must be positive");
        }
        if self.entity_labels.is_empty() {
            return fail("entity_labels", "must name at least one label");
        }
        // Label names go into the history query as literals.
        if let Some(bad) = self
            .entity_labels
            .iter()
            .find(|l| l.is_empty() || !l.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
        {
            return fail("entity_labels", &format!("`{bad}` is not a label name (letters, digits, _)"));
        }
        if self.min_probability.is_some_and(|p| !(0.0..=1.0).contains(&p)) {
            return fail("min_probability", "must be between 0 and 1");
        }
        Ok(())
    }
}
