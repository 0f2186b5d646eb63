//! Microsoft Teams: an Adaptive Card in the message envelope that both incoming webhooks and
//! Workflows ("Post to a channel when a webhook request is received") accept.

use serde_json::json;

use super::{post, Notice, Receipt, SendError};
use crate::config::TeamsTarget;

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

impl Teams {
    pub fn new(http: reqwest::Client, target: &TeamsTarget) -> Self {
        Self { http, target: target.clone() }
    }

    pub async fn send(&self, notice: &Notice<'_>) -> Result<Receipt, SendError> {
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
                    .map(|(t, v)| json!({"title": t, "value": v})).collect::<Vec<_>>()},
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
