//! Slack's interactivity requests: a button of a Quench message was clicked. The form body's
//! `payload` is `block_actions` JSON whose actions carry `quench_acknowledge` or
//! `quench_resolve` as their `action_id` and the incident id as their `value` (as
//! [`crate::channel::slack`] writes them). Signed as Slack documents: `v0=` + hex HMAC-SHA256
//! of `v0:{X-Slack-Request-Timestamp}:{body}` with the app's signing secret.

use axum::{body::Body, extract::State, http::HeaderMap, http::StatusCode, response::Response};
use quench_schemas::{ActionKind, IncidentAction};
use serde_json::Value;

use super::{error, Callbacks};
use crate::{
    channel::slack::{ACKNOWLEDGE_BUTTON, RESOLVE_BUTTON},
    signing::{hmac_hex, same},
};

/// The buttons' action ids, and what each does.
const BUTTONS: &[(&str, ActionKind)] =
    &[(ACKNOWLEDGE_BUTTON, ActionKind::Acknowledge), (RESOLVE_BUTTON, ActionKind::Resolve)];

pub async fn interaction(State(callbacks): State<Callbacks>, headers: HeaderMap, body: Body) -> Response {
    let secret = callbacks.config.slack_signing_secret.as_ref().expect("routed only with a secret");
    let now = jiff::Timestamp::now().as_second();
    // A fresh timestamp and a signature from the headers, before the body is read.
    if let Err(why) = verify(secret.expose(), &headers, None, now, callbacks.config.max_age_s) {
        return error(StatusCode::UNAUTHORIZED, why);
    }
    let body = match crate::api::read_body(body).await {
        Ok(body) => body,
        Err((status, why)) => return error(status, why),
    };
    if let Err(why) = verify(secret.expose(), &headers, Some(&body), now, callbacks.config.max_age_s) {
        return error(StatusCode::UNAUTHORIZED, why);
    }
    let payload = form_urlencoded::parse(&body).find(|(k, _)| k == "payload").map(|(_, v)| v.into_owned());
    let Some(payload) = payload.and_then(|p| serde_json::from_str::<Value>(&p).ok()) else {
        return error(StatusCode::BAD_REQUEST, "no `payload` JSON in the form body");
    };
    let actions = actions(&payload, jiff::Timestamp::now().as_millisecond());
    callbacks.submit(actions, "slack").await
}

/// Checks the timestamp's age and the signature of `body`; without a body, only that a
/// signature is there.
fn verify(secret: &str, headers: &HeaderMap, body: Option<&[u8]>, now: i64, max_age_s: u64) -> Result<(), String> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let timestamp = header("x-slack-request-timestamp");
    let at: i64 = timestamp.parse().map_err(|_| "no X-Slack-Request-Timestamp".to_string())?;
    if now.abs_diff(at) > max_age_s {
        return Err(format!("X-Slack-Request-Timestamp is more than {max_age_s} s away: a replay?"));
    }
    let Some(body) = body else {
        return match header("x-slack-signature").is_empty() {
            true => Err("no X-Slack-Signature".into()),
            false => Ok(()),
        };
    };
    let expected = format!("v0={}", hmac_hex(secret.as_bytes(), &[b"v0:", timestamp.as_bytes(), b":", body]));
    if !same(&expected, header("x-slack-signature")) {
        return Err("X-Slack-Signature does not match the body (notify.callbacks.slack_signing_secret)".into());
    }
    Ok(())
}

/// The actions the payload's clicks on Quench's buttons ask for.
fn actions(payload: &Value, at: i64) -> Vec<IncidentAction> {
    if payload["type"] != "block_actions" {
        return Vec::new();
    }
    let user = &payload["user"];
    let who = ["username", "name", "id"].iter().find_map(|k| user[k].as_str()).unwrap_or("someone");
    let clicks = payload["actions"].as_array().cloned().unwrap_or_default();
    clicks
        .iter()
        .filter_map(|click| {
            let (_, kind) = BUTTONS.iter().find(|(id, _)| click["action_id"] == *id)?;
            let incident = click["value"].as_str()?;
            // Slack's own id of the click: a retried delivery of it applies once.
            let stamp = click["action_ts"].as_str().unwrap_or_default();
            Some(IncidentAction {
                action_id: format!("slack/{incident}/{who}/{stamp}"),
                incident_id: incident.to_string(),
                kind: *kind,
                actor: format!("slack:{who}"),
                comment: None,
                at,
                tenant: String::new(),
                token: "slack".into(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn signed(secret: &str, timestamp: i64, body: &[u8]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        let signature = format!("v0={}", hmac_hex(secret.as_bytes(), &[format!("v0:{timestamp}:").as_bytes(), body]));
        headers.insert("x-slack-signature", signature.parse().unwrap());
        headers.insert("x-slack-request-timestamp", timestamp.to_string().parse().unwrap());
        headers
    }

    #[test]
    fn only_a_fresh_request_signed_with_the_secret_passes() {
        let body = b"payload=%7B%7D";
        assert_eq!(verify("s3cret", &signed("s3cret", 1_000, body), Some(body), 1_010, 300), Ok(()));
        assert!(verify("s3cret", &signed("other", 1_000, body), Some(body), 1_010, 300)
            .unwrap_err()
            .contains("does not match"));
        assert!(verify("s3cret", &signed("s3cret", 1_000, body), Some(b"payload=x"), 1_010, 300).is_err());
        assert!(verify("s3cret", &signed("s3cret", 1_000, body), Some(body), 2_000, 300)
            .unwrap_err()
            .contains("replay"));
        assert!(verify("s3cret", &HeaderMap::new(), Some(body), 1_000, 300).is_err());
        assert!(verify("s3cret", &HeaderMap::new(), None, 1_000, 300).is_err(), "refused before the body is read");
        assert_eq!(verify("s3cret", &signed("s3cret", 1_000, body), None, 1_010, 300), Ok(()), "then the body is read");
    }

    #[test]
    fn clicks_on_quench_buttons_become_actions_by_the_slack_user() {
        let payload = json!({
            "type": "block_actions",
            "user": {"id": "U1", "username": "alice"},
            "actions": [
                {"action_id": "quench_acknowledge", "value": "inc-1", "action_ts": "1700000000.1"},
                {"action_id": "someone_elses_button", "value": "x"}
            ]
        });
        let actions = actions(&payload, 5);
        assert_eq!(actions.len(), 1);
        assert_eq!((actions[0].kind, actions[0].actor.as_str()), (ActionKind::Acknowledge, "slack:alice"));
        assert_eq!(actions[0].action_id, "slack/inc-1/alice/1700000000.1");
        assert!(super::actions(&json!({"type": "view_submission"}), 5).is_empty());
    }
}
