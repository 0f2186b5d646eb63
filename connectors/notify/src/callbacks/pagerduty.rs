//! PagerDuty's webhooks (v3): `incident.acknowledged` and `incident.resolved` of an incident
//! Quench triggered (its `incident_key` is the dedup key Quench sent, the incident id) become
//! actions by the agent who took them; other event types are answered 200 and left alone.
//! Signed as PagerDuty documents: `X-PagerDuty-Signature: v1=<hex HMAC-SHA256 of the body>`,
//! several comma-separated while a secret is being rotated.

use axum::{body::Body, extract::State, http::HeaderMap, http::StatusCode, response::Response};
use quench_schemas::{ActionKind, IncidentAction};
use serde_json::Value;

use super::{error, Callbacks};
use crate::signing::{hmac_hex, same};

pub(super) async fn webhook(State(callbacks): State<Callbacks>, headers: HeaderMap, body: Body) -> Response {
    let secret = callbacks.config.pagerduty_webhook_secret.as_ref().expect("routed only with a secret");
    let presented = headers.get("x-pagerduty-signature").and_then(|v| v.to_str().ok()).unwrap_or_default();
    // No signature, no body read.
    if presented.trim().is_empty() {
        return error(StatusCode::UNAUTHORIZED, "no X-PagerDuty-Signature");
    }
    let body = match crate::api::read_body(body).await {
        Ok(body) => body,
        Err((status, why)) => return error(status, why),
    };
    if !signed(secret.expose(), presented, &body) {
        return error(
            StatusCode::UNAUTHORIZED,
            "X-PagerDuty-Signature does not match the body (notify.callbacks.pagerduty_webhook_secret)",
        );
    }
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return error(StatusCode::BAD_REQUEST, "the body is not JSON");
    };
    let action = action(&body["event"], &callbacks.config.pagerduty_services, jiff::Timestamp::now().as_millisecond());
    callbacks.submit(action.into_iter().collect(), "pagerduty").await
}

/// Whether one of the `v1=` signatures is the body's.
fn signed(secret: &str, presented: &str, body: &[u8]) -> bool {
    let expected = format!("v1={}", hmac_hex(secret.as_bytes(), &[body]));
    presented.split(',').any(|signature| same(&expected, signature.trim()))
}

/// The action an event asks for, if it is one Quench takes (of one of `services`, when named).
/// A redelivered event has the same id, so the action applies once; the signature and the
/// service are what keep others' events out.
fn action(event: &Value, services: &[String], at: i64) -> Option<IncidentAction> {
    let service = event["data"]["service"]["id"].as_str().unwrap_or_default();
    if !services.is_empty() && !services.iter().any(|s| s == service) {
        return None;
    }
    let kind = match event["event_type"].as_str()? {
        "incident.acknowledged" => ActionKind::Acknowledge,
        "incident.resolved" => ActionKind::Resolve,
        _ => return None,
    };
    let (tenant, incident) = incident_of(event["data"]["incident_key"].as_str().filter(|k| !k.is_empty())?);
    let agent = event["agent"]["summary"].as_str().unwrap_or("someone");
    Some(IncidentAction {
        // PagerDuty's event id: a redelivered webhook applies once.
        action_id: format!("pagerduty/{}", event["id"].as_str().unwrap_or(incident)),
        incident_id: incident.to_string(),
        kind,
        actor: format!("pagerduty:{agent}"),
        comment: None,
        at,
        tenant: tenant.to_string(),
        token: "pagerduty".into(),
    })
}

/// The dedup key Quench sends PagerDuty for an incident: `<tenant>/<incident id>`.
pub fn dedup_key(tenant: &str, incident_id: &str) -> String {
    format!("{tenant}/{incident_id}")
}

/// The tenant (empty for a key sent before keys held it) and incident of a dedup key.
fn incident_of(key: &str) -> (&str, &str) {
    key.rsplit_once('/').unwrap_or(("", key))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn any_of_the_rotating_signatures_may_match() {
        let body = br#"{"event":{}}"#;
        let good = format!("v1={}", hmac_hex(b"s3cret", &[body]));
        assert!(signed("s3cret", &good, body));
        assert!(signed("s3cret", &format!("v1=00ff, {good}"), body));
        assert!(!signed("s3cret", "v1=00ff", body));
        assert!(!signed("other", &good, body));
        assert!(!signed("s3cret", &good, br#"{"event":{"x":1}}"#));
    }

    #[test]
    fn acknowledged_and_resolved_incidents_of_quench_become_actions() {
        let event = json!({
            "id": "01DEN2HQ", "event_type": "incident.acknowledged",
            "agent": {"summary": "Alice Example", "type": "user_reference"},
            "data": {"id": "PGR0VU2", "type": "incident", "incident_key": "inc-7", "status": "acknowledged"}
        });
        let action = action(&event, &[], 5).unwrap();
        assert!(super::action(&event, &["PSERVICE".to_string()], 5).is_none(), "not a service Quench pages through");
        let mut ours = event.clone();
        ours["data"]["service"] = json!({"id": "PSERVICE"});
        assert!(super::action(&ours, &["PSERVICE".to_string()], 5).is_some());
        assert_eq!(
            (action.kind, action.incident_id.as_str(), action.tenant.as_str()),
            (ActionKind::Acknowledge, "inc-7", "")
        );
        let mut keyed = event.clone();
        keyed["data"]["incident_key"] = dedup_key("team-a", "inc-7").into();
        let keyed = super::action(&keyed, &[], 5).unwrap();
        assert_eq!((keyed.tenant.as_str(), keyed.incident_id.as_str()), ("team-a", "inc-7"), "acts only in its tenant");
        assert_eq!(
            (action.actor.as_str(), action.action_id.as_str()),
            ("pagerduty:Alice Example", "pagerduty/01DEN2HQ")
        );
        let mut other = event.clone();
        other["event_type"] = "incident.priority_updated".into();
        assert!(super::action(&other, &[], 5).is_none());
        other["event_type"] = "incident.resolved".into();
        other["data"]["incident_key"] = Value::Null;
        assert!(super::action(&other, &[], 5).is_none(), "not one Quench triggered");
    }
}
