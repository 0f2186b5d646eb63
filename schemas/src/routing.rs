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
    /// A symbol added by a newer writer that this reader does not know (the schema's enum default).
    Unknown,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoutingTarget {
    pub channel: String,
    pub target: String,
}

avro_record!(RoutingEvent, "quench.RoutingEvent", "routing_event.avsc");
