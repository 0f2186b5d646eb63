//! What the pipeline's shells (worker, re-keying stage, sink, notifier, rules reload) report: one
//! struct per observable event, whose `emit()` writes the log line and updates the metric
//! together, in the manner of Vector's `internal_events`. Business code says what happened
//! (`DeadLettered { .. }.emit()`); every metric name is written once, here, and listed in
//! [`METRICS`], which a test checks against the README.

use std::time::Duration;

/// Every metric this crate emits.
pub const METRICS: &[&str] = &[
    "quench_alerts_consumed_total",
    "quench_late_alerts_total",
    "quench_dlq_records_total",
    "quench_actions_total",
    "quench_incident_updates_total",
    "quench_routing_events_total",
    "quench_transaction_seconds",
    "quench_transaction_aborts_total",
    "quench_restore_seconds",
    "quench_open_groups",
    "quench_open_fingerprints",
    "quench_untracked_alerts_total",
    "quench_watermark_delay_seconds",
    "quench_classify_seconds",
    "quench_consumer_lag",
    "quench_consumer_errors_total",
    "quench_rules_reloads_total",
    "quench_sink_rows_total",
    "quench_sink_insert_failures_total",
    "quench_sink_skipped_records_total",
    "quench_sink_refused_rows_total",
    "quench_notifications_total",
    "quench_notify_event_to_delivery_seconds",
    "quench_notify_duplicates_skipped_total",
    "quench_notify_queued",
    "quench_notify_paused_total",
    "quench_notify_dead_letters_total",
    "quench_notify_similar_skipped_total",
];

/// The worker decoded an alert.
pub struct AlertConsumed {
    /// Older than its partition's watermark (it still counts).
    pub late: bool,
}

impl AlertConsumed {
    pub fn emit(self) {
        metrics::counter!("quench_alerts_consumed_total").increment(1);
        if self.late {
            metrics::counter!("quench_late_alerts_total").increment(1);
        }
    }
}

/// Why a record went to the dead-letter topic.
#[derive(Debug, Clone, Copy)]
pub enum DeadLetterReason {
    /// Not a decodable record of the topic's schema.
    Undecodable,
    /// An alert that would open a group beyond `worker.max_open_groups`.
    GroupLimit,
}

/// A record of `topic` went to the dead-letter topic.
pub struct DeadLettered<'a> {
    pub reason: DeadLetterReason,
    pub topic: &'a str,
    pub detail: &'a str,
}

impl DeadLettered<'_> {
    pub fn emit(self) {
        let reason = match self.reason {
            DeadLetterReason::Undecodable => "undecodable",
            DeadLetterReason::GroupLimit => "group_limit",
        };
        metrics::counter!("quench_dlq_records_total", "reason" => reason).increment(1);
        tracing::debug!(topic = self.topic, reason, detail = self.detail, "record dead-lettered");
    }
}

/// A worker's open transaction was aborted: its partitions were revoked before it committed, so
/// what it had produced is discarded and read again by the partitions' next owner. A few per
/// rebalance are normal; a steady rate means members keep leaving the group.
pub struct TransactionAborted;

impl TransactionAborted {
    pub fn emit(self) {
        metrics::counter!("quench_transaction_aborts_total", "reason" => "revoked").increment(1);
        tracing::warn!("transaction aborted: partitions revoked before it committed");
    }
}

/// A worker restored the state of the partitions it was assigned from the changelog; until it is
/// done it reads no alerts, so this is the pause each rebalance costs.
pub struct Restored {
    pub partitions: usize,
    pub elapsed: Duration,
}

impl Restored {
    pub fn emit(self) {
        metrics::gauge!("quench_restore_seconds").set(self.elapsed.as_secs_f64());
        tracing::info!(partitions = self.partitions, elapsed_ms = self.elapsed.as_millis() as u64, "restore finished");
    }
}

/// A person's acknowledgement or resolution reached the worker.
pub struct ActionApplied<'a> {
    pub action: &'a quench_schemas::IncidentAction,
    /// False when no open incident of the partition changed.
    pub applied: bool,
}

impl ActionApplied<'_> {
    pub fn emit(self) {
        let outcome = if self.applied { "applied" } else { "no_change" };
        metrics::counter!("quench_actions_total", "outcome" => outcome).increment(1);
        let action = self.action;
        tracing::info!(
            incident = %action.incident_id, kind = ?action.kind, actor = %action.actor, action = %action.action_id, outcome,
            "incident action"
        );
    }
}

/// The worker committed a transaction.
pub struct Committed {
    pub incidents: usize,
    pub routing_events: usize,
    pub elapsed: Duration,
    pub open_groups: usize,
    pub open_fingerprints: usize,
    /// New alerts counted but not tracked one by one: their group holds as many as it may.
    pub untracked_alerts: usize,
    /// How far event time trails the wall clock, for the partition furthest behind.
    pub watermark_delay: Option<Duration>,
}

impl Committed {
    pub fn emit(self) {
        metrics::counter!("quench_incident_updates_total").increment(self.incidents as u64);
        metrics::counter!("quench_routing_events_total").increment(self.routing_events as u64);
        metrics::histogram!("quench_transaction_seconds").record(self.elapsed.as_secs_f64());
        metrics::gauge!("quench_open_groups").set(self.open_groups as f64);
        metrics::gauge!("quench_open_fingerprints").set(self.open_fingerprints as f64);
        if self.untracked_alerts > 0 {
            metrics::counter!("quench_untracked_alerts_total").increment(self.untracked_alerts as u64);
            tracing::warn!(
                alerts = self.untracked_alerts,
                bound = quench_core::window::MAX_TRACKED_ALERTS,
                "a group holds as many alerts as it tracks: new ones are counted and recorded, not tracked one by one"
            );
        }
        if let Some(delay) = self.watermark_delay {
            metrics::gauge!("quench_watermark_delay_seconds").set(delay.as_secs_f64());
        }
    }
}

/// The classifier answered the incidents of one flush.
pub struct Classified {
    pub elapsed: Duration,
}

impl Classified {
    pub fn emit(self) {
        metrics::histogram!("quench_classify_seconds").record(self.elapsed.as_secs_f64());
    }
}

/// A consumer's poll returned an error.
pub struct ConsumerError<'a> {
    pub role: &'a str,
    pub error: &'a rdkafka::error::KafkaError,
    /// It will not pass: the process stops.
    pub lasting: bool,
}

impl ConsumerError<'_> {
    pub fn emit(self) {
        let kind = if self.lasting { "lasting" } else { "transient" };
        metrics::counter!("quench_consumer_errors_total", "role" => self.role.to_string(), "kind" => kind).increment(1);
        if self.lasting {
            tracing::error!(role = self.role, error = %self.error, "consumer error that will not pass; stopping");
        } else {
            tracing::warn!(role = self.role, error = %self.error, "consumer error; librdkafka recovers, consumption goes on");
        }
    }
}

/// librdkafka reported a partition's consumer lag.
pub struct ConsumerLag<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub lag: i64,
}

impl ConsumerLag<'_> {
    pub fn emit(self) {
        metrics::gauge!("quench_consumer_lag", "topic" => self.topic.to_string(), "partition" => self.partition.to_string())
            .set(self.lag as f64);
    }
}

/// A rules file changed and was read again.
pub struct RulesReloaded<'a> {
    /// `windowing` or `routing`.
    pub rules: &'static str,
    /// Why the new file was rejected (the rules in force stay), if it was.
    pub rejected: Option<&'a str>,
}

impl RulesReloaded<'_> {
    pub fn emit(self) {
        let rules = self.rules;
        match self.rejected {
            None => {
                metrics::counter!("quench_rules_reloads_total", "rules" => rules, "outcome" => "applied").increment(1);
                tracing::info!(rules, "rules reloaded");
            }
            Some(error) => {
                metrics::counter!("quench_rules_reloads_total", "rules" => rules, "outcome" => "rejected").increment(1);
                tracing::error!(rules, error, "new rules rejected; the previous rules stay in force");
            }
        }
    }
}

/// The sink wrote a batch to ClickHouse and committed its offsets.
pub struct SinkWrote {
    pub rows: usize,
}

impl SinkWrote {
    pub fn emit(self) {
        metrics::counter!("quench_sink_rows_total").increment(self.rows as u64);
    }
}

/// A ClickHouse insert failed; the sink pauses and retries.
pub struct SinkInsertFailed<'a> {
    pub error: &'a str,
    pub retry_in: Duration,
    pub rows: usize,
}

impl SinkInsertFailed<'_> {
    pub fn emit(self) {
        metrics::counter!("quench_sink_insert_failures_total").increment(1);
        tracing::warn!(
            error = self.error,
            retry_in_ms = self.retry_in.as_millis() as u64,
            rows = self.rows,
            "ClickHouse insert failed; pausing consumption and retrying"
        );
    }
}

/// ClickHouse refused a row for good; it went to the sink's dead-letter topic.
pub struct SinkRefusedRow<'a> {
    pub table: &'a str,
    pub error: &'a str,
}

impl SinkRefusedRow<'_> {
    pub fn emit(self) {
        metrics::counter!("quench_sink_refused_rows_total", "table" => self.table.to_string()).increment(1);
        tracing::error!(
            table = self.table,
            error = self.error,
            "ClickHouse refused a row for good; sent to the dead-letter topic"
        );
    }
}

/// The sink skipped a record it cannot decode (the worker dead-letters undecodable alerts).
pub struct SinkSkipped<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
    pub error: &'a str,
}

impl SinkSkipped<'_> {
    pub fn emit(self) {
        metrics::counter!("quench_sink_skipped_records_total", "topic" => self.topic.to_string()).increment(1);
        let Self { topic, partition, offset, error } = self;
        tracing::warn!(topic, partition, offset, error, "record skipped");
    }
}

/// A delivery finished: delivered, or failed for good (and dead-lettered).
pub struct NotificationFinished<'a> {
    pub key: &'a str,
    /// `event` or `escalation`.
    pub kind: &'static str,
    /// The reason it failed for good, if it did.
    pub failed: Option<&'a str>,
    /// From the worker's emission of the routing event to the end of the delivery (events only).
    pub since_emitted: Option<Duration>,
}

impl NotificationFinished<'_> {
    pub fn emit(self) {
        let outcome = match self.failed {
            None => "delivered",
            Some(reason) => {
                tracing::error!(key = self.key, reason, "delivery failed for good; sent to the DLQ");
                metrics::counter!("quench_notify_dead_letters_total", "reason" => "delivery_failed").increment(1);
                "failed"
            }
        };
        metrics::counter!("quench_notifications_total", "outcome" => outcome, "kind" => self.kind).increment(1);
        if let Some(latency) = self.since_emitted {
            metrics::histogram!("quench_notify_event_to_delivery_seconds").record(latency.as_secs_f64());
        }
    }
}

/// A routing event the notifier cannot decode went to the notifications DLQ.
pub struct RoutingEventUndecodable<'a> {
    pub record: &'a str,
    pub error: &'a str,
}

impl RoutingEventUndecodable<'_> {
    pub fn emit(self) {
        metrics::counter!("quench_notify_dead_letters_total", "reason" => "undecodable").increment(1);
        tracing::warn!(record = self.record, error = self.error, "undecodable routing event sent to the DLQ");
    }
}

/// The notifier's delivery queues: their length, and whether they just filled (reading paused)
/// or drained (reading resumed).
pub struct DeliveriesQueued {
    pub queued: usize,
    /// `Some(true)` when the bound was reached, `Some(false)` when reading resumed.
    pub paused: Option<bool>,
    pub bound: usize,
}

impl DeliveriesQueued {
    pub fn emit(self) {
        metrics::gauge!("quench_notify_queued").set(self.queued as f64);
        match self.paused {
            Some(true) => {
                metrics::counter!("quench_notify_paused_total").increment(1);
                tracing::warn!(
                    queued = self.queued,
                    bound = self.bound,
                    "delivery queues full (notify.max_queued): reading of routing events paused"
                );
            }
            Some(false) => tracing::info!(queued = self.queued, "delivery queues drained: reading resumed"),
            None => {}
        }
    }
}

/// Deliveries that the delivery log says were made already.
pub struct DuplicatesSkipped {
    pub count: u64,
}

impl DuplicatesSkipped {
    pub fn emit(self) {
        if self.count > 0 {
            metrics::counter!("quench_notify_duplicates_skipped_total").increment(self.count);
        }
    }
}

/// A delivery went without its "looks like" line (similar resolved incidents).
pub enum SimilarSkipped {
    /// Every lookup slot was taken: the notifier does not wait for ClickHouse.
    Busy,
    /// The lookup took longer than it may.
    Slow,
}

impl SimilarSkipped {
    pub fn emit(self, incident_id: &str) {
        let reason = match self {
            Self::Busy => "busy",
            Self::Slow => {
                tracing::warn!(incident = %incident_id, "similar incidents took too long; sent without them");
                "slow"
            }
        };
        metrics::counter!("quench_notify_similar_skipped_total", "reason" => reason).increment(1);
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    /// Every metric any of Quench's crates emits.
    fn emitted() -> BTreeSet<&'static str> {
        [super::METRICS, quench_classify::events::METRICS, quench_ingest::events::METRICS]
            .into_iter()
            .chain([quench_notify::events::METRICS])
            .flatten()
            .copied()
            .collect()
    }

    /// The alerting rules and the pipeline's dashboard ask only for metrics Quench emits (a
    /// renamed metric would otherwise leave a rule that never fires and a panel that stays empty).
    #[test]
    fn the_alerting_rules_and_the_pipeline_dashboard_name_only_emitted_metrics() {
        let emitted = emitted();
        for (file, text) in [
            ("infra/prometheus/quench.rules.yml", include_str!("../../infra/prometheus/quench.rules.yml")),
            ("infra/grafana/pipeline.json", include_str!("../../infra/grafana/pipeline.json")),
        ] {
            let named: BTreeSet<&str> = text
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .filter(|word| word.starts_with("quench_"))
                // A summary's series: the metric's own name with a suffix.
                .map(|word| word.strip_suffix("_count").or(word.strip_suffix("_sum")).unwrap_or(word))
                .collect();
            assert!(named.len() >= 8, "{file} names metrics");
            let unknown: Vec<_> = named.difference(&emitted).collect();
            assert!(unknown.is_empty(), "{file} names metrics nothing emits: {unknown:?}");
        }
    }

    /// The README lists every metric Quench emits, and names no other.
    #[test]
    fn the_readme_lists_every_metric_and_only_those() {
        let emitted = emitted();
        let readme = include_str!("../../README.md");
        let named: BTreeSet<&str> = readme
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            // `quench_migrations` is the table of applied migrations, not a metric.
            .filter(|word| word.starts_with("quench_") && *word != "quench_migrations")
            .collect();
        let unlisted: Vec<_> = emitted.difference(&named).collect();
        assert!(unlisted.is_empty(), "README.md does not list {unlisted:?}");
        let unknown: Vec<_> = named.difference(&emitted).collect();
        assert!(unknown.is_empty(), "README.md names metrics nothing emits: {unknown:?}");
    }
}
