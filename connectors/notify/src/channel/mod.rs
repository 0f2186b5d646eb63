//! Channel adapters: one file per receiving service, each turning a [`Notice`] into that
//! service's documented request. The build script finds the files (see `build.rs`): a file here
//! and its variant of `quench_schemas::Channel` are the whole of a new channel. An enum rather
//! than trait objects dispatches: the set is closed and known at build time.

include!(concat!(env!("OUT_DIR"), "/channels.rs"));

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

/// What every channel file provides: its targets' configuration and an adapter built from it.
pub trait Deliver: Sized {
    /// The table of one target, `[notify.<channel>.<name>]`. Credentials in it are
    /// `quench_secret::Secret`s, so that `quench config` and logs mask them.
    type Target: std::fmt::Debug + Clone + serde::Serialize + serde::de::DeserializeOwned;

    /// The adapter of one target, or what is wrong with its configuration.
    fn new(http: &reqwest::Client, target: &Self::Target, timeout: Duration) -> Result<Self, String>;

    /// Deliveries a minute the receiver accepts for one target (0: unlimited).
    fn per_minute(target: &Self::Target) -> u64;

    /// What makes a target that parsed unusable, as the field (empty for the whole table) and
    /// why; run by `quench check` and at start-up, before any adapter is built.
    fn check(_target: &Self::Target) -> Result<(), (String, String)> {
        Ok(())
    }

    /// Delivers one notice, saying on failure whether another attempt may succeed.
    fn send(&self, notice: &Notice<'_>) -> impl std::future::Future<Output = Result<Receipt, SendError>> + Send;
}

macro_rules! adapters {
    ($(($module:ident, $Type:ident)),*) => {
        /// One target's adapter, of whichever channel.
        pub enum Adapter {
            $($Type($module::$Type),)*
        }

        impl Adapter {
            pub async fn send(&self, notice: &Notice<'_>) -> Result<Receipt, SendError> {
                match self {
                    $(Self::$Type(a) => a.send(notice).await,)*
                }
            }
        }

        /// Every configured target's adapter and per-minute budget, by `channel:name`.
        pub fn adapters(config: &NotifyConfig) -> anyhow::Result<HashMap<String, (Adapter, u64)>> {
            let http = client(config.timeout(), config.concurrency)?;
            let mut out = HashMap::new();
            $(
                for (name, target) in &config.$module {
                    let adapter = $module::$Type::new(&http, target, config.timeout()).map_err(|e| {
                        anyhow::anyhow!(concat!("invalid configuration: key `notify.", stringify!($module), ".{}`: {}"), name, e)
                    })?;
                    let per_minute = $module::$Type::per_minute(target);
                    out.insert(format!(concat!(stringify!($module), ":{}"), name), (Adapter::$Type(adapter), per_minute));
                }
            )*
            Ok(out)
        }
    };
}
with_channels!(adapters);

/// The one HTTP client of every channel. No redirects: one would carry the body (PagerDuty's
/// routing key, signed payloads) and custom headers to a host nobody configured; a 3xx is a
/// permanent failure instead.
fn client(timeout: Duration, concurrency: usize) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(timeout)
        .pool_max_idle_per_host(concurrency)
        .build()
}

/// Sends `request` and returns the status and body of a 2xx answer; anything else is a
/// [`SendError`] that says whether to try again, and when the receiver asked for.
async fn post(request: reqwest::RequestBuilder) -> Result<(u16, String), SendError> {
    // Without the URL: a Slack or Teams webhook URL is the credential itself, and this text is
    // logged, dead-lettered and written to ClickHouse.
    let response = request.send().await.map_err(|e| SendError::Transient {
        message: if e.is_timeout() {
            "request timed out".into()
        } else {
            format!("request failed: {}", e.without_url())
        },
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

#[cfg(test)]
mod tests {
    use std::sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    };

    use axum::{http::StatusCode, response::IntoResponse, routing, Router};

    use super::*;

    async fn serve(app: Router) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        url
    }

    #[tokio::test]
    async fn a_failed_request_does_not_name_its_url() {
        let http = client(Duration::from_secs(2), 1).unwrap();
        // Nothing listens on port 1: the request fails with reqwest's own error.
        let error = post(http.post("http://127.0.0.1:1/services/T000/B000/planted-webhook-secret")).await.unwrap_err();
        let text = format!("{error} {error:?}");
        assert!(!text.contains("planted-webhook-secret") && text.contains("request failed"), "{text}");
    }

    #[tokio::test]
    async fn a_redirect_is_not_followed() {
        let stolen = Arc::new(AtomicUsize::new(0));
        let counter = stolen.clone();
        let elsewhere = serve(Router::new().route(
            "/steal",
            routing::post(move || async move {
                counter.fetch_add(1, Ordering::SeqCst);
                StatusCode::OK
            }),
        ))
        .await;
        let target = format!("{elsewhere}/steal");
        let redirecting = serve(Router::new().route(
            "/hook",
            routing::post(
                move || async move { (StatusCode::TEMPORARY_REDIRECT, [("location", target)]).into_response() },
            ),
        ))
        .await;
        let http = client(Duration::from_secs(2), 1).unwrap();
        let error = post(http.post(format!("{redirecting}/hook")).body("routing_key=secret")).await.unwrap_err();
        assert_eq!(error.status(), 307);
        assert!(matches!(error, SendError::Permanent { .. }), "{error:?}");
        assert_eq!(stolen.load(Ordering::SeqCst), 0, "the body never reached the other host");
    }
}
