//! Alertmanager's own API, `POST /api/v2/alerts`, as Prometheus sends to it: a JSON array of
//! postable alerts without a status. Prometheus re-sends firing alerts with an `endsAt` a few
//! evaluation intervals ahead, and resolved ones with an `endsAt` in the past.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::{build_each, from_json, time, Context, Fields, Parsed, PayloadError};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PostableAlert {
    labels: BTreeMap<String, String>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
    starts_at: Option<String>,
    ends_at: Option<String>,
    #[serde(rename = "generatorURL")]
    generator_url: Option<String>,
}

pub fn parse(body: &[u8], context: &Context) -> Result<Parsed, PayloadError> {
    let alerts: Vec<PostableAlert> = from_json(body)?;
    build_each(alerts, "", context, |alert, path| {
        Ok(Fields {
            status: None,
            labels: alert.labels,
            annotations: alert.annotations,
            starts_at: time::optional(alert.starts_at.as_deref(), &format!("{path}.startsAt"))?,
            ends_at: time::optional(alert.ends_at.as_deref(), &format!("{path}.endsAt"))?,
            generator_url: alert.generator_url,
            fingerprint: None,
        })
    })
}

#[cfg(test)]
mod tests {
    use quench_schemas::AlertStatus;

    use crate::payload::{tests::*, Format};

    #[test]
    fn the_end_time_decides_the_status() {
        // received_at in the tests is 2023-11-14T22:13:20Z.
        let parsed = parse_ok(
            Format::Prometheus,
            r#"[
              {"labels": {"alertname": "Up", "job": "node"}, "annotations": {"summary": "s"},
               "startsAt": "2023-11-14T22:00:00Z", "endsAt": "2023-11-14T22:17:20Z",
               "generatorURL": "http://prom:9090/graph?g0.expr=up"},
              {"labels": {"alertname": "Up", "job": "db"}, "startsAt": "2023-11-14T22:00:00Z",
               "endsAt": "2023-11-14T22:10:00Z"},
              {"labels": {"alertname": "NoTimes"}}
            ]"#,
        );
        let statuses: Vec<_> = parsed.alerts.iter().map(|a| a.status).collect();
        assert_eq!(statuses, [AlertStatus::Firing, AlertStatus::Resolved, AlertStatus::Firing]);
        assert_eq!(parsed.alerts[0].ends_at, Some(1_700_000_240_000), "the predicted end is kept");
        assert_eq!(parsed.alerts[2].starts_at, 1_700_000_000_000, "defaults to the time received");
    }

    #[test]
    fn an_object_is_not_an_array() {
        assert!(parse_err(Format::Prometheus, r#"{"labels": {}}"#).problem.contains("expected a sequence"));
    }
}
