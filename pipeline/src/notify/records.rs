//! The JSON records the notifiers write: the delivery log (what was sent where, so a restart does
//! not send it again), one record per attempt (for the `notifications` table), and dead letters.

use quench_notify::deliver::Attempt;
use quench_schemas::RoutingEvent;
use serde::{Deserialize, Serialize};

/// Delivery log value, keyed by idempotency key.
#[derive(Debug, Serialize, Deserialize)]
pub struct Delivered {
    pub at: i64,
    /// `delivered`, or `failed` when it went to the DLQ (not to be retried either).
    pub outcome: String,
    /// Offset of the routing event it delivered; -1 for escalation pages.
    pub routing_offset: i64,
}

/// One attempt, as `notifications` rows hold it.
#[derive(Debug, Serialize)]
pub struct AttemptRecord<'a> {
    pub idempotency_key: &'a str,
    pub event_id: &'a str,
    pub incident_id: &'a str,
    pub tenant: &'a str,
    pub channel: &'a str,
    pub target: &'a str,
    /// `event` for a routing event's targets, `escalation` for a policy's step.
    pub kind: &'a str,
    pub attempt: u32,
    pub outcome: &'a str,
    pub status: u16,
    pub error: String,
    pub latency_ms: u64,
    pub at: i64,
    /// When the worker emitted the routing event: delivered_at minus this is the pipeline's
    /// alert-to-notification latency.
    pub emitted_at: i64,
}

impl<'a> AttemptRecord<'a> {
    pub fn new(
        key: &'a str,
        target: &'a str,
        kind: &'a str,
        event: &'a RoutingEvent,
        attempt: &'a Attempt,
        at: i64,
    ) -> Self {
        let (channel, target) = target.split_once(':').unwrap_or((target, ""));
        Self {
            idempotency_key: key,
            event_id: &event.event_id,
            incident_id: &event.incident_id,
            tenant: &event.tenant,
            channel,
            target,
            kind,
            attempt: attempt.number,
            outcome: attempt.outcome,
            status: attempt.status,
            error: attempt.error.clone().unwrap_or_default(),
            latency_ms: attempt.latency_ms,
            at,
            emitted_at: event.emitted_at,
        }
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
