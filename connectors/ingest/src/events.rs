//! What the ingest connector reports: one struct per observable event, whose `emit()` updates the
//! metrics, so that every metric name is written once, here, and listed in [`METRICS`] (checked
//! against the README by the pipeline's tests).

use std::time::Duration;

/// Every metric this crate emits.
pub const METRICS: &[&str] = &[
    "quench_ingest_requests_total",
    "quench_ingest_request_seconds",
    "quench_ingest_alerts_total",
    "quench_ingest_quota_rejected_alerts_total",
];

/// A webhook request was answered.
pub struct RequestAnswered {
    pub format: &'static str,
    pub status: u16,
    pub elapsed: Duration,
}

impl RequestAnswered {
    pub fn emit(self) {
        let status = self.status.to_string();
        metrics::counter!("quench_ingest_requests_total", "format" => self.format, "status" => status).increment(1);
        metrics::histogram!("quench_ingest_request_seconds", "format" => self.format)
            .record(self.elapsed.as_secs_f64());
    }
}

/// A request refused with 429: its tenant is over `ingest.quotas`.
pub struct QuotaExceeded<'a> {
    pub tenant: &'a str,
    pub alerts: usize,
}

impl QuotaExceeded<'_> {
    pub fn emit(self) {
        metrics::counter!("quench_ingest_quota_rejected_alerts_total", "tenant" => self.tenant.to_string())
            .increment(self.alerts as u64);
    }
}

/// Alerts of a source that Kafka acknowledged.
pub struct AlertsAccepted<'a> {
    pub source: &'a str,
    pub count: usize,
}

impl AlertsAccepted<'_> {
    pub fn emit(self) {
        metrics::counter!("quench_ingest_alerts_total", "source" => self.source.to_string())
            .increment(self.count as u64);
    }
}
