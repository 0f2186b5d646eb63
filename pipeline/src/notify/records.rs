//! The JSON records the notifiers write: the delivery log (what was sent where, so a restart does
//! not send it again), one record per attempt (for the `notifications` table), and dead letters.

use quench_notify::deliver::Attempt;
use quench_schemas::RoutingEvent;
use serde::{Deserialize, Serialize};

use crate::clickhouse::NotificationRow;

/// Delivery log value, keyed by idempotency key.
#[derive(Debug, Serialize, Deserialize)]
pub struct Delivered {
    pub at: i64,
    /// `delivered`, or `failed` when it went to the DLQ (not to be retried either).
    pub outcome: String,
    /// Offset of the routing event it delivered; -1 for escalation pages.
    pub routing_offset: i64,
}

/// The `notifications` row of one attempt.
pub fn attempt_row(
    key: &str,
    target: &str,
    kind: &str,
    event: &RoutingEvent,
    attempt: &Attempt,
    at: i64,
) -> NotificationRow {
    let (channel, target) = target.split_once(':').unwrap_or((target, ""));
    NotificationRow {
        tenant: event.tenant.clone(),
        incident_id: event.incident_id.clone(),
        event_id: event.event_id.clone(),
        idempotency_key: key.to_string(),
        channel: channel.to_string(),
        target: target.to_string(),
        kind: kind.to_string(),
        attempt: attempt.number,
        outcome: attempt.outcome.to_string(),
        status: attempt.status,
        error: attempt.error.clone().unwrap_or_default(),
        latency_ms: attempt.latency_ms,
        at,
        emitted_at: event.emitted_at,
    }
}

/// A delivery that failed for good, with what it was and why.
#[derive(Debug, Serialize)]
pub struct DeadLetter<'a> {
    pub idempotency_key: &'a str,
    pub target: &'a str,
    pub reason: &'a str,
    pub at: i64,
    pub event: &'a RoutingEvent,
}
