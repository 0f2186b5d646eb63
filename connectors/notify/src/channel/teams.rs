//! Microsoft Teams: an Adaptive Card in the message envelope that both incoming webhooks and
//! Workflows ("Post to a channel when a webhook request is received") accept.

use serde_json::json;

use quench_secret::Secret;
use serde::{Deserialize, Serialize};

use super::{post, Deliver, Notice, Receipt, SendError};
use crate::template::Markup;

/// Microsoft Teams incoming webhook or Workflows URL; the message is an Adaptive Card.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TeamsTarget {
    /// Carries its own signature (`sig=`): a credential.
    pub url: Secret,
    #[serde(default = "teams_rate")]
    pub per_minute: u64,
}

fn teams_rate() -> u64 {
    // Teams webhooks throttle beyond about four requests a second.
    240
}

pub struct Teams {
    http: reqwest::Client,
    target: TeamsTarget,
}

fn color(severity: &str) -> &'static str {
    match severity {
        "critical" | "high" => "Attention",
        "medium" | "warning" => "Warning",
        _ => "Default",
    }
}

impl Deliver for Teams {
    type Target = TeamsTarget;

    fn new(http: &reqwest::Client, target: &TeamsTarget, _timeout: std::time::Duration) -> Result<Self, String> {
        Ok(Self { http: http.clone(), target: target.clone() })
    }

    fn per_minute(target: &TeamsTarget) -> u64 {
        target.per_minute
    }

    async fn send(&self, notice: &Notice<'_>) -> Result<Receipt, SendError> {
        let event = notice.event;
        let facts = [
            ("Severity", event.severity.clone()),
            ("Priority", event.priority.clone().unwrap_or_default()),
            ("Category", event.category.clone().unwrap_or_default()),
            ("Alerts", event.alert_count.to_string()),
            ("Team", event.team.clone().unwrap_or_default()),
            ("Incident", event.incident_id.clone()),
        ];
        let mut card = json!({
            "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
            "type": "AdaptiveCard",
            "version": "1.4",
            "body": [
                {"type": "TextBlock", "text": notice.message.title, "weight": "Bolder", "size": "Medium",
                 "wrap": true, "color": color(&event.severity)},
                {"type": "TextBlock", "text": notice.message.body, "wrap": true},
                {"type": "FactSet", "facts": facts.iter().filter(|(_, v)| !v.is_empty())
                    .map(|(t, v)| json!({"title": t, "value": Markup::TeamsMarkdown.escape(v)})).collect::<Vec<_>>()},
            ],
        });
        if let Some(url) = &notice.message.url {
            card["actions"] = json!([{ "type": "Action.OpenUrl", "title": "Open incident", "url": url }]);
        }
        let envelope = json!({
            "type": "message",
            "attachments": [{
                "contentType": "application/vnd.microsoft.card.adaptive",
                "contentUrl": null,
                "content": card,
            }],
        });
        let (status, _) = post(self.http.post(self.target.url.expose()).json(&envelope)).await?;
        Ok(Receipt { status, thread: None })
    }
}
