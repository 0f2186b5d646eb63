//! The notifiers' side of the contract: the channels a routing event can name, and the JSON
//! records of the notifier's topics (`notifications`, `notifications-dlq`, the delivery log).
//! These topics are JSON rather than Avro: they are Quench's own bookkeeping, read back by Quench
//! (the sink, a restarted notifier), and readable by eye when a delivery is questioned.

use serde::{Deserialize, Serialize};

use crate::RoutingEvent;

/// A notification channel, as routing rules and `RoutingTarget.channel` name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    Slack,
    Pagerduty,
    Teams,
    Email,
    Webhook,
}

impl Channel {
    /// The name on the wire and in configuration (`[notify.<channel>]`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Channel::Slack => "slack",
            Channel::Pagerduty => "pagerduty",
            Channel::Teams => "teams",
            Channel::Email => "email",
            Channel::Webhook => "webhook",
        }
    }
}

/// One delivery attempt, on the `notifications` topic, and as the sink inserts it, a row of the
/// ClickHouse table `notifications` (sql/0005_notifications.sql).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "clickhouse", derive(clickhouse::Row))]
pub struct NotificationAttempt {
    pub tenant: String,
    pub incident_id: String,
    pub event_id: String,
    pub idempotency_key: String,
    pub channel: String,
    pub target: String,
    /// `event` for a routing event's targets, `escalation` for a policy's step.
    pub kind: String,
    pub attempt: u32,
    /// `delivered`, `retrying` or `failed`.
    pub outcome: String,
    /// HTTP status (0 when there was no answer).
    pub status: u16,
    pub error: String,
    pub latency_ms: u64,
    /// When the attempt ended (epoch ms).
    pub at: i64,
    /// When the worker emitted the routing event: `at` minus this is the pipeline's latency.
    pub emitted_at: i64,
}

/// The delivery log's value (keyed by idempotency key): what a restarted notifier must not send
/// again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Delivered {
    pub at: i64,
    /// `delivered`, or `failed` when it went to the DLQ (not to be retried either).
    pub outcome: String,
    /// Offset of the routing event it delivered; -1 for escalation pages.
    pub routing_offset: i64,
}

/// A delivery that failed for good, on `notifications-dlq`: what it was and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NotificationDeadLetter {
    pub idempotency_key: String,
    pub target: String,
    pub reason: String,
    pub at: i64,
    pub event: RoutingEvent,
}
