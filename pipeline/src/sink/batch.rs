//! One batch of rows for ClickHouse and the Kafka offsets it covers.

use std::{collections::BTreeMap, time::Instant};

use quench_schemas::{
    fingerprint::{alert_fingerprint, fnv1a},
    Alert, Incident, IncidentAction, IncidentAlerts, NotificationAttempt, Prediction, RoutingEvent,
};

use crate::clickhouse::{ActionRow, AlertRow, IncidentAlertRow, IncidentRow, PredictionRow, RoutingRow};

#[derive(Default)]
pub struct Batch {
    pub alerts: Vec<AlertRow>,
    pub incidents: Vec<IncidentRow>,
    pub incident_alerts: Vec<IncidentAlertRow>,
    pub routing: Vec<RoutingRow>,
    pub notifications: Vec<NotificationAttempt>,
    pub predictions: Vec<PredictionRow>,
    pub actions: Vec<ActionRow>,
    /// First and last offset per (topic, partition).
    pub offsets: BTreeMap<(String, i32), (i64, i64)>,
    pub started: Option<Instant>,
}

impl Batch {
    pub fn rows(&self) -> usize {
        self.alerts.len()
            + self.incidents.len()
            + self.incident_alerts.len()
            + self.routing.len()
            + self.notifications.len()
            + self.predictions.len()
            + self.actions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.offsets.is_empty()
    }

    /// Counts a consumed record, whether or not it yields a row.
    pub fn track(&mut self, topic: &str, partition: i32, offset: i64) {
        self.started.get_or_insert_with(Instant::now);
        let range = self.offsets.entry((topic.to_string(), partition)).or_insert((offset, offset));
        range.0 = range.0.min(offset);
        range.1 = range.1.max(offset);
    }

    pub fn add_alert(&mut self, alert: Alert, partition: i32, offset: i64) {
        let fingerprint = format!("{:016x}", alert_fingerprint(&alert));
        self.alerts.push(AlertRow::new(alert, fingerprint, partition, offset));
    }

    pub fn add_incident(&mut self, incident: Incident) {
        self.incidents.push(incident.into());
    }

    pub fn add_incident_alerts(&mut self, joined: IncidentAlerts) {
        self.incident_alerts.extend(IncidentAlertRow::rows(joined));
    }

    pub fn add_routing(&mut self, event: RoutingEvent) {
        self.routing.push(event.into());
    }

    pub fn add_prediction(&mut self, prediction: Prediction) {
        self.predictions.push(prediction.into());
    }

    pub fn add_action(&mut self, action: IncidentAction) {
        self.actions.push(action.into());
    }

    /// Insert deduplication token for `table`: the same batch retried after a failure carries the
    /// same token, so ClickHouse drops the blocks it had already written.
    pub fn token(&self, table: &str) -> String {
        let coordinates: String = self.offsets.iter().map(|((t, p), (a, b))| format!("{t}/{p}/{a}-{b};")).collect();
        format!("quench-sink:{table}:{:016x}", fnv1a(coordinates.bytes()))
    }
}
