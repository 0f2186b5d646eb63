//! Generic webhook: the routing event and the rendered message as JSON, signed so receivers can
//! check where it came from and when (replays of old bodies fail the timestamp check).

use serde_json::json;

use std::collections::BTreeMap;

use quench_secret::Secret;
use serde::{Deserialize, Serialize};

use super::{post, Deliver, Notice, Receipt, SendError};

/// A generic webhook: JSON with `X-Quench-Timestamp`, `X-Quench-Signature`
/// (`sha256=` HMAC-SHA256 of `timestamp.body` under `secret`) and `Idempotency-Key`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookTarget {
    /// Often tokenised: a credential.
    pub url: Secret,
    pub secret: Option<Secret>,
    /// Sent with every request; values are secrets (they are usually credentials).
    #[serde(default)]
    pub headers: BTreeMap<String, Secret>,
    /// 0 means unlimited.
    #[serde(default)]
    pub per_minute: u64,
    /// `quench` (the routing event and the message) or `alertmanager` (Alertmanager's webhook
    /// payload, version 4, for the services that consume it).
    #[serde(default)]
    pub format: WebhookFormat,
    /// Alerts an `alertmanager` payload lists at most; 0 for all.
    #[serde(default)]
    pub max_alerts: usize,
    /// Whether an `alertmanager` payload lists resolved alerts.
    #[serde(default = "yes")]
    pub send_resolved: bool,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WebhookFormat {
    #[default]
    Quench,
    Alertmanager,
}

fn yes() -> bool {
    true
}

pub struct Webhook {
    http: reqwest::Client,
    target: WebhookTarget,
}

/// `sha256=` + hex HMAC-SHA256 of `timestamp.body`, as Stripe and Slack sign theirs.
pub fn signature(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let hex = crate::signing::hmac_hex(secret.as_bytes(), &[timestamp.to_string().as_bytes(), b".", body]);
    format!("sha256={hex}")
}

impl Deliver for Webhook {
    type Target = WebhookTarget;

    fn new(http: &reqwest::Client, target: &WebhookTarget, _timeout: std::time::Duration) -> Result<Self, String> {
        Ok(Self { http: http.clone(), target: target.clone() })
    }

    fn per_minute(target: &WebhookTarget) -> u64 {
        target.per_minute
    }

    async fn send(&self, notice: &Notice<'_>) -> Result<Receipt, SendError> {
        let body = match self.target.format {
            WebhookFormat::Quench => json!({
                "idempotency_key": notice.key,
                "title": notice.message.title,
                "text": notice.message.body,
                "url": notice.message.url,
                "event": notice.event,
            }),
            WebhookFormat::Alertmanager => {
                crate::alertmanager::payload(notice.event, "", self.target.max_alerts, self.target.send_resolved)
            }
        };
        let body = serde_json::to_vec(&body).expect("JSON of owned values");
        let timestamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or_default());
        let mut request = self
            .http
            .post(self.target.url.expose())
            .header("content-type", "application/json")
            .header("idempotency-key", notice.key)
            .header("x-quench-timestamp", timestamp.to_string());
        if let Some(secret) = &self.target.secret {
            request = request.header("x-quench-signature", signature(secret.expose(), timestamp, &body));
        }
        for (name, value) in &self.target.headers {
            request = request.header(name, value.expose());
        }
        let (status, _) = post(request.body(body)).await?;
        Ok(Receipt { status, thread: None })
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn signature_is_hmac_sha256_of_timestamp_dot_body() {
        // echo -n '1700000000.{"a":1}' | openssl dgst -sha256 -hmac secret
        assert_eq!(
            super::signature("secret", 1_700_000_000, br#"{"a":1}"#),
            "sha256=49f24e537407743fa4a0242bb63b94b9a47ee99cbbe071ccd8a22550ae411686"
        );
    }
}
