//! Quench's own JSON for senders with no format of their own (scripts, cron jobs, in-house
//! tools): `{"alerts": [...]}` or a bare array. Times are RFC 3339 strings or epoch milliseconds.
//!
//! ```json
//! {"alerts": [{"labels": {"alertname": "BackupFailed", "job": "nightly"},
//!              "annotations": {"summary": "backup of db-1 failed"},
//!              "status": "firing", "starts_at": "2024-05-01T02:00:00Z"}]}
//! ```

use std::collections::BTreeMap;

use quench_schemas::AlertStatus;
use serde::Deserialize;

use super::{build_each, from_json, time, Context, Fields, Parsed, PayloadError};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GenericAlert {
    labels: BTreeMap<String, String>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
    status: Option<AlertStatus>,
    starts_at: Option<Time>,
    ends_at: Option<Time>,
    generator_url: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Time {
    Millis(i64),
    Text(String),
}

impl Time {
    fn millis(self, field: &str) -> Result<Option<i64>, PayloadError> {
        match self {
            Self::Millis(ms) => Ok(Some(ms)),
            Self::Text(text) => time::parse_rfc3339(&text, field),
        }
    }
}

fn millis(time: Option<Time>, field: &str) -> Result<Option<i64>, PayloadError> {
    time.map_or(Ok(None), |t| t.millis(field))
}

pub fn parse(body: &[u8], context: &Context) -> Result<Parsed, PayloadError> {
    // serde's untagged enums report only "did not match any variant"; choosing the variant by
    // the first byte keeps the path of the offending field in the error.
    let (alerts, prefix) = match body.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'[') => (from_json::<Vec<GenericAlert>>(body)?, ""),
        _ => (from_json::<Wrapped>(body)?.alerts, "alerts"),
    };
    build_each(alerts, prefix, context, |alert, path| {
        Ok(Fields {
            status: alert.status,
            labels: alert.labels,
            annotations: alert.annotations,
            starts_at: millis(alert.starts_at, &format!("{path}.starts_at"))?,
            ends_at: millis(alert.ends_at, &format!("{path}.ends_at"))?,
            generator_url: alert.generator_url,
            fingerprint: None,
        })
    })
}

#[derive(Deserialize)]
struct Wrapped {
    alerts: Vec<GenericAlert>,
}

#[cfg(test)]
mod tests {
    use quench_schemas::AlertStatus;

    use crate::payload::{tests::*, Format};

    #[test]
    fn wrapped_and_bare_bodies_with_either_time_form() {
        let wrapped = parse_ok(
            Format::Generic,
            r#"{"alerts": [{"labels": {"alertname": "BackupFailed"}, "starts_at": "2023-11-14T22:13:20Z",
                            "annotations": {"summary": "s"}}]}"#,
        );
        assert_eq!(wrapped.alerts[0].starts_at, 1_700_000_000_000);
        let bare = parse_ok(
            Format::Generic,
            r#" [{"labels": {"alertname": "BackupFailed"}, "starts_at": 1700000000000, "ends_at": 1600000000000}]"#,
        );
        assert_eq!(bare.alerts[0].starts_at, 1_700_000_000_000);
        assert_eq!(bare.alerts[0].status, AlertStatus::Resolved, "ended before it was received");
    }

    #[test]
    fn unknown_fields_are_named_rather_than_dropped() {
        let e = parse_err(Format::Generic, r#"{"alerts": [{"labels": {"a": "b"}, "severity": "high"}]}"#);
        assert_eq!(e.field, "alerts[0].severity");
        assert!(e.problem.contains("unknown field `severity`"), "{e}");
        let e = parse_err(Format::Generic, r#"{"alerts": [{"labels": {"a": "b"}, "starts_at": true}]}"#);
        assert_eq!(e.field, "alerts[0].starts_at");
    }
}
