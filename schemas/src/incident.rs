use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::record::avro_record;

/// Latest state of an incident, as `schemas/avro/incident.avsc` documents it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Incident {
    pub incident_id: String,
    pub group_key: String,
    pub tenant: String,
    pub status: IncidentStatus,
    pub title: String,
    pub summary: String,
    pub severity: String,
    pub priority: Option<String>,
    pub category: Option<String>,
    pub confidence: Option<f32>,
    pub classified_by: Option<String>,
    pub first_seen: i64,
    pub last_seen: i64,
    pub acknowledged_at: Option<i64>,
    pub resolved_at: Option<i64>,
    pub alert_count: i64,
    pub fingerprints: Vec<String>,
    pub common_labels: BTreeMap<String, String>,
    pub flapping: bool,
    pub version: i64,
    pub distinct_alerts: i64,
    /// Firing alerts not announced at this version because silences or inhibition mute them.
    pub muted_alerts: i64,
    /// Ids of the silences that mute them.
    pub silenced_by: Vec<String>,
    /// Incidents whose alerts inhibit them.
    pub inhibited_by: Vec<String>,
    /// Newer than the others: JSON written before them still reads.
    #[serde(default)]
    pub state_changes: i64,
    #[serde(default)]
    pub transient: bool,
    #[serde(default)]
    pub parent_incident_id: Option<String>,
    #[serde(default)]
    pub correlation: Option<String>,
}

/// Alerts that joined an incident, on the JSON topic `incident-alerts`, each alert once, in
/// records of at most [`IncidentAlerts::MAX_FINGERPRINTS`]: where an incident's every alert is
/// listed however many it has (its own record lists a sample). The sink writes them to
/// ClickHouse's `incident_alerts`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IncidentAlerts {
    pub tenant: String,
    pub incident_id: String,
    /// The incident's first and last event times when these alerts joined it.
    pub first_seen: i64,
    pub last_seen: i64,
    pub fingerprints: Vec<String>,
}

impl IncidentAlerts {
    /// About 20 bytes each: records stay near 100 kB.
    pub const MAX_FINGERPRINTS: usize = 5_000;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IncidentStatus {
    Open,
    Acknowledged,
    Resolved,
}

avro_record!(Incident, "quench.Incident", "incident.avsc");
