//! Slack: `chat.postMessage` with a bot token, the incident's later notices as replies in the
//! thread of its first message; or an incoming webhook, which cannot thread.
//!
//! The Web API answers HTTP 200 with `"ok": false` for most errors, so the body decides.

use serde_json::{json, Value};

use super::{post, Notice, Receipt, SendError};
use crate::config::SlackTarget;

pub struct Slack {
    http: reqwest::Client,
    target: SlackTarget,
}

/// Errors of `chat.postMessage` that another attempt can fix.
const TRANSIENT: [&str; 4] = ["ratelimited", "service_unavailable", "internal_error", "request_timeout"];

impl Slack {
    pub fn new(http: reqwest::Client, target: &SlackTarget) -> Self {
        Self { http, target: target.clone() }
    }

    pub async fn send(&self, notice: &Notice<'_>) -> Result<Receipt, SendError> {
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

fn truncate(text: &str, max: usize) -> String {
    text.chars().take(max).collect()
}
