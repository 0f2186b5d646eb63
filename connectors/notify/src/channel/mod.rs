//! Channel adapters: one file per receiving service, each turning a [`Notice`] into that
//! service's documented request. An enum rather than trait objects: the set is closed and known.

mod email;
mod pagerduty;
mod slack;
mod teams;
mod webhook;

use std::{collections::HashMap, time::Duration};

use quench_schemas::RoutingEvent;

use crate::{config::NotifyConfig, template::Message};

/// One delivery to make: an event (or an escalation page about it) to one target.
pub struct Notice<'a> {
    /// Idempotency key: the same on every attempt and after restarts, sent to receivers that take
    /// one (PagerDuty's dedup_key is the incident id instead, which PagerDuty deduplicates on).
    pub key: &'a str,
    pub event: &'a RoutingEvent,
    pub message: &'a Message,
    /// The Slack message this incident's updates are threaded under on this target.
    pub thread: Option<&'a str>,
}

/// What a receiver answered to a delivered notice.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Receipt {
    pub status: u16,
    /// A thread to file later notices of the incident under (Slack's `ts`).
    pub thread: Option<String>,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SendError {
    /// Worth another attempt: 429, 5xx, timeouts, refused connections.
    #[error("{message}")]
    Transient { message: String, status: u16, retry_after: Option<Duration> },
    /// Another attempt would fail the same way: a rejected request or credentials.
    #[error("{message}")]
    Permanent { message: String, status: u16 },
}

impl SendError {
    pub fn status(&self) -> u16 {
        match self {
            Self::Transient { status, .. } | Self::Permanent { status, .. } => *status,
        }
    }
}

pub enum Adapter {
    Slack(slack::Slack),
    PagerDuty(pagerduty::PagerDuty),
    Teams(teams::Teams),
    Email(email::Email),
    Webhook(webhook::Webhook),
}

impl Adapter {
    pub async fn send(&self, notice: &Notice<'_>) -> Result<Receipt, SendError> {
        match self {
            Self::Slack(a) => a.send(notice).await,
            Self::PagerDuty(a) => a.send(notice).await,
            Self::Teams(a) => a.send(notice).await,
            Self::Email(a) => a.send(notice).await,
            Self::Webhook(a) => a.send(notice).await,
        }
    }
}

/// Every configured target's adapter and per-minute budget, by `channel:name`.
pub fn adapters(config: &NotifyConfig) -> anyhow::Result<HashMap<String, (Adapter, u64)>> {
    let http =
        reqwest::Client::builder().timeout(config.timeout()).pool_max_idle_per_host(config.concurrency).build()?;
    let mut out = HashMap::new();
    for (name, target) in &config.slack {
        out.insert(
            format!("slack:{name}"),
            (Adapter::Slack(slack::Slack::new(http.clone(), target)), target.per_minute),
        );
    }
    for (name, target) in &config.pagerduty {
        let adapter = Adapter::PagerDuty(pagerduty::PagerDuty::new(http.clone(), target));
        out.insert(format!("pagerduty:{name}"), (adapter, target.per_minute));
    }
    for (name, target) in &config.teams {
        out.insert(
            format!("teams:{name}"),
            (Adapter::Teams(teams::Teams::new(http.clone(), target)), target.per_minute),
        );
    }
    for (name, target) in &config.email {
        let adapter = email::Email::new(target, config.timeout())
            .map_err(|e| anyhow::anyhow!("invalid configuration: key `notify.email.{name}`: {e}"))?;
        out.insert(format!("email:{name}"), (Adapter::Email(adapter), target.per_minute));
    }
    for (name, target) in &config.webhook {
        let adapter = Adapter::Webhook(webhook::Webhook::new(http.clone(), target));
        out.insert(format!("webhook:{name}"), (adapter, target.per_minute));
    }
    Ok(out)
}

/// Sends `request` and returns the status and body of a 2xx answer; anything else is a
/// [`SendError`] that says whether to try again, and when the receiver asked for.
async fn post(request: reqwest::RequestBuilder) -> Result<(u16, String), SendError> {
    let response = request.send().await.map_err(|e| SendError::Transient {
        message: if e.is_timeout() { "request timed out".into() } else { format!("request failed: {e}") },
        status: 0,
        retry_after: None,
    })?;
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(quench_retry::retry_after);
    let body = response.text().await.unwrap_or_default();
    let message = || format!("HTTP {status}: {}", body.chars().take(300).collect::<String>());
    match status {
        200..=299 => Ok((status, body)),
        408 | 425 | 429 | 500..=599 => Err(SendError::Transient { message: message(), status, retry_after }),
        _ => Err(SendError::Permanent { message: message(), status }),
    }
}
