//! Quench's wire types: the Avro schemas in `schemas/avro/`, their Rust types, the Confluent wire
//! format and the schema registry.
//!
//! The five topics other programs read and write (`alerts`, `incidents`, `incident-routing`,
//! `incident-actions`, `predictions`) are Avro in Confluent framing (magic byte 0, the schema id as a big-endian
//! u32, then the Avro datum), so any Confluent-compatible client can use them. Their schemas are
//! registered under the topic name strategy (`<topic>-value`) and evolve under BACKWARD
//! compatibility: new fields always carry defaults, enums carry a default symbol. Quench's own
//! bookkeeping topics (the worker's changelog `quench-state`, `incident-alerts`,
//! `quench-silences`, `quench-inhibit-sources`, the sink's `clickhouse-dlq`, the notifier's
//! `notifications`, `notifications-dlq`, delivery log and state) are JSON; `alerts-dlq` and
//! `quench-rekey` carry the input's bytes unchanged.
//!
//! Decoding resolves each record's writer schema (looked up by id once, then cached) against the
//! reader schema compiled into this crate, which is what lets old and new producers coexist.

mod action;
mod alert;
mod classification;
#[cfg(feature = "registry")]
mod codec;
mod error;
pub mod fingerprint;
mod framing;
pub mod headers;
mod incident;
mod notification;
mod prediction;
mod record;
mod refused_row;
#[cfg(feature = "registry")]
mod registry;
mod routing;
pub mod severity;
pub mod state_format;

pub use action::{ActionKind, IncidentAction};
pub use alert::{Alert, AlertStatus};
pub use classification::{expr_of_generator_url, Classification, Subject, FALLBACK};
#[cfg(feature = "registry")]
pub use codec::{Decoder, Encoder};
pub use error::{DecodeError, RegistryError};
pub use framing::{frame, unframe, MAGIC_BYTE};
pub use incident::{Incident, IncidentAlerts, IncidentStatus};
pub use notification::{Channel, Delivered, NotificationAttempt, NotificationDeadLetter};
pub use prediction::{Prediction, PredictionOutcome};
pub use record::Record;
pub use refused_row::RefusedRow;
#[cfg(feature = "registry")]
pub use registry::{Compatibility, Registry};
pub use routing::{EventAlert, RoutingEvent, RoutingReason, RoutingTarget};

/// The wall clock in the unit of every time field of Quench's records: milliseconds since the
/// Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}
