//! Alertmanager's webhook payload (version 4), for webhook targets with `format = "alertmanager"`
//! (every `webhook_configs` receiver of an Alertmanager rules file): the services that consume
//! Alertmanager's webhooks today keep working unchanged when Quench sends instead.

use std::collections::BTreeMap;

use quench_schemas::{EventAlert, RoutingEvent, RoutingReason};
use serde_json::{json, Value};

/// Go's zero time, which Alertmanager writes for an alert with no end yet.
const NO_END: &str = "0001-01-01T00:00:00Z";

fn rfc3339(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms).map_or_else(|_| NO_END.to_string(), |t| t.to_string())
}

/// The payload for `event` to `receiver`, listing at most `max_alerts` alerts (0: all);
/// `send_resolved` false leaves resolved alerts out, as Alertmanager does.
pub fn payload(event: &RoutingEvent, receiver: &str, max_alerts: usize, send_resolved: bool) -> Value {
    let listed: Vec<&EventAlert> = event.alerts.iter().filter(|a| send_resolved || a.status == "firing").collect();
    let keep = if max_alerts == 0 { listed.len() } else { max_alerts.min(listed.len()) };
    let truncated = event.truncated_alerts + (listed.len() - keep) as i64;
    let listed = &listed[..keep];
    let firing = listed.iter().any(|a| a.status == "firing") && event.reason != RoutingReason::Resolved;
    let common = |pick: fn(&EventAlert) -> &BTreeMap<String, String>| -> BTreeMap<String, String> {
        let mut alerts = listed.iter();
        let Some(first) = alerts.next() else { return BTreeMap::new() };
        let mut common = pick(first).clone();
        for alert in alerts {
            common.retain(|name, value| pick(alert).get(name) == Some(value));
        }
        common
    };
    json!({
        "version": "4",
        "groupKey": event.group_key,
        "truncatedAlerts": truncated,
        "status": if firing { "firing" } else { "resolved" },
        "receiver": event.receiver.as_deref().unwrap_or(receiver),
        "groupLabels": event.group_labels,
        "commonLabels": common(|a| &a.labels),
        "commonAnnotations": common(|a| &a.annotations),
        "externalURL": "",
        "alerts": listed.iter().map(|a| json!({
            "status": a.status,
            "labels": a.labels,
            "annotations": a.annotations,
            "startsAt": rfc3339(a.starts_at),
            "endsAt": a.ends_at.map_or_else(|| NO_END.to_string(), rfc3339),
            "generatorURL": "",
            "fingerprint": a.fingerprint,
        })).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(fingerprint: &str, status: &str, instance: &str) -> EventAlert {
        EventAlert {
            fingerprint: fingerprint.into(),
            status: status.into(),
            labels: [("alertname", "Down"), ("instance", instance)]
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            annotations: [("summary".to_string(), format!("{instance} is down"))].into(),
            starts_at: 1_700_000_000_000,
            ends_at: (status == "resolved").then_some(1_700_000_060_000),
        }
    }

    fn event(alerts: Vec<EventAlert>) -> RoutingEvent {
        let mut event: RoutingEvent = serde_json::from_value(json!({
            "event_id": "e", "incident_id": "i", "reason": "alerts_added", "tenant": "default", "status": "open",
            "title": "Down", "summary": "", "severity": "warning", "priority": null, "category": null,
            "alert_count": 2, "common_labels": {}, "team": null, "targets": [], "escalation_policy": null,
            "incident_version": 2, "emitted_at": 0, "receiver": "ops", "group_key": "{}:{alertname=\"Down\"}",
            "group_labels": {"alertname": "Down"}, "alerts": [], "truncated_alerts": 0
        }))
        .unwrap();
        event.alerts = alerts;
        event
    }

    #[test]
    fn the_payload_is_alertmanagers_version_4() {
        let event = event(vec![alert("00000000000000a1", "firing", "a"), alert("00000000000000b2", "resolved", "b")]);
        let body = payload(&event, "fallback", 0, true);
        assert_eq!(body["version"], "4");
        assert_eq!(body["status"], "firing");
        assert_eq!(body["receiver"], "ops");
        assert_eq!(body["groupKey"], "{}:{alertname=\"Down\"}");
        assert_eq!(body["groupLabels"], json!({"alertname": "Down"}));
        assert_eq!(body["commonLabels"], json!({"alertname": "Down"}));
        assert_eq!(body["commonAnnotations"], json!({}));
        assert_eq!(body["alerts"][0]["startsAt"], "2023-11-14T22:13:20Z");
        assert_eq!(body["alerts"][0]["endsAt"], NO_END);
        assert_eq!(body["alerts"][1]["endsAt"], "2023-11-14T22:14:20Z");
        assert_eq!(body["alerts"][1]["fingerprint"], "00000000000000b2");
    }

    #[test]
    fn resolved_alerts_need_send_resolved_and_max_alerts_truncates() {
        let event = event(vec![alert("a1", "firing", "a"), alert("b2", "resolved", "b"), alert("c3", "firing", "c")]);
        let body = payload(&event, "ops", 0, false);
        assert_eq!(body["alerts"].as_array().unwrap().len(), 2, "the resolved alert is left out");
        let body = payload(&event, "ops", 1, true);
        assert_eq!((body["alerts"].as_array().unwrap().len(), body["truncatedAlerts"].as_i64()), (1, Some(2)));
    }
}
