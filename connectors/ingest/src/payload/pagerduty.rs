//! PagerDuty Events API v2 (`POST /v2/enqueue`): one event per request, `trigger`, `acknowledge`
//! or `resolve`, tied together by `dedup_key`.
//!
//! Acknowledge and resolve carry only the dedup key, so every event of one key becomes an alert
//! with the same identity: labels `alertname` (the source's name) and `dedup_key`, and a
//! fingerprint over just those two. A trigger adds the payload's severity, source, component,
//! group and class as labels; the given fingerprint keeps them from changing the identity.

use std::collections::BTreeMap;

use quench_schemas::{
    fingerprint::{fingerprint_hex, fnv1a},
    AlertStatus,
};
use serde::Deserialize;

use super::{build, from_json, time, Context, Fields, Parsed, PayloadError};

/// PagerDuty's limits on these fields, checked the same way so that events accepted here would
/// be accepted there too.
const MAX_DEDUP_KEY: usize = 255;
const MAX_SUMMARY: usize = 1024;

#[derive(Deserialize)]
struct Event {
    routing_key: String,
    event_action: Action,
    dedup_key: Option<String>,
    payload: Option<Payload>,
    client_url: Option<String>,
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum Action {
    Trigger,
    Acknowledge,
    Resolve,
}

#[derive(Deserialize)]
struct Payload {
    summary: String,
    source: String,
    severity: Severity,
    timestamp: Option<String>,
    component: Option<String>,
    group: Option<String>,
    class: Option<String>,
    custom_details: Option<serde_json::Value>,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum Severity {
    Critical,
    Error,
    Warning,
    Info,
}

impl Severity {
    fn as_str(self) -> &'static str {
        match self {
            Self::Critical => "critical",
            Self::Error => "error",
            Self::Warning => "warning",
            Self::Info => "info",
        }
    }
}

pub fn parse(body: &[u8], context: &Context) -> Result<Parsed, PayloadError> {
    let event: Event = from_json(body)?;
    if event.routing_key.is_empty() {
        return Err(PayloadError::new("routing_key", "must not be empty"));
    }
    let dedup_key = match (&event.dedup_key, event.event_action, &event.payload) {
        (Some(key), _, _) if key.is_empty() || key.len() > MAX_DEDUP_KEY => {
            return Err(PayloadError::new("dedup_key", format!("must be 1 to {MAX_DEDUP_KEY} characters")));
        }
        (Some(key), _, _) => key.clone(),
        (None, Action::Trigger, Some(payload)) => derived_dedup_key(&event.routing_key, payload),
        (None, _, _) => return Err(PayloadError::new("dedup_key", "is required to acknowledge or resolve")),
    };
    let identity: BTreeMap<String, String> =
        [("alertname", context.source), ("dedup_key", &dedup_key)].map(|(k, v)| (k.to_string(), v.to_string())).into();
    let fingerprint = fingerprint_hex(&identity);
    let mut fields = Fields {
        status: Some(AlertStatus::Firing),
        labels: identity,
        annotations: BTreeMap::new(),
        starts_at: None,
        ends_at: None,
        generator_url: event.client_url,
        fingerprint: Some(fingerprint),
    };
    match event.event_action {
        Action::Trigger => {
            let payload = event.payload.ok_or_else(|| PayloadError::new("payload", "is required to trigger"))?;
            add_payload(&mut fields, payload)?;
        }
        Action::Acknowledge => {
            fields.annotations.insert("pagerduty_action".into(), "acknowledge".into());
        }
        Action::Resolve => fields.status = Some(AlertStatus::Resolved),
    }
    Ok(Parsed { alerts: vec![build(fields, "", context)?], dedup_key: Some(dedup_key) })
}

fn add_payload(fields: &mut Fields, payload: Payload) -> Result<(), PayloadError> {
    if payload.summary.is_empty() || payload.summary.len() > MAX_SUMMARY {
        return Err(PayloadError::new("payload.summary", format!("must be 1 to {MAX_SUMMARY} characters")));
    }
    if payload.source.is_empty() {
        return Err(PayloadError::new("payload.source", "must not be empty"));
    }
    fields.starts_at = time::optional(payload.timestamp.as_deref(), "payload.timestamp")?;
    fields.labels.insert("severity".into(), payload.severity.as_str().into());
    fields.labels.insert("instance".into(), payload.source);
    for (name, value) in [("component", payload.component), ("group", payload.group), ("class", payload.class)] {
        if let Some(value) = value.filter(|v| !v.is_empty()) {
            fields.labels.insert(name.into(), value);
        }
    }
    fields.annotations.insert("summary".into(), payload.summary);
    if let Some(details) = payload.custom_details.filter(|d| !d.is_null()) {
        fields.annotations.insert("details".into(), details.to_string());
    }
    Ok(())
}

/// A trigger without a dedup key gets one derived from what identifies the event, so that a
/// client re-sending the same event after a 503 does not open a second alert.
fn derived_dedup_key(routing_key: &str, payload: &Payload) -> String {
    let parts = [
        routing_key,
        &payload.summary,
        &payload.source,
        payload.component.as_deref().unwrap_or_default(),
        payload.group.as_deref().unwrap_or_default(),
        payload.class.as_deref().unwrap_or_default(),
    ];
    let bytes = parts.iter().flat_map(|part| part.bytes().chain([0xff]));
    format!("{:016x}", fnv1a(bytes))
}

#[cfg(test)]
mod tests {
    use quench_schemas::AlertStatus;

    use crate::payload::{tests::*, Format};

    const TRIGGER: &str = r#"{
      "routing_key": "R0123456789abcdef0123456789abcde", "event_action": "trigger", "dedup_key": "disk-db-1",
      "payload": {"summary": "Disk 95% full on db-1", "source": "db-1.example.com", "severity": "critical",
                  "timestamp": "2023-11-14T22:13:20Z", "component": "postgres", "group": "prod-db",
                  "class": "disk", "custom_details": {"free_gb": 2}},
      "client": "Monitoring", "client_url": "https://monitoring.example.com"
    }"#;

    #[test]
    fn trigger_acknowledge_and_resolve_share_one_identity() {
        let trigger = parse_ok(Format::Pagerduty, TRIGGER);
        let alert = &trigger.alerts[0];
        assert_eq!(trigger.dedup_key.as_deref(), Some("disk-db-1"));
        assert_eq!(alert.labels["severity"], "critical");
        assert_eq!(alert.labels["instance"], "db-1.example.com");
        assert_eq!(alert.labels["alertname"], "src");
        assert_eq!(alert.annotations["details"], r#"{"free_gb":2}"#);
        assert_eq!(alert.starts_at, 1_700_000_000_000);

        let resolve = parse_ok(
            Format::Pagerduty,
            r#"{"routing_key": "R0123456789abcdef0123456789abcde", "event_action": "resolve", "dedup_key": "disk-db-1"}"#,
        );
        let ack = parse_ok(Format::Pagerduty, &resolve_to_ack());
        assert_eq!(resolve.alerts[0].status, AlertStatus::Resolved);
        assert_eq!(ack.alerts[0].annotations["pagerduty_action"], "acknowledge");
        assert_eq!(alert.fingerprint, resolve.alerts[0].fingerprint);
        assert_eq!(alert.fingerprint, ack.alerts[0].fingerprint);
    }

    fn resolve_to_ack() -> String {
        r#"{"routing_key": "R0123456789abcdef0123456789abcde", "event_action": "acknowledge", "dedup_key": "disk-db-1"}"#
            .into()
    }

    #[test]
    fn a_trigger_without_dedup_key_gets_a_stable_one() {
        let body = TRIGGER.replace(r#""dedup_key": "disk-db-1","#, "");
        let first = parse_ok(Format::Pagerduty, &body).dedup_key.unwrap();
        assert_eq!(first, parse_ok(Format::Pagerduty, &body).dedup_key.unwrap());
        assert_ne!(
            first,
            parse_ok(Format::Pagerduty, &body.replace("db-1.example", "db-2.example")).dedup_key.unwrap()
        );
    }

    #[test]
    fn invalid_events_name_the_field() {
        assert_eq!(
            parse_err(Format::Pagerduty, &TRIGGER.replace("\"critical\"", "\"urgent\"")).field,
            "payload.severity"
        );
        assert_eq!(parse_err(Format::Pagerduty, &TRIGGER.replace("\"trigger\"", "\"snooze\"")).field, "event_action");
        let no_key = r#"{"routing_key": "R0123456789abcdef0123456789abcde", "event_action": "resolve"}"#;
        assert_eq!(parse_err(Format::Pagerduty, no_key).field, "dedup_key");
        let no_payload =
            r#"{"routing_key": "R0123456789abcdef0123456789abcde", "event_action": "trigger", "dedup_key": "k"}"#;
        assert_eq!(parse_err(Format::Pagerduty, no_payload).field, "payload");
        assert_eq!(
            parse_err(Format::Pagerduty, &TRIGGER.replace("Disk 95% full on db-1", "")).field,
            "payload.summary"
        );
    }
}
