//! Traced alerts in the worker (see `quench-trace`): an alert read with a `traceparent` header
//! gets a span from its reading to the commit of the transaction that holds its effects, and the
//! next routing event of each group it joined carries that span's context to the notifier.
//! Without an exporter (`trace.otlp_endpoint` empty) nothing is followed; otherwise untraced
//! alerts cost one look at their headers. A producer instrumented with OpenTelemetry that writes
//! `alerts` itself puts its own `traceparent` there: its kept traces continue into Quench.

use quench_schemas::{headers, Alert};
use rdkafka::{
    message::{Header, OwnedHeaders, OwnedMessage},
    Message,
};

use crate::kafka::header;

#[derive(Default)]
pub struct Traced {
    /// Spans of the alerts read since the last commit.
    spans: Vec<tracing::Span>,
    /// [`group`] → the trace context its next routing event carries.
    groups: quench_trace::Pending,
}

/// A group as a routing event names it: its tenant and Alertmanager's group key.
pub fn group(tenant: &str, alertmanager_group_key: &str) -> String {
    format!("{tenant}|{alertmanager_group_key}")
}

impl Traced {
    /// Starts `alert`'s span if `message` carries a trace context; `groups` names the groups the
    /// alert joins (asked only then).
    pub fn read(&mut self, message: &OwnedMessage, alert: &Alert, groups: impl FnOnce() -> Vec<String>) {
        if !quench_trace::exporting() {
            return;
        }
        let Some(parent) = header(message, headers::TRACEPARENT) else { return };
        let alertname = alert.labels.get("alertname").map(String::as_str).unwrap_or_default();
        let span =
            tracing::info_span!("quench.worker", partition = message.partition(), offset = message.offset(), alertname);
        quench_trace::follow(&span, parent);
        if let Some(context) = quench_trace::traceparent(&span) {
            for group in groups() {
                self.groups.insert(group, context.clone());
            }
        }
        self.spans.push(span);
    }

    /// The headers of a routing event of `tenant`'s group with Alertmanager's key `group_key`,
    /// with the trace context of its latest traced alert (once: the next event of the group is
    /// that of later alerts).
    pub fn routing_headers(&mut self, tenant: &str, group_key: &str) -> Option<OwnedHeaders> {
        if self.groups.is_empty() {
            return None;
        }
        let context = self.groups.take(&group(tenant, group_key))?;
        Some(OwnedHeaders::new().insert(Header { key: headers::TRACEPARENT, value: Some(&context) }))
    }

    /// The transaction committed: the spans of the alerts in it end.
    pub fn committed(&mut self) {
        self.spans.clear();
    }

    /// The partitions were revoked: their transaction is aborted and their groups are another
    /// worker's now.
    pub fn revoked(&mut self) {
        self.spans.clear();
        self.groups.clear();
    }
}
