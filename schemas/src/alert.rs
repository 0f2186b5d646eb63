use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::record::avro_record;

/// One alert, as `schemas/avro/alert.avsc` documents it. Times are milliseconds since the epoch.
///
/// Labels and annotations are ordered maps so that fingerprints and group keys, which hash the
/// sorted labels, need no extra sort.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    pub source: String,
    pub status: AlertStatus,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub starts_at: i64,
    pub ends_at: Option<i64>,
    pub received_at: i64,
    pub generator_url: Option<String>,
    pub fingerprint: Option<String>,
    pub tenant: String,
    /// The sender reports resolutions itself (an Alertmanager webhook, PagerDuty events) and
    /// re-sends a firing alert only now and then: it resolves when the sender says so, never
    /// on `resolve_timeout`.
    #[serde(default)]
    pub stateful: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertStatus {
    Firing,
    Resolved,
}

impl Alert {
    /// A firing alert of the default tenant from `source`, started and received at `at` (ms):
    /// what tests and generated streams start from.
    pub fn firing(source: &str, labels: BTreeMap<String, String>, at: i64) -> Self {
        Self {
            source: source.into(),
            status: AlertStatus::Firing,
            labels,
            annotations: BTreeMap::new(),
            starts_at: at,
            ends_at: None,
            received_at: at,
            generator_url: None,
            fingerprint: None,
            tenant: "default".into(),
            stateful: false,
        }
    }
}

avro_record!(Alert, "quench.Alert", "alert.avsc");
