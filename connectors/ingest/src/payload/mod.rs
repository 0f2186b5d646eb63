//! The payload parsers: pure functions from a request body to Quench alerts, one module per
//! sender's format. Every rejection names the field (as a JSON path) and the problem, so that the
//! sender's operator can fix the request from the 400 alone.

mod alertmanager;
mod generic;
mod grafana;
mod pagerduty;
mod prometheus;
mod time;

use std::collections::BTreeMap;

use quench_schemas::{Alert, AlertStatus};
use serde::{de::DeserializeOwned, Deserialize, Serialize};

/// The payload formats, one per endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// Alertmanager's webhook, version 4 (`POST /v1/alertmanager`).
    Alertmanager,
    /// Grafana alerting's webhook contact point (`POST /v1/grafana`).
    Grafana,
    /// PagerDuty Events API v2 (`POST /v2/enqueue`).
    Pagerduty,
    /// Alertmanager's own API, as Prometheus posts to it (`POST /api/v2/alerts`).
    Prometheus,
    /// Quench's plain JSON (`POST /v1/alerts`).
    Generic,
}

impl Format {
    pub const ALL: [Format; 5] = [Self::Alertmanager, Self::Grafana, Self::Pagerduty, Self::Prometheus, Self::Generic];

    pub fn name(self) -> &'static str {
        match self {
            Self::Alertmanager => "alertmanager",
            Self::Grafana => "grafana",
            Self::Pagerduty => "pagerduty",
            Self::Prometheus => "prometheus",
            Self::Generic => "generic",
        }
    }

    pub fn named(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.name() == name)
    }
}

/// Bounds on what one request may carry, beyond the body size.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    pub max_alerts: usize,
    pub max_labels: usize,
    pub max_label_name_bytes: usize,
    pub max_label_value_bytes: usize,
    /// Annotations are free text (descriptions, runbooks), so they get a larger budget per alert.
    pub max_annotation_bytes: usize,
    /// A sender's `startsAt` older than this before the request (a wrong clock, a default of
    /// 1970) is moved to that bound, the original kept in the annotation `sender_starts_at`:
    /// incidents and ClickHouse partitions take their time from it.
    pub max_starts_at_age_ms: i64,
    /// Likewise for a `startsAt` (or `endsAt`) further in the future than this.
    pub max_future_ms: i64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_alerts: 10_000,
            max_labels: 64,
            max_label_name_bytes: 256,
            max_label_value_bytes: 4_096,
            max_annotation_bytes: 64 << 10,
            max_starts_at_age_ms: 30 * 24 * 3_600_000,
            max_future_ms: 3_600_000,
        }
    }
}

/// Who sent the request, as the server resolved it.
#[derive(Debug, Clone)]
pub struct Context<'a> {
    pub source: &'a str,
    pub tenant: &'a str,
    /// Milliseconds since the epoch.
    pub received_at: i64,
    pub limits: &'a Limits,
}

/// What a parsed request holds.
#[derive(Debug, Clone, PartialEq)]
pub struct Parsed {
    pub alerts: Vec<Alert>,
    /// PagerDuty answers with the event's dedup key.
    pub dedup_key: Option<String>,
}

/// A request the sender must fix: `field` is a JSON path into the body (empty for the body).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{problem}", if field.is_empty() { String::new() } else { format!("{field}: ") })]
pub struct PayloadError {
    pub field: String,
    pub problem: String,
}

impl PayloadError {
    pub fn new(field: impl Into<String>, problem: impl Into<String>) -> Self {
        Self { field: field.into(), problem: problem.into() }
    }
}

pub fn parse(format: Format, body: &[u8], context: &Context) -> Result<Parsed, PayloadError> {
    let mut parsed = match format {
        Format::Alertmanager => alertmanager::parse(body, context),
        Format::Grafana => grafana::parse(body, context),
        Format::Pagerduty => pagerduty::parse(body, context),
        Format::Prometheus => prometheus::parse(body, context),
        Format::Generic => generic::parse(body, context),
    }?;
    if parsed.alerts.is_empty() {
        return Err(PayloadError::new("alerts", "must hold at least one alert"));
    }
    // Alertmanager's webhook and PagerDuty's events say when an alert resolves, and re-send a
    // firing one only on a change or at repeat_interval (Alertmanager's endsAt of a firing alert
    // is Go's zero time): such alerts must not time out between two sends.
    let stateful = matches!(format, Format::Alertmanager | Format::Pagerduty);
    parsed.alerts.iter_mut().for_each(|alert| alert.stateful = stateful);
    Ok(parsed)
}

/// What every format yields per alert before the common checks.
struct Fields {
    /// When the sender does not say, an end time in the past means resolved.
    status: Option<AlertStatus>,
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
    starts_at: Option<i64>,
    ends_at: Option<i64>,
    generator_url: Option<String>,
    fingerprint: Option<String>,
}

/// The alert, checked against the limits; `path` locates it in the body for error messages.
fn build(fields: Fields, path: &str, context: &Context) -> Result<Alert, PayloadError> {
    let received_at = context.received_at;
    let status = fields.status.unwrap_or(match fields.ends_at {
        Some(end) if end <= received_at => AlertStatus::Resolved,
        _ => AlertStatus::Firing,
    });
    let ends_at = match status {
        AlertStatus::Resolved => fields.ends_at.or(Some(received_at)),
        AlertStatus::Firing => fields.ends_at,
    };
    let alert = Alert {
        source: context.source.to_string(),
        status,
        // An empty value is no label, as Alertmanager's API has it: fingerprints and group keys
        // then agree with Alertmanager's.
        labels: fields.labels.into_iter().filter(|(_, value)| !value.is_empty()).collect(),
        annotations: fields.annotations,
        starts_at: fields.starts_at.unwrap_or(received_at),
        ends_at,
        received_at,
        generator_url: fields.generator_url.filter(|url| !url.is_empty()),
        fingerprint: fields.fingerprint,
        tenant: context.tenant.to_string(),
        stateful: false,
    };
    check_alert(&alert, path, context.limits)?;
    Ok(clamp_times(alert, context.limits))
}

/// Keeps the sender's times within the window around `received_at` that `limits` allow, noting
/// the originals of those moved: one sender's clock must not scatter incidents over centuries
/// (or ClickHouse inserts over more partitions than one insert may touch).
fn clamp_times(mut alert: Alert, limits: &Limits) -> Alert {
    let earliest = alert.received_at.saturating_sub(limits.max_starts_at_age_ms);
    let latest = alert.received_at.saturating_add(limits.max_future_ms);
    let starts_at = alert.starts_at.clamp(earliest, latest);
    if starts_at != alert.starts_at {
        alert.annotations.insert("sender_starts_at".into(), alert.starts_at.to_string());
        alert.starts_at = starts_at;
    }
    if let Some(ends_at) = alert.ends_at {
        // Alertmanager sends endsAt a resolve timeout ahead for firing alerts: far ahead is fine,
        // centuries are not; before the start is no end at all.
        let clamped =
            ends_at.clamp(starts_at, latest.max(alert.received_at.saturating_add(limits.max_starts_at_age_ms)));
        if clamped != ends_at {
            alert.annotations.insert("sender_ends_at".into(), ends_at.to_string());
            alert.ends_at = Some(clamped);
        }
    }
    alert
}

/// The fuzz targets' body (`connectors/ingest/fuzz`): parses `body` and checks, when it is
/// accepted, that every alert keeps within the limits and belongs to the request's tenant.
pub fn fuzz(format: Format, body: &[u8]) {
    let limits = Limits::default();
    let context = Context { source: "fuzz", tenant: "fuzz-tenant", received_at: 1_700_000_000_000, limits: &limits };
    if let Ok(parsed) = parse(format, body, &context) {
        assert!(!parsed.alerts.is_empty() && parsed.alerts.len() <= limits.max_alerts);
        for alert in &parsed.alerts {
            assert_eq!(alert.tenant, "fuzz-tenant");
            assert!(check_alert(alert, "", &limits).is_ok());
            assert!(alert.ends_at.is_some() || alert.status == AlertStatus::Firing);
        }
    }
}

/// Deserialises JSON, turning serde's error into the path of the offending field.
fn from_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, PayloadError> {
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
        let field = e.path().to_string();
        let field = if field == "." { String::new() } else { field };
        PayloadError::new(field, e.into_inner().to_string())
    })?;
    deserializer.end().map_err(|e| PayloadError::new("", e.to_string()))?;
    Ok(value)
}

/// Converts a request's alerts: `fields` reads one (located by its path under `prefix`), then
/// each is built and checked. A request with more alerts than allowed is rejected first.
fn build_each<T>(
    items: Vec<T>,
    prefix: &str,
    context: &Context,
    fields: impl Fn(T, &str) -> Result<Fields, PayloadError>,
) -> Result<Parsed, PayloadError> {
    check_count(items.len(), prefix, context.limits)?;
    let alerts = items
        .into_iter()
        .enumerate()
        .map(|(i, item)| {
            let path = format!("{prefix}[{i}]");
            build(fields(item, &path)?, &path, context)
        })
        .collect::<Result<_, _>>()?;
    Ok(Parsed { alerts, dedup_key: None })
}

/// Rejects a request with more alerts than allowed, before any is converted.
fn check_count(len: usize, field: &str, limits: &Limits) -> Result<(), PayloadError> {
    if len > limits.max_alerts {
        return Err(PayloadError::new(field, format!("{len} alerts, more than the limit of {}", limits.max_alerts)));
    }
    Ok(())
}

/// Checks one alert's labels and annotations against the limits. `path` locates the alert.
fn check_alert(alert: &Alert, path: &str, limits: &Limits) -> Result<(), PayloadError> {
    check_labels(&alert.labels, &format!("{path}.labels"), limits)?;
    let annotation_bytes: usize = alert.annotations.iter().map(|(k, v)| k.len() + v.len()).sum();
    if annotation_bytes > limits.max_annotation_bytes {
        return Err(PayloadError::new(
            format!("{path}.annotations"),
            format!("{annotation_bytes} bytes, more than the limit of {}", limits.max_annotation_bytes),
        ));
    }
    Ok(())
}

fn check_labels(labels: &BTreeMap<String, String>, path: &str, limits: &Limits) -> Result<(), PayloadError> {
    if labels.is_empty() {
        return Err(PayloadError::new(path, "must hold at least one label (labels identify the alert)"));
    }
    if labels.len() > limits.max_labels {
        return Err(PayloadError::new(
            path,
            format!("{} labels, more than the limit of {}", labels.len(), limits.max_labels),
        ));
    }
    for (name, value) in labels {
        if !valid_label_name(name) {
            return Err(PayloadError::new(
                path,
                format!("label name {name:?} is not valid: use letters, digits and _, not starting with a digit"),
            ));
        }
        if name.len() > limits.max_label_name_bytes {
            return Err(PayloadError::new(
                path,
                format!("label name of {} bytes, more than the limit of {}", name.len(), limits.max_label_name_bytes),
            ));
        }
        if value.len() > limits.max_label_value_bytes {
            return Err(PayloadError::new(
                format!("{path}.{name}"),
                format!("{} bytes, more than the limit of {}", value.len(), limits.max_label_value_bytes),
            ));
        }
    }
    Ok(())
}

/// Prometheus's label name rule; it keeps names usable in PromQL, ClickHouse maps and route
/// matchers alike.
fn valid_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub fn context(limits: &Limits) -> Context<'_> {
        Context { source: "src", tenant: "acme", received_at: 1_700_000_000_000, limits }
    }

    pub fn parse_ok(format: Format, body: &str) -> Parsed {
        parse(format, body.as_bytes(), &context(&Limits::default())).unwrap()
    }

    pub fn parse_err(format: Format, body: &str) -> PayloadError {
        parse(format, body.as_bytes(), &context(&Limits::default())).unwrap_err()
    }

    #[test]
    fn sender_times_far_from_the_request_are_moved_into_its_window_and_kept_as_annotations() {
        let body = |starts: &str, ends: &str| {
            format!(r#"[{{"labels": {{"alertname": "Skewed"}}, "startsAt": "{starts}", "endsAt": "{ends}"}}]"#)
        };
        let received = 1_700_000_000_000;
        let limits = Limits::default();
        let alert = &parse_ok(Format::Prometheus, &body("1971-01-01T00:00:00Z", "2999-01-01T00:00:00Z")).alerts[0];
        assert_eq!(alert.starts_at, received - limits.max_starts_at_age_ms);
        assert_eq!(alert.annotations["sender_starts_at"], "31536000000");
        assert_eq!(alert.ends_at, Some(received + limits.max_starts_at_age_ms));
        assert!(alert.annotations.contains_key("sender_ends_at"));
        let ok = &parse_ok(Format::Prometheus, &body("2023-11-14T20:00:00Z", "2023-11-14T23:00:00Z")).alerts[0];
        assert!(ok.annotations.is_empty(), "times within the window are left alone: {ok:?}");
    }

    #[test]
    fn alerts_from_senders_that_report_resolutions_are_marked_stateful() {
        let webhook = r#"{"version": "4", "status": "firing", "alerts": [{"status": "firing", "labels": {"alertname": "X"},
            "startsAt": "2023-11-14T22:00:00Z", "endsAt": "0001-01-01T00:00:00Z"}]}"#;
        let alert = &parse_ok(Format::Alertmanager, webhook).alerts[0];
        assert!(alert.stateful && alert.ends_at.is_none(), "{alert:?}");
        assert!(!parse_ok(Format::Prometheus, r#"[{"labels": {"alertname": "X"}}]"#).alerts[0].stateful);
    }

    #[test]
    fn labels_with_empty_values_are_dropped_as_alertmanager_does() {
        let alert = &parse_ok(Format::Prometheus, r#"[{"labels": {"alertname": "X", "env": ""}}]"#).alerts[0];
        assert_eq!(alert.labels.keys().collect::<Vec<_>>(), ["alertname"]);
        let e = parse_err(Format::Prometheus, r#"[{"labels": {"alertname": ""}}]"#);
        assert!(e.problem.contains("at least one label"), "{e}");
    }

    #[test]
    fn errors_name_the_field_and_the_problem() {
        let e = parse_err(Format::Generic, r#"{"alerts": [{"labels": {"alertname": 5}}]}"#);
        assert_eq!(e.field, "alerts[0].labels.alertname");
        assert!(e.problem.contains("expected a string"), "{e}");
        assert_eq!(e.to_string(), format!("alerts[0].labels.alertname: {}", e.problem));
    }

    #[test]
    fn malformed_bodies_are_errors_not_panics() {
        for format in Format::ALL {
            for body in ["", "{", "[", "null", "\"x\"", "{\"alerts\": [}", "[[[[[[", "{} trailing"] {
                assert!(parse(format, body.as_bytes(), &context(&Limits::default())).is_err(), "{format:?} {body:?}");
            }
            for deep in ["[".repeat(100_000), format!("{{\"alerts\":{}", "{\"a\":".repeat(50_000))] {
                assert!(parse(format, deep.as_bytes(), &context(&Limits::default())).is_err());
            }
            assert!(parse(format, b"{\"alerts\": \"\xff\xfe\"}", &context(&Limits::default())).is_err());
        }
    }

    #[test]
    fn limits_are_enforced_with_the_field_named() {
        let limits = Limits { max_label_value_bytes: 8, max_labels: 2, max_alerts: 1, ..Limits::default() };
        let run = |body: &str| parse(Format::Generic, body.as_bytes(), &context(&limits)).unwrap_err();
        let e = run(r#"[{"labels": {"alertname": "much too long"}}]"#);
        assert_eq!(e.field, "[0].labels.alertname");
        assert!(run(r#"[{"labels": {"a": "1", "b": "2", "c": "3"}}]"#).problem.contains("3 labels"));
        assert!(run(r#"[{"labels": {"a": "1"}}, {"labels": {"a": "2"}}]"#).problem.contains("2 alerts"));
        assert!(run(r#"[{"labels": {"0bad": "1"}}]"#).problem.contains("not valid"));
        assert!(run(r#"[{"labels": {}}]"#).problem.contains("at least one label"));
        assert!(run("[]").problem.contains("at least one alert"));
    }
}
