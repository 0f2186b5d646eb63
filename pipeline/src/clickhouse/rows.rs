//! Rows of Quench's ClickHouse tables, as the `clickhouse` crate writes them (RowBinary, with the
//! column names and types validated against the table).

use std::collections::BTreeMap;

use clickhouse::Row;
use quench_schemas::{
    Alert, AlertStatus, Incident, IncidentAction, IncidentAlerts, IncidentStatus, Prediction, PredictionOutcome,
    RoutingEvent,
};
use serde::Serialize;
use serde_repr::Serialize_repr;

/// One row of `alerts` (sql/0001_alerts.sql).
#[derive(Debug, Row, Serialize)]
pub struct AlertRow {
    pub tenant: String,
    pub received_at: i64,
    pub starts_at: i64,
    pub ends_at: Option<i64>,
    pub status: StatusEnum,
    pub source: String,
    pub alertname: String,
    pub fingerprint: String,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub generator_url: String,
    pub kafka_partition: u32,
    pub kafka_offset: u64,
    pub stateful: bool,
}

/// `Enum8('firing' = 1, 'resolved' = 2)`.
#[derive(Debug, Clone, Copy, Serialize_repr)]
#[repr(i8)]
pub enum StatusEnum {
    Firing = 1,
    Resolved = 2,
}

impl AlertRow {
    /// The row for `alert`, read from `partition` at `offset`.
    pub fn new(alert: Alert, fingerprint: String, partition: i32, offset: i64) -> Self {
        Self {
            alertname: alert.labels.get("alertname").cloned().unwrap_or_default(),
            tenant: alert.tenant,
            received_at: alert.received_at,
            starts_at: alert.starts_at,
            ends_at: alert.ends_at,
            status: match alert.status {
                AlertStatus::Firing => StatusEnum::Firing,
                AlertStatus::Resolved => StatusEnum::Resolved,
            },
            source: alert.source,
            fingerprint,
            labels: alert.labels,
            annotations: alert.annotations,
            generator_url: alert.generator_url.unwrap_or_default(),
            kafka_partition: u32::try_from(partition).unwrap_or_default(),
            kafka_offset: u64::try_from(offset).unwrap_or_default(),
            stateful: alert.stateful,
        }
    }
}

/// One row of `incidents` (sql/0002_incidents.sql): one per incident version.
#[derive(Debug, Row, Serialize)]
pub struct IncidentRow {
    pub tenant: String,
    pub incident_id: String,
    pub group_key: String,
    pub status: IncidentStatusEnum,
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
    pub alert_count: u64,
    pub distinct_alerts: u64,
    pub fingerprints: Vec<String>,
    pub common_labels: BTreeMap<String, String>,
    pub flapping: bool,
    pub version: u64,
    pub muted_alerts: u64,
    pub silenced_by: Vec<String>,
    pub inhibited_by: Vec<String>,
    pub state_changes: u64,
    pub transient: bool,
    pub parent_incident_id: Option<String>,
    pub correlation: Option<String>,
}

/// `Enum8('open' = 1, 'acknowledged' = 2, 'resolved' = 3)`.
#[derive(Debug, Clone, Copy, Serialize_repr)]
#[repr(i8)]
pub enum IncidentStatusEnum {
    Open = 1,
    Acknowledged = 2,
    Resolved = 3,
}

impl From<IncidentStatus> for IncidentStatusEnum {
    fn from(status: IncidentStatus) -> Self {
        match status {
            IncidentStatus::Open => Self::Open,
            IncidentStatus::Acknowledged => Self::Acknowledged,
            IncidentStatus::Resolved => Self::Resolved,
        }
    }
}

impl From<Incident> for IncidentRow {
    fn from(i: Incident) -> Self {
        Self {
            tenant: i.tenant,
            incident_id: i.incident_id,
            group_key: i.group_key,
            status: i.status.into(),
            title: i.title,
            summary: i.summary,
            severity: i.severity,
            priority: i.priority,
            category: i.category,
            confidence: i.confidence,
            classified_by: i.classified_by,
            first_seen: i.first_seen,
            last_seen: i.last_seen,
            acknowledged_at: i.acknowledged_at,
            resolved_at: i.resolved_at,
            alert_count: u64::try_from(i.alert_count).unwrap_or_default(),
            distinct_alerts: u64::try_from(i.distinct_alerts).unwrap_or_default(),
            fingerprints: i.fingerprints,
            common_labels: i.common_labels,
            flapping: i.flapping,
            version: u64::try_from(i.version).unwrap_or_default(),
            muted_alerts: u64::try_from(i.muted_alerts).unwrap_or_default(),
            silenced_by: i.silenced_by,
            inhibited_by: i.inhibited_by,
            state_changes: u64::try_from(i.state_changes).unwrap_or_default(),
            transient: i.transient,
            parent_incident_id: i.parent_incident_id,
            correlation: i.correlation,
        }
    }
}

/// One row of `incident_alerts` (sql/0003_incident_alerts.sql).
#[derive(Debug, Row, Serialize)]
pub struct IncidentAlertRow {
    pub tenant: String,
    pub incident_id: String,
    pub fingerprint: String,
    pub first_seen: i64,
    pub last_seen: i64,
}

impl IncidentAlertRow {
    /// One row per alert that joined the incident.
    pub fn rows(joined: IncidentAlerts) -> impl Iterator<Item = Self> {
        joined.fingerprints.into_iter().map(move |fingerprint| Self {
            tenant: joined.tenant.clone(),
            incident_id: joined.incident_id.clone(),
            fingerprint,
            first_seen: joined.first_seen,
            last_seen: joined.last_seen,
        })
    }
}

/// One row of `routing_events` (sql/0004_routing_events.sql).
#[derive(Debug, Row, Serialize)]
pub struct RoutingRow {
    pub tenant: String,
    pub event_id: String,
    pub incident_id: String,
    pub reason: String,
    pub status: String,
    pub severity: String,
    pub priority: Option<String>,
    pub team: Option<String>,
    pub targets: Vec<(String, String)>,
    pub escalation_policy: Option<String>,
    pub incident_version: u64,
    pub emitted_at: i64,
}

impl From<RoutingEvent> for RoutingRow {
    fn from(e: RoutingEvent) -> Self {
        Self {
            tenant: e.tenant,
            event_id: e.event_id,
            incident_id: e.incident_id,
            reason: symbol(&e.reason),
            status: symbol(&e.status),
            severity: e.severity,
            priority: e.priority,
            team: e.team,
            targets: e.targets.into_iter().map(|t| (t.channel, t.target)).collect(),
            escalation_policy: e.escalation_policy,
            incident_version: u64::try_from(e.incident_version).unwrap_or_default(),
            emitted_at: e.emitted_at,
        }
    }
}

/// The Avro symbol of a wire enum (`alerts_added`), as serde names it.
fn symbol<T: Serialize>(value: &T) -> String {
    serde_json::to_value(value).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default()
}

/// One row of `actions` (sql/0014_actions.sql): what a person did to an incident.
#[derive(Debug, Row, Serialize)]
pub struct ActionRow {
    pub tenant: String,
    pub incident_id: String,
    pub action_id: String,
    pub kind: String,
    pub actor: String,
    pub token: String,
    pub comment: Option<String>,
    pub at: i64,
}

impl From<IncidentAction> for ActionRow {
    fn from(a: IncidentAction) -> Self {
        Self {
            tenant: a.tenant,
            incident_id: a.incident_id,
            action_id: a.action_id,
            kind: symbol(&a.kind),
            actor: a.actor,
            token: a.token,
            comment: a.comment,
            at: a.at,
        }
    }
}

/// One row of `predictions` (sql/0010_predictions.sql): one per prediction version.
#[derive(Debug, Row, Serialize)]
pub struct PredictionRow {
    pub tenant: String,
    pub prediction_id: String,
    pub alertname: String,
    pub entity: String,
    pub entity_label: String,
    pub probability: f64,
    pub issued_at: i64,
    pub window_start: i64,
    pub window_end: i64,
    pub expected_lead_s: i64,
    pub evidence_alertname: String,
    pub evidence_entity: String,
    pub evidence_fingerprint: String,
    pub edge_support: i64,
    pub model_version: i64,
    pub outcome: &'static str,
    pub came_at: Option<i64>,
    pub lead_s: Option<i64>,
    pub version: u64,
}

impl From<Prediction> for PredictionRow {
    fn from(p: Prediction) -> Self {
        Self {
            tenant: p.tenant,
            prediction_id: p.prediction_id,
            alertname: p.alertname,
            entity: p.entity,
            entity_label: p.entity_label,
            probability: p.probability,
            issued_at: p.issued_at,
            window_start: p.window_start,
            window_end: p.window_end,
            expected_lead_s: p.expected_lead_s,
            evidence_alertname: p.evidence_alertname,
            evidence_entity: p.evidence_entity,
            evidence_fingerprint: p.evidence_fingerprint,
            edge_support: p.edge_support,
            model_version: p.model_version,
            outcome: match p.outcome {
                PredictionOutcome::Pending => "pending",
                PredictionOutcome::CameTrue => "came_true",
                PredictionOutcome::Missed => "missed",
                PredictionOutcome::Unknown => "unknown",
            },
            came_at: p.came_at,
            lead_s: p.lead_s,
            version: u64::try_from(p.version).unwrap_or_default(),
        }
    }
}
