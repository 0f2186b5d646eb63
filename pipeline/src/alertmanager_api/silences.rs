//! `/api/v2/silences` and `/api/v2/silence/{id}`, with Alertmanager's rules for changes: a
//! silence whose matchers change, or that already expired, is replaced by a new one (the old one
//! expired); otherwise it is updated in place. A start in the past is moved to now, since a
//! silence never mutes what was decided before it was made.

use std::{
    collections::{hash_map::RandomState, BTreeMap},
    hash::{BuildHasher, Hasher},
    sync::Arc,
    time::Duration,
};

use axum::{
    extract::{Path, RawQuery, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use quench_core::mute::{Silence, SilenceMatcher};
use quench_schemas::now_ms;
use rdkafka::producer::FutureRecord;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{error, parse_time, read_request, reader, rfc3339, unready, Api};
use quench_secret::ApiToken;

/// A silence as clients post it.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Postable {
    #[serde(default)]
    id: Option<String>,
    matchers: Vec<SilenceMatcher>,
    starts_at: String,
    ends_at: String,
    created_by: String,
    comment: String,
}

/// A silence as Alertmanager answers it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Gettable<'a> {
    id: &'a str,
    status: serde_json::Value,
    updated_at: String,
    matchers: &'a [SilenceMatcher],
    starts_at: String,
    ends_at: String,
    created_by: &'a str,
    comment: &'a str,
}

fn gettable(silence: &Silence, now: i64) -> Gettable<'_> {
    Gettable {
        id: &silence.id,
        status: json!({"state": silence.state(now)}),
        updated_at: rfc3339(silence.updated_at),
        matchers: &silence.matchers,
        starts_at: rfc3339(silence.starts_at),
        ends_at: rfc3339(silence.ends_at),
        created_by: &silence.created_by,
        comment: &silence.comment,
    }
}

/// GET: every silence whose matchers the `filter` matchers match (as Alertmanager does, reading
/// a silence's matchers as labels): active ones first by end, then pending by start, then
/// expired, most recent first.
pub async fn list(State(api): State<Arc<Api>>, headers: HeaderMap, RawQuery(query): RawQuery) -> Response {
    if !reader(&api, &headers).is_some_and(ApiToken::sees_all) {
        return unauthorized_reader();
    }
    let matchers = match read_request(&api, query.as_deref()) {
        Ok((matchers, _)) => matchers,
        Err(response) => return *response,
    };
    let now = now_ms();
    let found: Vec<Silence> = api
        .silences(now)
        .into_iter()
        .filter(|silence| {
            let labels: BTreeMap<String, String> =
                silence.matchers.iter().map(|m| (m.name.clone(), m.value.clone())).collect();
            matchers.iter().all(|m| m.matches(&labels))
        })
        .collect();
    Json(found.iter().map(|s| gettable(s, now)).collect::<Vec<_>>()).into_response()
}

pub async fn get_one(State(api): State<Arc<Api>>, Path(id): Path<String>, headers: HeaderMap) -> Response {
    if !reader(&api, &headers).is_some_and(ApiToken::sees_all) {
        return unauthorized_reader();
    }
    if let Some(response) = unready(&api) {
        return response;
    }
    let mutes = api.mutes.read().expect("mutes lock");
    match mutes.silences.get(&id) {
        Some(silence) => Json(gettable(silence, now_ms())).into_response(),
        None => error(StatusCode::NOT_FOUND, format!("silence {id} not found")),
    }
}

/// POST: creates a silence, or changes the one its `id` names; answers its id.
pub async fn post(State(api): State<Arc<Api>>, headers: HeaderMap, body: axum::body::Body) -> Response {
    let Some(token) = writer(&api, &headers) else { return unauthorized() };
    if let Some(response) = unready(&api) {
        return response;
    }
    let body = match quench_notify::api::read_body(body).await {
        Ok(body) => body,
        Err((status, message)) => return error(status, message),
    };
    let posted: Postable = match serde_json::from_slice(&body) {
        Ok(posted) => posted,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("not a silence: {e}")),
    };
    let (starts_at, ends_at) = match (parse_time(&posted.starts_at, "startsAt"), parse_time(&posted.ends_at, "endsAt"))
    {
        (Ok(starts), Ok(ends)) => (starts, ends),
        (Err(why), _) | (_, Err(why)) => return error(StatusCode::BAD_REQUEST, why),
    };
    let created_by = if posted.created_by.is_empty() { token.to_string() } else { posted.created_by };
    let change = Change {
        id: posted.id,
        matchers: posted.matchers,
        starts_at,
        ends_at,
        created_by,
        comment: posted.comment,
        token: token.to_string(),
    };
    match api.save(change, now_ms()).await {
        Ok(id) => Json(json!({"silenceID": id})).into_response(),
        Err(refusal) => refused(refusal),
    }
}

/// DELETE: expires the silence now (a pending one never starts).
pub async fn expire(State(api): State<Arc<Api>>, Path(id): Path<String>, headers: HeaderMap) -> Response {
    let Some(token) = writer(&api, &headers) else { return unauthorized() };
    if let Some(response) = unready(&api) {
        return response;
    }
    match api.expire(&id, token, now_ms()).await {
        Ok(()) => StatusCode::OK.into_response(),
        Err(refusal) => refused(refusal),
    }
}

/// A silence to make, or (with `id`) to change, as the Alertmanager API and `quench api` take it.
pub struct Change {
    pub id: Option<String>,
    pub matchers: Vec<SilenceMatcher>,
    pub starts_at: i64,
    pub ends_at: i64,
    pub created_by: String,
    pub comment: String,
    /// The name of the token that made the request (recorded in `silence_changes`).
    pub token: String,
}

/// Why a silence was not saved or expired.
#[derive(Debug)]
pub enum Refusal {
    NotFound(String),
    Invalid(String),
    /// Kafka did not take it: retry.
    Unavailable(String),
}

/// Alertmanager's shape for a refusal: 404, 400, or 500 (the one status it declares for failures).
fn refused(refusal: Refusal) -> Response {
    match refusal {
        Refusal::NotFound(why) => error(StatusCode::NOT_FOUND, why),
        Refusal::Invalid(why) => error(StatusCode::BAD_REQUEST, why),
        Refusal::Unavailable(why) => error(StatusCode::INTERNAL_SERVER_ERROR, why),
    }
}

impl Api {
    /// Whether the silences topic was read to its end (until then the set may be incomplete).
    pub fn ready(&self) -> bool {
        unready(self).is_none()
    }

    /// Every silence: active ones first by end, then pending by start, then expired, most
    /// recent first.
    pub fn silences(&self, now: i64) -> Vec<Silence> {
        let mut all: Vec<Silence> = self.mutes.read().expect("mutes lock").silences.iter().cloned().collect();
        let rank = |s: &Silence| match s.state(now) {
            "active" => (0, s.ends_at),
            "pending" => (1, s.starts_at),
            _ => (2, -s.ends_at),
        };
        all.sort_by_key(|s| (rank(s), s.id.clone()));
        all
    }

    /// Saves `change` with Alertmanager's rules (see the module's comment); the silence's id.
    pub async fn save(&self, change: Change, now: i64) -> Result<String, Refusal> {
        let starts_at = change.starts_at.max(now);
        if change.ends_at <= now {
            return Err(Refusal::Invalid("endsAt is in the past: the silence would mute nothing".into()));
        }
        let existing = match &change.id {
            Some(id) => match self.mutes.read().expect("mutes lock").silences.get(id).cloned() {
                Some(silence) => Some(silence),
                None => return Err(Refusal::NotFound(format!("silence {id} not found"))),
            },
            None => None,
        };
        let mut writes = Vec::new();
        let token = change.token;
        let silence = match existing {
            Some(old) if old.matchers == change.matchers && old.state(now) != "expired" => Silence {
                // An active silence keeps its start: what it muted stays muted.
                starts_at: if old.state(now) == "active" { old.starts_at } else { starts_at },
                ends_at: change.ends_at,
                updated_at: now,
                comment: change.comment,
                created_by: change.created_by,
                ..old
            },
            replaced => {
                if let Some(old) = replaced.filter(|old| old.state(now) != "expired") {
                    writes.push(expired(old, now));
                }
                Silence {
                    id: new_id(),
                    matchers: change.matchers,
                    starts_at,
                    ends_at: change.ends_at,
                    created_at: now,
                    updated_at: now,
                    created_by: change.created_by,
                    comment: change.comment,
                }
            }
        };
        silence.compile().map_err(Refusal::Invalid)?;
        let id = silence.id.clone();
        writes.push(silence);
        self.write(writes, &token).await?;
        Ok(id)
    }

    /// Expires the silence `id` now, for the token named `token`; an expired one stays as it is.
    pub async fn expire(&self, id: &str, token: &str, now: i64) -> Result<(), Refusal> {
        let Some(silence) = self.mutes.read().expect("mutes lock").silences.get(id).cloned() else {
            return Err(Refusal::NotFound(format!("silence {id} not found")));
        };
        if silence.state(now) == "expired" {
            return Ok(());
        }
        self.write(vec![expired(silence, now)], token).await
    }

    /// Writes the silences to the topic, then to this process's set (the follower applies the
    /// same records again later, which changes nothing).
    async fn write(&self, silences: Vec<Silence>, token: &str) -> Result<(), Refusal> {
        for silence in &silences {
            let value = serde_json::to_vec(silence).expect("a silence serialises");
            let record = FutureRecord::to(&self.silences_topic).key(&silence.id).payload(&value);
            if let Err((e, _)) = self.producer.send(record, Duration::from_secs(10)).await {
                return Err(Refusal::Unavailable(format!("the silence was not stored: {e}")));
            }
        }
        self.audit(&silences, token);
        let mut mutes = self.mutes.write().expect("mutes lock");
        for silence in silences {
            mutes.silences.upsert(silence).expect("checked before it was written");
        }
        Ok(())
    }
}

/// The name of the token presented, if it may write silences: a silence mutes every tenant's
/// alerts, so only a writing token of all tenants may.
fn writer<'a>(api: &'a Api, headers: &HeaderMap) -> Option<&'a str> {
    let authorization = headers.get("authorization").and_then(|v| v.to_str().ok());
    quench_secret::authenticate(&api.tokens, authorization)
        .filter(|(_, token)| token.write && token.sees_all())
        .map(|(name, _)| name)
}

fn unauthorized() -> Response {
    super::unauthorized("silences are changed by writing tokens of all tenants")
}

fn unauthorized_reader() -> Response {
    super::unauthorized("silences mute every tenant, so they are read by tokens of all tenants")
}

/// One row of `silence_changes` (sql/0018_silence_changes.sql).
#[derive(clickhouse::Row, Serialize)]
struct SilenceChange {
    at: i64,
    silence_id: String,
    change: &'static str,
    created_by: String,
    token: String,
    matchers: String,
    starts_at: i64,
    ends_at: i64,
    comment: String,
}

impl Api {
    /// Records the changes in ClickHouse for the audit trail, in the background and within 10 s.
    /// The silences topic is the record of truth and already has them: a slow or failed insert
    /// is logged, and never holds up (or fails) the request.
    fn audit(&self, silences: &[Silence], token: &str) {
        let rows: Vec<SilenceChange> = silences
            .iter()
            .map(|s| SilenceChange {
                at: s.updated_at,
                silence_id: s.id.clone(),
                change: match (s.created_at == s.updated_at, s.ends_at <= s.updated_at) {
                    (_, true) => "expire",
                    (true, false) => "create",
                    (false, false) => "update",
                },
                created_by: s.created_by.clone(),
                token: token.to_string(),
                matchers: serde_json::to_string(&s.matchers).unwrap_or_default(),
                starts_at: s.starts_at,
                ends_at: s.ends_at,
                comment: s.comment.clone(),
            })
            .collect();
        let handle = tokio::runtime::Handle::current();
        crate::clickhouse::insert_in_background(
            &handle,
            self.clickhouse.clone(),
            "silence_changes",
            rows,
            "silence changes",
        );
    }
}

fn expired(silence: Silence, now: i64) -> Silence {
    Silence { starts_at: silence.starts_at.min(now), ends_at: now, updated_at: now, ..silence }
}

/// A random id in the form of a UUID, as Alertmanager's silence ids are.
fn new_id() -> String {
    let random = |salt: u64| {
        let mut hasher = RandomState::new().build_hasher();
        hasher.write_u64(salt);
        hasher.write_i64(now_ms());
        hasher.finish()
    };
    let (a, b) = (random(1), random(2));
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        0x8000 | (b >> 48) & 0x3fff,
        b & 0xffff_ffff_ffff
    )
}
