//! PagerDuty Events API v2: `trigger` while the incident is open, `acknowledge` and `resolve`
//! with it, all under dedup_key = `<tenant>/<incident id>`, so PagerDuty keeps one alert per incident and
//! drops repeats of a trigger.

use quench_schemas::{IncidentStatus, RoutingReason};
use serde_json::{json, Value};

use quench_secret::Secret;
use serde::{Deserialize, Serialize};

use super::{post, Deliver, Notice, Receipt, SendError};
use crate::callbacks::pagerduty::dedup_key;

/// PagerDuty Events API v2; PagerDuty accepts 120 events a minute per routing key.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PagerDutyTarget {
    pub routing_key: Secret,
    #[serde(default = "pagerduty_url")]
    pub url: String,
    #[serde(default = "pagerduty_rate")]
    pub per_minute: u64,
}

fn pagerduty_url() -> String {
    "https://events.pagerduty.com/v2/enqueue".into()
}

fn pagerduty_rate() -> u64 {
    120
}

pub struct Pagerduty {
    http: reqwest::Client,
    target: PagerDutyTarget,
}

/// PagerDuty's four severities, from Quench's scale (and Alertmanager's usual labels).
fn severity(quench: &str) -> &'static str {
    match quench {
        "critical" | "page" | "emergency" => "critical",
        "high" | "error" | "major" => "error",
        "low" | "info" | "informational" | "none" => "info",
        _ => "warning",
    }
}

impl Deliver for Pagerduty {
    type Target = PagerDutyTarget;

    fn new(http: &reqwest::Client, target: &PagerDutyTarget, _timeout: std::time::Duration) -> Result<Self, String> {
        Ok(Self { http: http.clone(), target: target.clone() })
    }

    fn per_minute(target: &PagerDutyTarget) -> u64 {
        target.per_minute
    }

    async fn send(&self, notice: &Notice<'_>) -> Result<Receipt, SendError> {
        let event = notice.event;
        let action = match (event.reason, event.status) {
            (RoutingReason::Resolved, _) | (_, IncidentStatus::Resolved) => "resolve",
            (RoutingReason::Acknowledged, _) | (_, IncidentStatus::Acknowledged) => "acknowledge",
            _ => "trigger",
        };
        let mut body = json!({
            "routing_key": self.target.routing_key.expose(),
            "event_action": action,
            // With the tenant, so one PagerDuty account serving many tenants never merges two
            // tenants' incidents; the webhook callback reads the tenant back from it.
            "dedup_key": dedup_key(&event.tenant, &event.incident_id),
        });
        if action == "trigger" {
            let timestamp =
                jiff::Timestamp::from_millisecond(event.emitted_at).map(|t| t.to_string()).unwrap_or_default();
            body["payload"] = json!({
                "summary": notice.message.title.chars().take(1024).collect::<String>(),
                "source": event.common_labels.get("instance").or(event.common_labels.get("service")).cloned()
                    .unwrap_or_else(|| "quench".into()),
                "severity": severity(&event.severity),
                "timestamp": timestamp,
                "component": event.common_labels.get("service"),
                "group": event.team,
                "class": event.category,
                "custom_details": {
                    "summary": event.summary,
                    "alert_count": event.alert_count,
                    "priority": event.priority,
                    "labels": event.common_labels,
                    "idempotency_key": notice.key,
                },
            });
            if let Some(url) = &notice.message.url {
                body["links"] = json!([{ "href": url, "text": "Incident in Quench" }]);
            }
        }
        let (status, answer) = post(self.http.post(&self.target.url).json(&body)).await?;
        let answer: Value = serde_json::from_str(&answer).unwrap_or_default();
        if answer["status"].as_str().is_some_and(|s| s != "success") {
            return Err(SendError::Permanent { message: format!("PagerDuty: {answer}"), status });
        }
        Ok(Receipt { status, thread: None })
    }
}
