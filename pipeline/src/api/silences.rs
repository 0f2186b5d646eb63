//! `GET /api/v1/silences`, `POST /api/v1/silences` and `DELETE /api/v1/silences/{id}`: the
//! silences the worker and the Alertmanager API v2 (on `ingest.listen`) share, through the same
//! store ([`crate::alertmanager_api::Api`]) and the same rules for changes.
//!
//! A silence is not per tenant yet: it mutes matching alerts of every tenant. Until it is, only
//! a token that sees every tenant (`tenants = ["*"]`) may list them, and one with `write` too may
//! make or expire them; a silence is made by the token's name.

use axum::{
    extract::{Path, State},
    http::{HeaderMap, StatusCode},
    Json,
};
use quench_core::mute::{Silence, SilenceMatcher};
use quench_schemas::now_ms;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{Api, Caller, Failure};
use crate::alertmanager_api::{Change, Refusal};

/// A silence as `POST /api/v1/silences` takes it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Posted {
    matchers: Vec<SilenceMatcher>,
    /// RFC 3339; default now.
    starts_at: Option<String>,
    ends_at: String,
    comment: String,
}

impl Api {
    /// The caller, if its token may read (or, with `write`, change) silences, and the store is
    /// ready.
    fn silences_caller(&self, headers: &HeaderMap, write: bool) -> Result<Caller<'_>, Failure> {
        let caller = self.caller(headers)?;
        if caller.token.scope().is_some() {
            return Err(Failure::new(
                StatusCode::FORBIDDEN,
                "a silence mutes alerts of every tenant: only a token of all tenants (tenants = [\"*\"]) reaches them",
            ));
        }
        if write && !caller.token.write {
            return Err(Failure::new(
                StatusCode::FORBIDDEN,
                format!("token `{}` may only read (api.tokens.{0}.write)", caller.name),
            ));
        }
        if !self.silences.ready() {
            return Err(Failure::new(StatusCode::SERVICE_UNAVAILABLE, "the silences are still being read; retry"));
        }
        Ok(caller)
    }
}

fn shown(silence: &Silence, now: i64) -> Value {
    let at = |ms: i64| crate::alertmanager_api::rfc3339(ms);
    json!({
        "id": silence.id, "state": silence.state(now), "matchers": silence.matchers,
        "starts_at": at(silence.starts_at), "ends_at": at(silence.ends_at), "updated_at": at(silence.updated_at),
        "created_by": silence.created_by, "comment": silence.comment,
    })
}

pub async fn list(State(api): State<Api>, headers: HeaderMap) -> Result<Json<Value>, Failure> {
    api.silences_caller(&headers, false)?;
    let now = now_ms();
    let silences: Vec<Value> = api.silences.silences(now).iter().map(|s| shown(s, now)).collect();
    Ok(Json(json!({ "silences": silences })))
}

pub async fn create(
    State(api): State<Api>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<(StatusCode, Json<Value>), Failure> {
    let caller = api.silences_caller(&headers, true)?;
    let body = quench_notify::api::read_body(body).await.map_err(|(status, message)| Failure::new(status, message))?;
    let posted: Posted = serde_json::from_slice(&body).map_err(|e| {
        Failure::parameter(
            StatusCode::BAD_REQUEST,
            "body",
            format!("not a silence ({{\"matchers\", \"ends_at\", \"comment\"}}): {e}"),
        )
    })?;
    if posted.matchers.is_empty() {
        return Err(Failure::parameter(StatusCode::BAD_REQUEST, "matchers", "a silence needs at least one matcher"));
    }
    if posted.comment.trim().is_empty() {
        return Err(Failure::parameter(StatusCode::BAD_REQUEST, "comment", "say why: `comment` is empty"));
    }
    let time = |text: &str, name: &str| {
        crate::ask::parse_time(text).map_err(|e| Failure::parameter(StatusCode::BAD_REQUEST, name, e.to_string()))
    };
    let now = now_ms();
    let starts_at = posted.starts_at.as_deref().map(|t| time(t, "starts_at")).transpose()?.unwrap_or(now);
    let ends_at = time(&posted.ends_at, "ends_at")?;
    let change = Change {
        id: None,
        matchers: posted.matchers,
        starts_at,
        ends_at,
        created_by: caller.name.to_string(),
        comment: posted.comment,
        token: caller.name.to_string(),
    };
    match api.silences.save(change, now).await {
        Ok(id) => Ok((StatusCode::CREATED, Json(json!({ "silence_id": id, "created_by": caller.name })))),
        Err(refusal) => Err(failure(refusal)),
    }
}

pub async fn expire(
    State(api): State<Api>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, Failure> {
    let caller = api.silences_caller(&headers, true)?;
    api.silences.expire(&id, caller.name, now_ms()).await.map_err(failure)?;
    Ok(Json(json!({ "silence_id": id, "state": "expired" })))
}

fn failure(refusal: Refusal) -> Failure {
    match refusal {
        Refusal::NotFound(why) => Failure::new(StatusCode::NOT_FOUND, why),
        // What a valid body can still get wrong: an end already past, or a matcher's regex.
        Refusal::Invalid(why) => {
            let parameter = if why.contains("endsAt") { "ends_at" } else { "matchers" };
            Failure::parameter(StatusCode::BAD_REQUEST, parameter, why)
        }
        Refusal::Unavailable(why) => Failure::new(StatusCode::SERVICE_UNAVAILABLE, why),
    }
}
