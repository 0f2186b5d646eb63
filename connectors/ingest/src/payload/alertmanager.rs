//! Alertmanager's webhook (`webhook_config`), payload version 4: a notification for one group,
//! with every alert of the group in `alerts`.

use std::collections::BTreeMap;

use quench_schemas::AlertStatus;
use serde::Deserialize;

use super::{build_each, from_json, time, Context, Fields, Parsed, PayloadError};

#[derive(Deserialize)]
struct Notification {
    version: String,
    alerts: Vec<WebhookAlert>,
}

/// One alert as Alertmanager's and Grafana's webhooks both send it.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct WebhookAlert {
    status: AlertStatus,
    labels: BTreeMap<String, String>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
    starts_at: Option<String>,
    ends_at: Option<String>,
    #[serde(rename = "generatorURL")]
    generator_url: Option<String>,
}

impl WebhookAlert {
    /// `path` locates the alert in the body; `extra` annotations come from format-specific fields.
    pub(super) fn fields(self, path: &str, extra: BTreeMap<String, String>) -> Result<Fields, PayloadError> {
        let mut annotations = self.annotations;
        annotations.extend(extra);
        Ok(Fields {
            status: Some(self.status),
            labels: self.labels,
            annotations,
            starts_at: time::optional(self.starts_at.as_deref(), &format!("{path}.startsAt"))?,
            ends_at: time::optional(self.ends_at.as_deref(), &format!("{path}.endsAt"))?,
            generator_url: self.generator_url,
            // Alertmanager's fingerprint is the label hash Quench computes itself; not trusting
            // the sender's copy keeps one definition.
            fingerprint: None,
        })
    }
}

pub fn parse(body: &[u8], context: &Context) -> Result<Parsed, PayloadError> {
    let notification: Notification = from_json(body)?;
    if notification.version != "4" {
        return Err(PayloadError::new(
            "version",
            format!("webhook payload version {:?}; Quench reads version \"4\"", notification.version),
        ));
    }
    build_each(notification.alerts, "alerts", context, |alert, path| alert.fields(path, BTreeMap::new()))
}

#[cfg(test)]
mod tests {
    use quench_schemas::AlertStatus;

    use crate::payload::{tests::*, Format};

    // The shape of Alertmanager 0.25's notify/webhook Message, trimmed of fields Quench ignores.
    const BODY: &str = r#"{
      "receiver": "quench", "status": "firing", "version": "4", "groupKey": "{}:{alertname=\"HighLoad\"}",
      "truncatedAlerts": 0, "groupLabels": {"alertname": "HighLoad"}, "commonLabels": {}, "commonAnnotations": {},
      "externalURL": "http://am:9093",
      "alerts": [
        {"status": "firing", "labels": {"alertname": "HighLoad", "instance": "a:9100"},
         "annotations": {"summary": "load high"}, "startsAt": "2023-11-14T22:13:20.5Z",
         "endsAt": "0001-01-01T00:00:00Z", "generatorURL": "http://prom/graph", "fingerprint": "1234567890abcdef"},
        {"status": "resolved", "labels": {"alertname": "HighLoad", "instance": "b:9100"}, "annotations": {},
         "startsAt": "2023-11-14T22:00:00Z", "endsAt": "2023-11-14T22:10:00Z", "generatorURL": ""}
      ]
    }"#;

    #[test]
    fn reads_each_alert_of_the_group() {
        let parsed = parse_ok(Format::Alertmanager, BODY);
        let [firing, resolved] = parsed.alerts.as_slice() else { panic!("two alerts") };
        assert_eq!(firing.status, AlertStatus::Firing);
        assert_eq!(firing.labels["instance"], "a:9100");
        assert_eq!(firing.annotations["summary"], "load high");
        assert_eq!((firing.starts_at, firing.ends_at), (1_700_000_000_500, None));
        assert_eq!(firing.generator_url.as_deref(), Some("http://prom/graph"));
        assert_eq!((firing.source.as_str(), firing.tenant.as_str()), ("src", "acme"));
        assert_eq!(firing.fingerprint, None, "Quench computes the same hash itself");
        assert_eq!(resolved.status, AlertStatus::Resolved);
        assert_eq!(resolved.ends_at, Some(1_699_999_800_000));
        assert_eq!(resolved.generator_url, None);
    }

    #[test]
    fn other_versions_and_bad_fields_are_named() {
        assert_eq!(parse_err(Format::Alertmanager, &BODY.replace("\"4\"", "\"3\"")).field, "version");
        let e = parse_err(Format::Alertmanager, &BODY.replace("2023-11-14T22:13:20.5Z", "soon"));
        assert_eq!(e.field, "alerts[0].startsAt");
        let e = parse_err(Format::Alertmanager, &BODY.replace("\"status\": \"resolved\"", "\"status\": \"gone\""));
        assert_eq!(e.field, "alerts[1].status");
        assert!(parse_err(Format::Alertmanager, r#"{"version": "4"}"#).problem.starts_with("missing field `alerts`"));
    }
}
