//! Message templates: a title and a body with `{placeholder}`s filled from the routing event, so
//! that every channel says the same thing in its own format.

use serde::{Deserialize, Serialize};

use quench_schemas::{IncidentStatus, RoutingEvent, RoutingReason};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Templates {
    /// Placeholders: {incident_id} {title} {summary} {severity} {priority} {category} {status}
    /// {reason} {alert_count} {team} {url} {labels}.
    pub title: String,
    pub body: String,
}

impl Default for Templates {
    fn default() -> Self {
        Self {
            title: "[{status}] {priority} {severity}: {title}".into(),
            body: "{summary}\n{alert_count} alert(s) · category {category} · team {team} · {reason}\n{labels}\n{url}"
                .into(),
        }
    }
}

/// A rendered message, and the facts channels lay out their own way.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub title: String,
    pub body: String,
    pub url: Option<String>,
}

/// How a status and a reason read in a message.
pub fn status_word(event: &RoutingEvent) -> &'static str {
    match (event.status, event.reason) {
        (IncidentStatus::Resolved, _) | (_, RoutingReason::Resolved) => "RESOLVED",
        (IncidentStatus::Acknowledged, _) | (_, RoutingReason::Acknowledged) => "ACKNOWLEDGED",
        (IncidentStatus::Open, _) => "FIRING",
    }
}

impl Templates {
    /// `incident_url` is the configured link pattern; `note` is appended (escalation steps say so).
    pub fn render(&self, event: &RoutingEvent, incident_url: &str, note: Option<&str>) -> Message {
        let url = (!incident_url.is_empty()).then(|| incident_url.replace("{incident_id}", &event.incident_id));
        let labels: Vec<String> = event.common_labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let mut reason = format!("{:?}", event.reason).to_lowercase();
        if event.flaps > 0 {
            // The one notification after a flap hold says what was held back.
            reason.push_str(&format!(", stable again after flapping ({} state changes)", event.flaps));
        }
        let values: [(&str, &str); 12] = [
            ("incident_id", &event.incident_id),
            ("title", &event.title),
            ("summary", &event.summary),
            ("severity", &event.severity),
            ("priority", event.priority.as_deref().unwrap_or("")),
            ("category", event.category.as_deref().unwrap_or("unknown")),
            ("status", status_word(event)),
            ("reason", &reason),
            ("alert_count", &event.alert_count.to_string()),
            ("team", event.team.as_deref().unwrap_or("none")),
            ("url", url.as_deref().unwrap_or("")),
            ("labels", &labels.join(", ")),
        ];
        let fill = |template: &str| {
            let mut text = template.to_string();
            for (name, value) in values {
                text = text.replace(&format!("{{{name}}}"), value);
            }
            // Empty placeholders leave double spaces and blank lines behind.
            let lines: Vec<String> = text
                .lines()
                .map(|line| line.split_whitespace().collect::<Vec<_>>().join(" "))
                .filter(|line| !line.is_empty())
                .collect();
            lines.join("\n")
        };
        let mut body = fill(&self.body);
        // A child in its parent's thread, or one notified on its own ("related to ...").
        match (&event.parent_incident_id, &event.correlation) {
            (Some(parent), Some(why)) => body.push_str(&format!("\npart of {parent}: {why}")),
            (None, Some(related)) => body.push_str(&format!("\n{related}")),
            _ => {}
        }
        if let Some(note) = note {
            body.push_str(&format!("\n{note}"));
        }
        Message { title: fill(&self.title), body, url }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn event(reason: RoutingReason) -> RoutingEvent {
        RoutingEvent {
            event_id: format!("inc-1/1/{reason:?}"),
            incident_id: "inc-1".into(),
            reason,
            tenant: "default".into(),
            status: if reason == RoutingReason::Resolved { IncidentStatus::Resolved } else { IncidentStatus::Open },
            title: "PostgresqlDown (cluster=eu-1)".into(),
            summary: "Postgres instance is down".into(),
            severity: "critical".into(),
            priority: Some("P1".into()),
            category: Some("database".into()),
            alert_count: 3,
            common_labels: [("cluster".to_string(), "eu-1".to_string())].into(),
            team: Some("dba".into()),
            targets: Vec::new(),
            escalation_policy: None,
            incident_version: 1,
            emitted_at: 1_700_000_000_000,
            receiver: None,
            group_key: String::new(),
            group_labels: Default::default(),
            alerts: Vec::new(),
            truncated_alerts: 0,
            flaps: 0,
            parent_incident_id: None,
            correlation: None,
        }
    }

    #[test]
    fn defaults_say_what_happened_and_drop_empty_placeholders() {
        let message = Templates::default().render(&event(RoutingReason::Opened), "https://q/inc/{incident_id}", None);
        assert_eq!(message.title, "[FIRING] P1 critical: PostgresqlDown (cluster=eu-1)");
        assert_eq!(
            message.body,
            "Postgres instance is down\n3 alert(s) · category database · team dba · opened\ncluster=eu-1\nhttps://q/inc/inc-1"
        );
        assert_eq!(message.url.as_deref(), Some("https://q/inc/inc-1"));
        let mut resolved = event(RoutingReason::Resolved);
        resolved.priority = None;
        let message = Templates::default().render(&resolved, "", Some("escalation step 2"));
        assert_eq!(message.title, "[RESOLVED] critical: PostgresqlDown (cluster=eu-1)");
        assert!(message.body.ends_with("cluster=eu-1\nescalation step 2"), "{}", message.body);
    }

    #[test]
    fn the_notification_after_a_flap_hold_says_how_often_the_alerts_changed() {
        let mut settled = event(RoutingReason::AlertsAdded);
        settled.flaps = 8;
        let message = Templates::default().render(&settled, "", None);
        assert!(
            message.body.contains("alertsadded, stable again after flapping (8 state changes)"),
            "{}",
            message.body
        );
    }
}
