//! Rows of Quench's ClickHouse tables, as the `clickhouse` crate writes them (RowBinary, with the
//! column names and types validated against the table).

use std::collections::BTreeMap;

use clickhouse::Row;
use quench_schemas::{Alert, AlertStatus};
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
    pub incident_id: String,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub generator_url: String,
    pub kafka_partition: u32,
    pub kafka_offset: u64,
}

/// `Enum8('firing' = 1, 'resolved' = 2)`.
#[derive(Debug, Clone, Copy, Serialize_repr)]
#[repr(i8)]
pub enum StatusEnum {
    Firing = 1,
    Resolved = 2,
}

impl AlertRow {
    /// The row for `alert`, read from `partition` at `offset`. `incident_id` is empty until the
    /// stream worker has assigned the alert to an incident.
    pub fn new(alert: Alert, fingerprint: String, incident_id: String, partition: i32, offset: i64) -> Self {
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
            incident_id,
            labels: alert.labels,
            annotations: alert.annotations,
            generator_url: alert.generator_url.unwrap_or_default(),
            kafka_partition: u32::try_from(partition).unwrap_or_default(),
            kafka_offset: u64::try_from(offset).unwrap_or_default(),
        }
    }
}
