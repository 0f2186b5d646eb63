//! The acknowledgement API: `POST /v1/incidents/{id}/ack`, `/resolve` and `/comment` with a bearer
//! token, each turned into an `IncidentAction` for `incident-actions`, which the stream worker
//! applies to the incident (and which stops its escalation once the worker re-emits it).
//!
//! Body (optional for ack and resolve): `{"actor": "alice", "comment": "on it"}`. An
//! `Idempotency-Key` header becomes the action id, so a retried request applies once.
//!
//! A token acts only on its tenants' incidents (another tenant's is answered 404, as if it did not
//! exist) and only with `write = true`. The action records the token's name as `token` and the
//! body's `actor` (default: the token's name) as `actor`: a claim the token vouches for, kept
//! apart so the trail cannot be forged.

use std::{collections::BTreeMap, sync::Arc};

use axum::{
    body::{Body as RequestBody, Bytes},
    extract::{Path, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::post,
    Json, Router,
};
use futures::future::BoxFuture;
use quench_schemas::{ActionKind, IncidentAction};
use serde::Deserialize;
use serde_json::json;

use quench_secret::ApiToken;

use crate::events::ActionAccepted;

/// Why an action was not accepted, beyond the request itself.
#[derive(Debug, Clone, PartialEq)]
pub enum Rejection {
    /// No incident has this id (yet): the notifier has not read it from `incidents`.
    UnknownIncident,
    /// Kafka did not take the action.
    Unavailable(String),
}

/// The tenants whose incidents a request may act on; `None` for all.
pub type Scope = Option<Vec<String>>;

/// Writes an action to Kafka once it is valid and its incident is in scope (else
/// [`Rejection::UnknownIncident`]); the notifier's Kafka shell provides it.
pub type Submit = Arc<dyn Fn(IncidentAction, Scope) -> BoxFuture<'static, Result<(), Rejection>> + Send + Sync>;

#[derive(Clone)]
struct Api {
    tokens: Arc<BTreeMap<String, ApiToken>>,
    submit: Submit,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Body {
    actor: Option<String>,
    comment: Option<String>,
}

pub fn router(tokens: BTreeMap<String, ApiToken>, submit: Submit) -> Router {
    Router::new().route("/v1/incidents/{id}/{verb}", post(act)).with_state(Api { tokens: Arc::new(tokens), submit })
}

/// The largest body an API request may carry (actions, comments, silences are small).
pub const MAX_BODY_BYTES: usize = 1 << 20;
/// How long a body may take to arrive, once its headers did.
pub const BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Reads a request's body, once its credentials were checked (a body is never buffered for a
/// client that may not send one): at most [`MAX_BODY_BYTES`], within [`BODY_TIMEOUT`].
pub async fn read_body(body: RequestBody) -> Result<Bytes, (StatusCode, String)> {
    use axum::body::HttpBody;
    // A body announced too large is refused before any of it is read.
    if body.size_hint().lower() > MAX_BODY_BYTES as u64 {
        return Err((StatusCode::PAYLOAD_TOO_LARGE, format!("a body of at most {MAX_BODY_BYTES} bytes")));
    }
    match tokio::time::timeout(BODY_TIMEOUT, axum::body::to_bytes(body, MAX_BODY_BYTES)).await {
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(_)) => Err((StatusCode::PAYLOAD_TOO_LARGE, format!("a body of at most {MAX_BODY_BYTES} bytes"))),
        Err(_) => Err((StatusCode::REQUEST_TIMEOUT, format!("the body did not arrive within {BODY_TIMEOUT:?}"))),
    }
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

async fn act(
    State(api): State<Api>,
    Path((id, verb)): Path<(String, String)>,
    headers: HeaderMap,
    body: RequestBody,
) -> Response {
    let authorization = headers.get("authorization").and_then(|v| v.to_str().ok());
    let Some((token_name, token)) = quench_secret::authenticate(&api.tokens, authorization) else {
        return error(
            StatusCode::UNAUTHORIZED,
            "missing or unknown `Authorization: Bearer <token>` (see notify.api_tokens)",
        );
    };
    if !token.write {
        return error(StatusCode::FORBIDDEN, format!("token `{token_name}` may not write (notify.api_tokens)"));
    }
    let body = match read_body(body).await {
        Ok(body) => body,
        Err((status, message)) => return error(status, message),
    };
    let kind = match verb.as_str() {
        "ack" | "acknowledge" => ActionKind::Acknowledge,
        "resolve" => ActionKind::Resolve,
        "comment" => ActionKind::Comment,
        other => return error(StatusCode::NOT_FOUND, format!("no action `{other}`: use ack, resolve or comment")),
    };
    let body: Body = if body.iter().all(u8::is_ascii_whitespace) {
        Body::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(body) => body,
            Err(e) => {
                return error(StatusCode::BAD_REQUEST, format!("body is not {{\"actor\", \"comment\"}} JSON: {e}"))
            }
        }
    };
    if kind == ActionKind::Comment && body.comment.as_deref().is_none_or(|c| c.trim().is_empty()) {
        return error(StatusCode::BAD_REQUEST, "a comment needs a non-empty `comment`");
    }
    let at = jiff::Timestamp::now().as_millisecond();
    let actor = body.actor.unwrap_or_else(|| token_name.to_string());
    let action_id = match headers.get("idempotency-key").and_then(|v| v.to_str().ok()) {
        Some(key) if !key.trim().is_empty() => key.trim().to_string(),
        _ => format!("{id}/{verb}/{actor}/{at}"),
    };
    let action = IncidentAction {
        action_id: action_id.clone(),
        incident_id: id.clone(),
        kind,
        actor,
        comment: body.comment,
        at,
        // The incident's, from the directory, once it is found in scope.
        tenant: String::new(),
        token: token_name.to_string(),
    };
    match (api.submit)(action, token.scope()).await {
        Ok(()) => {
            ActionAccepted { kind: &verb }.emit();
            (StatusCode::ACCEPTED, Json(json!({ "action_id": action_id, "incident_id": id, "kind": verb })))
                .into_response()
        }
        Err(Rejection::UnknownIncident) => error(StatusCode::NOT_FOUND, format!("no incident `{id}`")),
        Err(Rejection::Unavailable(e)) => {
            error(StatusCode::SERVICE_UNAVAILABLE, format!("action not recorded, retry: {e}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use axum::{body::Body as AxumBody, http::Request};
    use tower::ServiceExt;

    use super::*;

    fn app(seen: Arc<Mutex<Vec<IncidentAction>>>) -> Router {
        // A fake directory: `missing` is nobody's, `inc-b` is tenant b's, the rest tenant a's.
        let submit: Submit = Arc::new(move |action: IncidentAction, scope: Scope| {
            let seen = seen.clone();
            Box::pin(async move {
                let tenant = if action.incident_id == "inc-b" { "b" } else { "a" };
                if action.incident_id == "missing" || scope.is_some_and(|s| !s.iter().any(|t| t == tenant)) {
                    return Err(Rejection::UnknownIncident);
                }
                seen.lock().unwrap().push(action);
                Ok(())
            })
        });
        let token = |secret: &str, tenants: &[&str], write| ApiToken {
            token: secret.into(),
            tenants: tenants.iter().map(|t| t.to_string()).collect(),
            write,
        };
        let tokens = [
            ("ops-bot".to_string(), token("0123456789abcdef", &["*"], true)),
            ("team-a".to_string(), token("aaaaaaaaaaaaaaaa", &["a"], true)),
            ("reader".to_string(), token("rrrrrrrrrrrrrrrr", &["*"], false)),
        ];
        router(tokens.into(), submit)
    }

    async fn call(app: Router, path: &str, token: Option<&str>, body: &str) -> (StatusCode, String) {
        let mut request = Request::post(path).header("idempotency-key", "k-1");
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let response = app.oneshot(request.body(AxumBody::from(body.to_string())).unwrap()).await.unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap();
        (status, String::from_utf8_lossy(&bytes).into_owned())
    }

    #[tokio::test]
    async fn actions_need_a_token_and_a_valid_body() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let token = Some("0123456789abcdef");
        assert_eq!(call(app(seen.clone()), "/v1/incidents/inc-1/ack", None, "").await.0, StatusCode::UNAUTHORIZED);
        assert_eq!(
            call(app(seen.clone()), "/v1/incidents/inc-1/ack", Some("wrong"), "").await.0,
            StatusCode::UNAUTHORIZED
        );
        let (status, text) = call(app(seen.clone()), "/v1/incidents/inc-1/comment", token, "{}").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(text.contains("non-empty `comment`"), "{text}");
        let (status, text) = call(app(seen.clone()), "/v1/incidents/inc-1/ack", token, "{\"who\": 1}").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(text.contains("unknown field `who`"), "{text}");
        assert_eq!(call(app(seen.clone()), "/v1/incidents/inc-1/snooze", token, "").await.0, StatusCode::NOT_FOUND);
        assert_eq!(call(app(seen.clone()), "/v1/incidents/missing/ack", token, "").await.0, StatusCode::NOT_FOUND);
        assert!(seen.lock().unwrap().is_empty());

        let (status, _) = call(app(seen.clone()), "/v1/incidents/inc-1/ack", token, "").await;
        assert_eq!(status, StatusCode::ACCEPTED);
        let (status, _) =
            call(app(seen.clone()), "/v1/incidents/inc-1/resolve", token, r#"{"actor":"alice","comment":"fixed"}"#)
                .await;
        assert_eq!(status, StatusCode::ACCEPTED);
        let seen = seen.lock().unwrap();
        assert_eq!(
            (seen[0].kind, seen[0].actor.as_str(), seen[0].action_id.as_str()),
            (ActionKind::Acknowledge, "ops-bot", "k-1")
        );
        assert_eq!(
            (seen[1].kind, seen[1].actor.as_str(), seen[1].comment.as_deref()),
            (ActionKind::Resolve, "alice", Some("fixed"))
        );
        assert_eq!((seen[0].token.as_str(), seen[1].token.as_str()), ("ops-bot", "ops-bot"), "the token, verified");
    }

    #[tokio::test]
    async fn a_token_acts_only_on_its_tenants_incidents_and_only_if_it_may_write() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (status, _) = call(app(seen.clone()), "/v1/incidents/inc-b/ack", Some("aaaaaaaaaaaaaaaa"), "").await;
        assert_eq!(status, StatusCode::NOT_FOUND, "another tenant's incident is not there for this token");
        let (status, text) = call(app(seen.clone()), "/v1/incidents/inc-a/ack", Some("rrrrrrrrrrrrrrrr"), "").await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{text}");
        assert!(seen.lock().unwrap().is_empty());
        let claimed = r#"{"actor":"the-cto"}"#;
        let (status, _) = call(app(seen.clone()), "/v1/incidents/inc-a/ack", Some("aaaaaaaaaaaaaaaa"), claimed).await;
        assert_eq!(status, StatusCode::ACCEPTED);
        let seen = seen.lock().unwrap();
        assert_eq!((seen[0].actor.as_str(), seen[0].token.as_str()), ("the-cto", "team-a"), "claim and token apart");
    }
}
