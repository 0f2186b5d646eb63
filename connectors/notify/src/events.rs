//! What the notifier's core reports: one struct per observable event, whose `emit()` updates the
//! metrics, so that every metric name is written once, here, and listed in [`METRICS`] (checked
//! against the README by the pipeline's tests). The Kafka shell's events are the pipeline's.

use std::time::Duration;

/// Every metric this crate emits.
pub const METRICS: &[&str] = &[
    "quench_notify_attempts_total",
    "quench_notify_attempt_seconds",
    "quench_notify_rate_limited_total",
    "quench_notify_actions_total",
];

/// One delivery attempt to a channel ended.
pub struct AttemptEnded<'a> {
    pub channel: &'a str,
    /// `delivered`, `retrying` or `failed`.
    pub outcome: &'static str,
    pub elapsed: Duration,
}

impl AttemptEnded<'_> {
    pub fn emit(self) {
        let channel = self.channel.to_string();
        metrics::histogram!("quench_notify_attempt_seconds", "channel" => channel.clone())
            .record(self.elapsed.as_secs_f64());
        metrics::counter!("quench_notify_attempts_total", "channel" => channel, "outcome" => self.outcome).increment(1);
    }
}

/// A delivery waited for its target's per-minute budget.
pub struct RateLimited<'a> {
    pub channel: &'a str,
}

impl RateLimited<'_> {
    pub fn emit(self) {
        metrics::counter!("quench_notify_rate_limited_total", "channel" => self.channel.to_string()).increment(1);
    }
}

/// The acknowledgement API accepted an action (Kafka has it).
pub struct ActionAccepted<'a> {
    /// `ack`, `resolve` or `comment`.
    pub kind: &'a str,
}

impl ActionAccepted<'_> {
    pub fn emit(self) {
        metrics::counter!("quench_notify_actions_total", "kind" => self.kind.to_string()).increment(1);
    }
}
