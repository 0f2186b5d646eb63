//! Slack: `chat.postMessage` with a bot token, the incident's later notices as replies in the
//! thread of its first message; or an incoming webhook, which cannot thread.
//!
//! The Web API answers HTTP 200 with `"ok": false` for most errors, so the body decides.

use serde_json::{json, Value};

use quench_schemas::IncidentStatus;
use quench_secret::Secret;
use serde::{Deserialize, Serialize};

use super::{post, Deliver, Notice, Receipt, SendError};

/// Slack: the Web API (`chat.postMessage` with a bot token, updates threaded under the first
/// message) when `token` is set, else an incoming webhook `url` (no threads).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlackTarget {
    /// The Web API's base, or an incoming webhook's URL (a credential itself).
    #[serde(default = "slack_api")]
    pub url: Secret,
    pub token: Option<Secret>,
    /// Channel id or name, for the Web API.
    #[serde(default)]
    pub channel: String,
    #[serde(default = "slack_rate")]
    pub per_minute: u64,
}

fn slack_api() -> Secret {
    "https://slack.com/api/chat.postMessage".into()
}

fn slack_rate() -> u64 {
    // Slack allows about one message a second per channel.
    60
}

pub struct Slack {
    http: reqwest::Client,
    target: SlackTarget,
}

/// Errors of `chat.postMessage` that another attempt can fix.
const TRANSIENT: [&str; 4] = ["ratelimited", "service_unavailable", "internal_error", "request_timeout"];

impl Deliver for Slack {
    type Target = SlackTarget;

    fn new(http: &reqwest::Client, target: &SlackTarget, _timeout: std::time::Duration) -> Result<Self, String> {
        Ok(Self { http: http.clone(), target: target.clone() })
    }

    fn per_minute(target: &SlackTarget) -> u64 {
        target.per_minute
    }

    fn check(target: &SlackTarget) -> Result<(), (String, String)> {
        if target.token.is_some() && target.channel.is_empty() {
            return Err(("channel".into(), "the Web API needs a channel".into()));
        }
        Ok(())
    }

    async fn send(&self, notice: &Notice<'_>) -> Result<Receipt, SendError> {
        let text = format!("*{}*\n{}", notice.message.title, notice.message.body);
        let Some(token) = &self.target.token else {
            let (status, _) = post(self.http.post(self.target.url.expose()).json(&json!({ "text": text }))).await?;
            return Ok(Receipt { status, thread: None });
        };
        let mut body = json!({
            "channel": self.target.channel,
            "text": text,
            "blocks": [
                {"type": "header", "text": {"type": "plain_text", "text": truncate(&notice.message.title, 150)}},
                {"type": "section", "text": {"type": "mrkdwn", "text": truncate(&notice.message.body, 3000)}},
            ],
            // Slack drops a retried post with the same client_msg_id.
            "client_msg_id": notice.key,
        });
        if let Some(thread) = notice.thread {
            body["thread_ts"] = json!(thread);
        }
        if notice.event.status != IncidentStatus::Resolved {
            body["blocks"].as_array_mut().expect("blocks").push(buttons(&notice.event.incident_id));
        }
        let request = self.http.post(self.target.url.expose()).bearer_auth(token.expose()).json(&body);
        let (status, answer) = post(request).await?;
        let answer: Value = serde_json::from_str(&answer).map_err(|e| SendError::Transient {
            message: format!("Slack answered non-JSON: {e}"),
            status,
            retry_after: None,
        })?;
        if answer["ok"].as_bool() != Some(true) {
            let error = answer["error"].as_str().unwrap_or("unknown error");
            let message = format!("Slack: {error}");
            return Err(if TRANSIENT.contains(&error) {
                SendError::Transient { message, status, retry_after: None }
            } else {
                SendError::Permanent { message, status }
            });
        }
        // A reply's own ts must not become the thread: keep the root.
        let thread = notice.thread.map(str::to_string).or_else(|| answer["ts"].as_str().map(str::to_string));
        Ok(Receipt { status, thread })
    }
}

/// The `action_id`s of the buttons under each message of an unresolved incident, which Slack
/// sends back to [`crate::callbacks`] when clicked, with the incident id as their `value`.
pub const ACKNOWLEDGE_BUTTON: &str = "quench_acknowledge";
pub const RESOLVE_BUTTON: &str = "quench_resolve";

fn buttons(incident: &str) -> Value {
    let button = |id: &str, label: &str| json!({"type": "button", "action_id": id, "value": incident, "text": {"type": "plain_text", "text": label}});
    json!({"type": "actions", "elements": [button(ACKNOWLEDGE_BUTTON, "Acknowledge"), button(RESOLVE_BUTTON, "Resolve")]})
}

fn truncate(text: &str, max: usize) -> String {
    text.chars().take(max).collect()
}
