use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{incident::IncidentStatus, record::avro_record};

/// A notification-worthy change of an incident, as `schemas/avro/routing_event.avsc` documents it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoutingEvent {
    pub event_id: String,
    pub incident_id: String,
    pub reason: RoutingReason,
    pub tenant: String,
    pub status: IncidentStatus,
    pub title: String,
    pub summary: String,
    pub severity: String,
    pub priority: Option<String>,
    pub category: Option<String>,
    pub alert_count: i64,
    pub common_labels: BTreeMap<String, String>,
    pub team: Option<String>,
    pub targets: Vec<RoutingTarget>,
    pub escalation_policy: Option<String>,
    pub incident_version: i64,
    pub emitted_at: i64,
    pub receiver: Option<String>,
    /// In Alertmanager's format.
    pub group_key: String,
    pub group_labels: BTreeMap<String, String>,
    pub alerts: Vec<EventAlert>,
    pub truncated_alerts: i64,
    /// Newer than the others: JSON written before it (tests, tools) still reads.
    #[serde(default)]
    pub flaps: i64,
    #[serde(default)]
    pub parent_incident_id: Option<String>,
    #[serde(default)]
    pub correlation: Option<String>,
}

/// One alert of an announced group, as Alertmanager's notifications list them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventAlert {
    pub fingerprint: String,
    /// `firing` or `resolved`.
    pub status: String,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub starts_at: i64,
    pub ends_at: Option<i64>,
}

impl RoutingEvent {
    /// Alerts an event lists at most (Avro records must stay far below Kafka's message limit).
    pub const MAX_ALERTS: usize = 1_000;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RoutingReason {
    Opened,
    AlertsAdded,
    SeverityChanged,
    Repeat,
    Acknowledged,
    Resolved,
    /// Some alerts of a group resolved while others fire: news for receivers with
    /// `send_resolved` only, as in Alertmanager.
    AlertsResolved,
    /// A symbol added by a newer writer that this reader does not know (the schema's enum default).
    Unknown,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoutingTarget {
    pub channel: String,
    pub target: String,
    /// Whether the target hears of the resolution (Alertmanager's `send_resolved`).
    #[serde(default = "yes")]
    pub send_resolved: bool,
}

fn yes() -> bool {
    true
}

impl RoutingTarget {
    /// A target that also hears of resolutions.
    pub fn new(channel: impl Into<String>, target: impl Into<String>) -> Self {
        Self { channel: channel.into(), target: target.into(), send_resolved: true }
    }
}

avro_record!(RoutingEvent, "quench.RoutingEvent", "routing_event.avsc");
