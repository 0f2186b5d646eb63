//! FAKE Slack, PagerDuty, Microsoft Teams and webhook receivers for the notifier tests: hosted
//! services cannot run here. Each checks the request shape its service documents, answers as it
//! does, and records what it accepted (and what it refused as malformed) for the test to count.

use std::{
    collections::HashMap,
    path::PathBuf,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{
    body::Bytes,
    extract::{Path, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::post,
    Json, Router,
};
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

pub const SLACK_TOKEN: &str = "xoxb-test-token";
pub const PAGERDUTY_KEY: &str = "0123456789abcdef0123456789abcdef";
pub const WEBHOOK_SECRET: &str = "webhook-secret-0123456789";

/// One accepted request.
#[derive(Debug, Clone)]
pub struct Received {
    pub peer: String,
    /// Idempotency key (webhook header, Slack client_msg_id) or PagerDuty dedup_key.
    pub key: String,
    /// PagerDuty event_action, Slack thread_ts, the card's title for Teams.
    pub detail: String,
    pub body: Value,
}

#[derive(Default)]
pub struct Peers {
    pub received: Mutex<Vec<Received>>,
    pub malformed: Mutex<Vec<String>>,
    slack_threads: Mutex<Vec<String>>,
    /// Requests still to answer with 429 + Retry-After, per peer.
    pub throttle: Mutex<HashMap<String, u32>>,
    /// Delay before answering webhooks, to keep deliveries in flight.
    pub webhook_delay_ms: Mutex<u64>,
}

impl Peers {
    pub fn of(&self, peer: &str) -> Vec<Received> {
        self.received.lock().unwrap().iter().filter(|r| r.peer == peer).cloned().collect()
    }

    fn accept(&self, peer: &str, key: &str, detail: &str, body: Value) {
        let received = Received { peer: peer.into(), key: key.into(), detail: detail.into(), body };
        self.received.lock().unwrap().push(received);
    }

    fn refuse(&self, peer: &str, why: String) -> Response {
        self.malformed.lock().unwrap().push(format!("{peer}: {why}"));
        (StatusCode::BAD_REQUEST, why).into_response()
    }

    fn throttled(&self, peer: &str) -> Option<Response> {
        let mut throttle = self.throttle.lock().unwrap();
        let left = throttle.get_mut(peer).filter(|n| **n > 0)?;
        *left -= 1;
        Some((StatusCode::TOO_MANY_REQUESTS, [("retry-after", "1")], "slow down").into_response())
    }
}

/// Files for a run whose notifier pages the fake webhook peer at `base`: in `dir`, a
/// configuration with the webhook target `ops` (and `extra`, more TOML) and routing rules that
/// send every incident to it. Returns (configuration, routing) paths.
pub fn webhook_files(dir: &std::path::Path, base: &str, extra: &str) -> (PathBuf, PathBuf) {
    let config = dir.join("quench.toml");
    std::fs::write(
        &config,
        format!(
            "[notify]\nlisten = \"127.0.0.1:0\"\n[notify.webhook.ops]\nurl = \"{base}/webhook/ops\"\n\
             secret = \"{WEBHOOK_SECRET}\"\n{extra}"
        ),
    )
    .unwrap();
    let routing = dir.join("routing.yaml");
    std::fs::write(&routing, "default:\n  team: ops\n  targets:\n    - { channel: webhook, target: ops }\n").unwrap();
    (config, routing)
}

/// Serves the fakes on 127.0.0.1 and returns the base URL.
pub async fn serve(peers: Arc<Peers>) -> String {
    let app = Router::new()
        .route("/slack/api/chat.postMessage", post(slack))
        .route("/pagerduty/v2/enqueue", post(pagerduty))
        .route("/teams/{name}", post(teams))
        .route("/webhook/{name}", post(webhook))
        .with_state(peers);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{address}")
}

fn json_body(body: &Bytes) -> Result<Value, String> {
    serde_json::from_slice(body).map_err(|e| format!("body is not JSON: {e}"))
}

/// Slack Web API `chat.postMessage`: bearer token, channel, text; replies name an existing thread.
async fn slack(State(peers): State<Arc<Peers>>, headers: HeaderMap, body: Bytes) -> Response {
    if let Some(response) = peers.throttled("slack") {
        return response;
    }
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(&format!("Bearer {SLACK_TOKEN}")) {
        return Json(json!({"ok": false, "error": "not_authed"})).into_response();
    }
    let body = match json_body(&body) {
        Ok(body) => body,
        Err(e) => return peers.refuse("slack", e),
    };
    if body["channel"].as_str().is_none_or(str::is_empty) || body["text"].as_str().is_none_or(str::is_empty) {
        return peers.refuse("slack", format!("channel and text are required: {body}"));
    }
    let mut threads = peers.slack_threads.lock().unwrap();
    let thread = body["thread_ts"].as_str().unwrap_or_default().to_string();
    if !thread.is_empty() && !threads.contains(&thread) {
        drop(threads);
        return Json(json!({"ok": false, "error": "thread_not_found"})).into_response();
    }
    let ts = format!("{}.000100", 1_700_000_000 + threads.len());
    threads.push(ts.clone());
    drop(threads);
    peers.accept("slack", body["client_msg_id"].as_str().unwrap_or_default(), &thread, body.clone());
    Json(json!({"ok": true, "channel": body["channel"], "ts": ts})).into_response()
}

/// PagerDuty Events API v2: routing key, event_action, dedup_key; a trigger needs a payload with
/// summary, source and one of four severities. Answers 202 as PagerDuty does.
async fn pagerduty(State(peers): State<Arc<Peers>>, body: Bytes) -> Response {
    if let Some(response) = peers.throttled("pagerduty") {
        return response;
    }
    let body = match json_body(&body) {
        Ok(body) => body,
        Err(e) => return peers.refuse("pagerduty", e),
    };
    let action = body["event_action"].as_str().unwrap_or_default().to_string();
    let problems = [
        (body["routing_key"] != PAGERDUTY_KEY, "routing_key is not the integration key"),
        (!["trigger", "acknowledge", "resolve"].contains(&action.as_str()), "event_action"),
        (body["dedup_key"].as_str().is_none_or(str::is_empty), "dedup_key"),
        (
            action == "trigger" && body["payload"]["summary"].as_str().is_none_or(|s| s.is_empty() || s.len() > 1024),
            "payload.summary",
        ),
        (action == "trigger" && body["payload"]["source"].as_str().is_none_or(str::is_empty), "payload.source"),
        (
            action == "trigger"
                && !["critical", "error", "warning", "info"]
                    .contains(&body["payload"]["severity"].as_str().unwrap_or_default()),
            "payload.severity",
        ),
    ];
    if let Some((_, field)) = problems.iter().find(|(bad, _)| *bad) {
        return peers.refuse("pagerduty", format!("invalid {field}: {body}"));
    }
    let dedup = body["dedup_key"].as_str().unwrap_or_default().to_string();
    peers.accept("pagerduty", &dedup, &action, body);
    (StatusCode::ACCEPTED, Json(json!({"status": "success", "message": "Event processed", "dedup_key": dedup})))
        .into_response()
}

/// Teams incoming webhook / Workflows: a message with one Adaptive Card attachment.
async fn teams(State(peers): State<Arc<Peers>>, Path(name): Path<String>, body: Bytes) -> Response {
    let body = match json_body(&body) {
        Ok(body) => body,
        Err(e) => return peers.refuse("teams", e),
    };
    let card = &body["attachments"][0];
    let ok = body["type"] == "message"
        && card["contentType"] == "application/vnd.microsoft.card.adaptive"
        && card["content"]["type"] == "AdaptiveCard"
        && card["content"]["version"].as_str().is_some()
        && card["content"]["body"].as_array().is_some_and(|b| !b.is_empty());
    if !ok {
        return peers.refuse("teams", format!("not a message with an Adaptive Card: {body}"));
    }
    let title = card["content"]["body"][0]["text"].as_str().unwrap_or_default().to_string();
    peers.accept(&format!("teams/{name}"), "", &title, body);
    (StatusCode::OK, "1").into_response()
}

/// Quench's signed webhook: Idempotency-Key, X-Quench-Timestamp and an HMAC of `timestamp.body`.
async fn webhook(
    State(peers): State<Arc<Peers>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let delay = *peers.webhook_delay_ms.lock().unwrap();
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    match name.as_str() {
        "rejects" => return (StatusCode::BAD_REQUEST, "this receiver refuses everything").into_response(),
        // Takes the request and never answers: recorded on arrival, in order with the rest.
        "dead" => {
            peers.accept("webhook/dead", &header("idempotency-key"), "", Value::Null);
            std::future::pending::<()>().await;
        }
        _ => {}
    }
    let (key, timestamp, signature) =
        (header("idempotency-key"), header("x-quench-timestamp"), header("x-quench-signature"));
    let mut mac = Hmac::<Sha256>::new_from_slice(WEBHOOK_SECRET.as_bytes()).unwrap();
    mac.update(format!("{timestamp}.").as_bytes());
    mac.update(&body);
    let expected: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
    if key.is_empty() || signature != format!("sha256={expected}") {
        return peers.refuse("webhook", format!("bad key or signature: key={key} signature={signature}"));
    }
    let body = match json_body(&body) {
        Ok(body) => body,
        Err(e) => return peers.refuse("webhook", e),
    };
    peers.accept(&format!("webhook/{name}"), &key, "", body);
    StatusCode::NO_CONTENT.into_response()
}
