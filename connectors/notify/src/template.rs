//! Message templates: a title and a body with `{placeholder}`s filled from the routing event, so
//! that every channel says the same thing in its own format.
//!
//! Values come from alerts (labels, annotations) and from an LLM's summary, so they are data, not
//! markup: each is escaped for the markup of the channel it goes to ([`Markup`]), and filled in
//! one pass, so a value that looks like a placeholder stays text. Only the configured template
//! itself may use the channel's markup.

use std::borrow::Cow;

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

/// The markup a channel reads text in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Markup {
    /// Email, webhooks, PagerDuty: text as it is.
    Plain,
    /// Slack's mrkdwn, where `<...>` are links and mentions (`<!channel>`, `<https://x|Ack>`).
    SlackMrkdwn,
    /// Teams' Adaptive Card markdown (a CommonMark subset: `**`, `_`, lists, `[text](url)`) and
    /// its `{{DATE()}}` functions.
    TeamsMarkdown,
}

impl Markup {
    /// The markup of a target, `channel:name` (`slack:ops`, `teams:dba`, ...).
    pub fn of_target(target: &str) -> Self {
        match target.split(':').next().unwrap_or_default() {
            "slack" => Self::SlackMrkdwn,
            "teams" => Self::TeamsMarkdown,
            _ => Self::Plain,
        }
    }

    /// `value` as text in this markup.
    pub fn escape(self, value: &str) -> Cow<'_, str> {
        match self {
            Self::Plain => Cow::Borrowed(value),
            // What Slack documents as the characters to escape; with them, no mention or link can
            // be written by a value.
            Self::SlackMrkdwn if value.contains(['&', '<', '>']) => {
                Cow::Owned(value.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;"))
            }
            // CommonMark's backslash escapes, for the characters the subset reads as markup (bold,
            // italics, links, code) and braces, so that no value opens a `{{DATE()}}`; not for
            // `.`, `-` or `(`, which only matter at a line's start and which Teams' mobile client
            // shows with their backslash.
            Self::TeamsMarkdown if value.contains(TEAMS_SPECIAL) => {
                let mut escaped = String::with_capacity(value.len() + 8);
                for c in value.chars() {
                    if TEAMS_SPECIAL.contains(&c) {
                        escaped.push('\\');
                    }
                    escaped.push(c);
                }
                Cow::Owned(escaped)
            }
            _ => Cow::Borrowed(value),
        }
    }
}

const TEAMS_SPECIAL: [char; 9] = ['\\', '*', '_', '[', ']', '~', '`', '{', '}'];

/// `template` with each known `{name}` replaced by its value escaped for `markup`, in one pass:
/// a value is never read again for placeholders. Unknown `{...}` stay as written.
fn fill(template: &str, values: &[(&str, &str)], markup: Markup) -> String {
    let mut text = String::with_capacity(template.len() * 2);
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        text.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let value = after.find('}').and_then(|close| {
            let name = &after[..close];
            values.iter().find(|(n, _)| *n == name).map(|(_, value)| (*value, close))
        });
        match value {
            Some((value, close)) => {
                text.push_str(&markup.escape(value));
                rest = &after[close + 1..];
            }
            None => {
                text.push('{');
                rest = after;
            }
        }
    }
    text.push_str(rest);
    text
}

impl Templates {
    /// The message for a channel reading `markup`. `incident_url` is the configured link pattern;
    /// `note` is appended (escalation steps say so).
    pub fn render(&self, event: &RoutingEvent, incident_url: &str, note: Option<&str>, markup: Markup) -> Message {
        let url = (!incident_url.is_empty())
            .then(|| fill(incident_url, &[("incident_id", &event.incident_id)], Markup::Plain));
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
        let render_part = |template: &str| {
            let text = fill(template, &values, markup);
            // Empty placeholders leave double spaces and blank lines behind.
            let lines: Vec<String> = text
                .lines()
                .map(|line| line.split_whitespace().collect::<Vec<_>>().join(" "))
                .filter(|line| !line.is_empty())
                .collect();
            lines.join("\n")
        };
        let mut body = render_part(&self.body);
        // A child in its parent's thread, or one notified on its own ("related to ...").
        // Correlation texts quote label values: data, escaped like the placeholders' values.
        match (&event.parent_incident_id, &event.correlation) {
            (Some(parent), Some(why)) => {
                body.push_str(&format!("\npart of {}: {}", markup.escape(parent), markup.escape(why)))
            }
            (None, Some(related)) => body.push_str(&format!("\n{}", markup.escape(related))),
            _ => {}
        }
        if let Some(note) = note {
            body.push_str(&format!("\n{}", markup.escape(note)));
        }
        // One line: a title is an email's Subject and a chat message's header.
        let title = render_part(&self.title).replace('\n', " ");
        Message { title, body, url }
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
        let message = Templates::default().render(
            &event(RoutingReason::Opened),
            "https://q/inc/{incident_id}",
            None,
            Markup::Plain,
        );
        assert_eq!(message.title, "[FIRING] P1 critical: PostgresqlDown (cluster=eu-1)");
        assert_eq!(
            message.body,
            "Postgres instance is down\n3 alert(s) · category database · team dba · opened\ncluster=eu-1\nhttps://q/inc/inc-1"
        );
        assert_eq!(message.url.as_deref(), Some("https://q/inc/inc-1"));
        let mut resolved = event(RoutingReason::Resolved);
        resolved.priority = None;
        let message = Templates::default().render(&resolved, "", Some("escalation step 2"), Markup::Plain);
        assert_eq!(message.title, "[RESOLVED] critical: PostgresqlDown (cluster=eu-1)");
        assert!(message.body.ends_with("cluster=eu-1\nescalation step 2"), "{}", message.body);
    }

    #[test]
    fn the_notification_after_a_flap_hold_says_how_often_the_alerts_changed() {
        let mut settled = event(RoutingReason::AlertsAdded);
        settled.flaps = 8;
        let message = Templates::default().render(&settled, "", None, Markup::Plain);
        assert!(
            message.body.contains("alertsadded, stable again after flapping (8 state changes)"),
            "{}",
            message.body
        );
    }

    #[test]
    fn a_value_that_looks_like_a_placeholder_stays_text() {
        let mut sneaky = event(RoutingReason::Opened);
        sneaky.title = "{summary} {url} {labels}".into();
        let message = Templates::default().render(&sneaky, "https://q/{incident_id}", None, Markup::Plain);
        assert_eq!(message.title, "[FIRING] P1 critical: {summary} {url} {labels}");
        let templates = Templates { title: "{unknown} {title".into(), body: "{{title}}".into() };
        let message = templates.render(&event(RoutingReason::Opened), "", None, Markup::Plain);
        assert_eq!(
            (message.title.as_str(), message.body.as_str()),
            ("{unknown} {title", "{PostgresqlDown (cluster=eu-1)}")
        );
    }

    #[test]
    fn slack_values_cannot_mention_everyone_or_disguise_links() {
        let mut hostile = event(RoutingReason::Opened);
        hostile.title = "<!channel> disk full".into();
        hostile.summary = "<https://evil.example|Ack here> & <@U123>".into();
        hostile.common_labels = [("team".to_string(), "<!here>".to_string())].into();
        hostile.correlation = Some("same cluster `<!everyone>`".into());
        let templates = Templates { title: "*{title}*".into(), ..Templates::default() };
        let message = templates.render(&hostile, "", None, Markup::SlackMrkdwn);
        assert_eq!(message.title, "*&lt;!channel&gt; disk full*");
        let text = format!("{}\n{}", message.title, message.body);
        assert!(!text.contains('<') && !text.contains('>'), "{text}");
        assert!(text.contains("&lt;https://evil.example|Ack here&gt; &amp; &lt;@U123&gt;"), "{text}");
        let plain = Templates::default().render(&hostile, "", None, Markup::Plain);
        assert!(plain.title.contains("<!channel>"), "email and webhooks carry the text as it is");
    }

    #[test]
    fn teams_values_cannot_write_markdown_links_or_date_functions() {
        let mut hostile = event(RoutingReason::Opened);
        hostile.summary = "[Ack here](https://evil.example) **urgent** {{DATE(2017-02-14T06:00:00Z)}}".into();
        let templates = Templates { title: "**{title}**".into(), body: "{summary}".into() };
        let message = templates.render(&hostile, "", None, Markup::TeamsMarkdown);
        assert_eq!(
            message.body,
            "\\[Ack here\\](https://evil.example) \\*\\*urgent\\*\\* \\{\\{DATE(2017-02-14T06:00:00Z)\\}\\}"
        );
        assert!(message.title.starts_with("**") && message.title.ends_with("**"), "the template's own markup stays");
    }

    #[test]
    fn a_title_is_one_line() {
        let mut multi = event(RoutingReason::Opened);
        multi.title = "Disk full\r\nBcc: everyone@example.com".into();
        let message = Templates::default().render(&multi, "", None, Markup::Plain);
        assert!(!message.title.contains(['\n', '\r']), "{:?}", message.title);
    }
}
