//! Grafana alerting's webhook contact point: Alertmanager's webhook shape (Grafana embeds an
//! Alertmanager) with Grafana's links and evaluated values on each alert, which Quench keeps as
//! annotations so that notifications can link back to the dashboard.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::{alertmanager::WebhookAlert, build_each, from_json, Context, Parsed, PayloadError};

#[derive(Deserialize)]
struct Notification {
    alerts: Vec<GrafanaAlert>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GrafanaAlert {
    #[serde(flatten)]
    alert: WebhookAlert,
    #[serde(rename = "dashboardURL")]
    dashboard_url: Option<String>,
    #[serde(rename = "panelURL")]
    panel_url: Option<String>,
    #[serde(rename = "silenceURL")]
    silence_url: Option<String>,
    value_string: Option<String>,
}

impl GrafanaAlert {
    fn links(&self) -> BTreeMap<String, String> {
        [
            ("dashboard_url", &self.dashboard_url),
            ("panel_url", &self.panel_url),
            ("silence_url", &self.silence_url),
            ("value_string", &self.value_string),
        ]
        .into_iter()
        .filter_map(|(name, value)| Some((name.to_string(), value.clone().filter(|v| !v.is_empty())?)))
        .collect()
    }
}

pub fn parse(body: &[u8], context: &Context) -> Result<Parsed, PayloadError> {
    let notification: Notification = from_json(body)?;
    build_each(notification.alerts, "alerts", context, |alert, path| {
        let links = alert.links();
        alert.alert.fields(path, links)
    })
}

#[cfg(test)]
mod tests {
    use quench_schemas::AlertStatus;

    use crate::payload::{tests::*, Format};

    // A Grafana 10/11 webhook notification (version "1"), as its docs show it.
    const BODY: &str = r#"{
      "receiver": "quench", "status": "firing", "orgId": 1, "version": "1", "groupKey": "{}:{}",
      "truncatedAlerts": 0, "title": "[FIRING:1] DiskFull", "state": "alerting", "message": "...",
      "groupLabels": {}, "commonLabels": {"alertname": "DiskFull"}, "commonAnnotations": {},
      "externalURL": "http://grafana:3000/",
      "alerts": [{
        "status": "firing", "labels": {"alertname": "DiskFull", "grafana_folder": "infra"},
        "annotations": {"summary": "disk almost full"}, "startsAt": "2023-11-14T22:13:20Z",
        "endsAt": "0001-01-01T00:00:00Z", "generatorURL": "http://grafana:3000/alerting/grafana/x/view",
        "fingerprint": "c6eadffa33fcdf37", "silenceURL": "http://grafana:3000/alerting/silence/new",
        "dashboardURL": "http://grafana:3000/d/abc", "panelURL": "", "values": {"B": 97.5},
        "valueString": "[ var='B' labels={} value=97.5 ]"
      }]
    }"#;

    #[test]
    fn keeps_grafanas_links_as_annotations() {
        let parsed = parse_ok(Format::Grafana, BODY);
        let alert = &parsed.alerts[0];
        assert_eq!(alert.status, AlertStatus::Firing);
        assert_eq!(alert.labels["grafana_folder"], "infra");
        assert_eq!(alert.annotations["dashboard_url"], "http://grafana:3000/d/abc");
        assert_eq!(alert.annotations["summary"], "disk almost full");
        assert!(!alert.annotations.contains_key("panel_url"), "empty links are dropped");
        assert!(alert.annotations["value_string"].contains("97.5"));
    }

    #[test]
    fn a_missing_status_is_named() {
        let e = parse_err(Format::Grafana, &BODY.replace(r#""status": "firing", "labels""#, r#""labels""#));
        assert!(e.problem.contains("status"), "{e}");
    }
}
