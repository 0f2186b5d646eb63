//! Acknowledging where people are: Slack's interactive buttons on Quench's messages and
//! PagerDuty's webhooks (v3) become actions on `incident-actions`, as the acknowledgement API's
//! do, so an acknowledgement in Slack or PagerDuty stops Quench's escalation too.
//!
//! - `POST /v1/slack/interactions`: Slack's request URL for interactivity; signed with the
//!   app's signing secret (`X-Slack-Signature`, `X-Slack-Request-Timestamp`);
//! - `POST /v1/pagerduty/webhooks`: a PagerDuty webhook subscription's URL; signed with the
//!   subscription's secret (`X-PagerDuty-Signature`).
//!
//! Each is served only when its secret is set in `[notify.callbacks]`. A request that is not
//! signed, signed with another secret, or (Slack) older than `max_age_s` is refused with 401
//! before its body is read.

pub(crate) mod pagerduty;
mod slack;

use std::sync::Arc;

use axum::{
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::post,
    Json, Router,
};
use quench_schemas::IncidentAction;
use quench_secret::Secret;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::{
    api::{Rejection, Submit},
    events::ActionAccepted,
};

/// `[notify.callbacks]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CallbacksConfig {
    /// The Slack app's signing secret (Basic Information, App Credentials); unset, no Slack route.
    pub slack_signing_secret: Option<Secret>,
    /// The PagerDuty webhook subscription's secret; unset, no PagerDuty route.
    pub pagerduty_webhook_secret: Option<Secret>,
    /// The PagerDuty services (ids) Quench pages through: an event of another service is left
    /// alone, so that whoever can raise an incident there with Quench's dedup key cannot act on
    /// Quench's incidents. Empty: every service of the subscription.
    pub pagerduty_services: Vec<String>,
    /// Slack requests older than this (by their signed timestamp) are refused as replays.
    pub max_age_s: u64,
}

impl Default for CallbacksConfig {
    fn default() -> Self {
        Self {
            slack_signing_secret: None,
            pagerduty_webhook_secret: None,
            pagerduty_services: Vec::new(),
            max_age_s: 300,
        }
    }
}

#[derive(Clone)]
struct Callbacks {
    config: Arc<CallbacksConfig>,
    submit: Submit,
}

/// The routes of the callbacks whose secrets are set.
pub fn router(config: &CallbacksConfig, submit: Submit) -> Router {
    let state = Callbacks { config: Arc::new(config.clone()), submit };
    let mut router = Router::new();
    if config.slack_signing_secret.is_some() {
        router = router.route("/v1/slack/interactions", post(slack::interaction));
    }
    if config.pagerduty_webhook_secret.is_some() {
        router = router.route("/v1/pagerduty/webhooks", post(pagerduty::webhook));
    }
    router.with_state(state)
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

impl Callbacks {
    /// Submits `actions`; the first that is not taken decides the answer.
    async fn submit(&self, actions: Vec<IncidentAction>, source: &'static str) -> Response {
        let mut accepted = Vec::new();
        for action in actions {
            let id = action.incident_id.clone();
            // An action that knows its tenant (PagerDuty's dedup key holds it) acts only there.
            let scope = (!action.tenant.is_empty()).then(|| vec![action.tenant.clone()]);
            match (self.submit)(action, scope).await {
                Ok(()) => {
                    ActionAccepted { kind: source }.emit();
                    accepted.push(id);
                }
                Err(Rejection::UnknownIncident) => {
                    // Not Quench's incident (PagerDuty sends every service's): nothing to do.
                    tracing::info!(incident = %id, source, "a callback names no incident of Quench's");
                }
                Err(Rejection::Unavailable(why)) => {
                    return error(StatusCode::SERVICE_UNAVAILABLE, format!("not recorded, retry: {why}"))
                }
            }
        }
        (StatusCode::OK, Json(json!({ "accepted": accepted }))).into_response()
    }
}
