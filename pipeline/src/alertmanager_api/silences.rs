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
    body::Bytes,
    extract::{Path, RawQuery, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use quench_core::mute::{Silence, SilenceMatcher};
use quench_notify::api::authenticate;
use quench_schemas::now_ms;
use rdkafka::producer::FutureRecord;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{error, parse_time, read_request, rfc3339, unready, Api};

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
pub async fn list(State(api): State<Arc<Api>>, RawQuery(query): RawQuery) -> Response {
    let matchers = match read_request(&api, query.as_deref()) {
        Ok((matchers, _)) => matchers,
        Err(response) => return *response,
    };
    let now = now_ms();
    let mutes = api.mutes.read().expect("mutes lock");
    let mut found: Vec<&Silence> = mutes
        .silences
        .iter()
        .filter(|silence| {
            let labels: BTreeMap<String, String> =
                silence.matchers.iter().map(|m| (m.name.clone(), m.value.clone())).collect();
            matchers.iter().all(|m| m.matches(&labels))
        })
        .collect();
    let rank = |s: &Silence| match s.state(now) {
        "active" => (0, s.ends_at),
        "pending" => (1, s.starts_at),
        _ => (2, -s.ends_at),
    };
    found.sort_by_key(|s| (rank(s), s.id.clone()));
    Json(found.into_iter().map(|s| gettable(s, now)).collect::<Vec<_>>()).into_response()
}

pub async fn get_one(State(api): State<Arc<Api>>, Path(id): Path<String>) -> Response {
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
pub async fn post(State(api): State<Arc<Api>>, headers: HeaderMap, body: Bytes) -> Response {
    let Some(token) = authenticate(&api.tokens, &headers) else { return unauthorized() };
    if let Some(response) = unready(&api) {
        return response;
    }
    let posted: Postable = match serde_json::from_slice(&body) {
        Ok(posted) => posted,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("not a silence: {e}")),
    };
    let now = now_ms();
    let (starts_at, ends_at) = match (parse_time(&posted.starts_at, "startsAt"), parse_time(&posted.ends_at, "endsAt"))
    {
        (Ok(starts), Ok(ends)) => (starts.max(now), ends),
        (Err(why), _) | (_, Err(why)) => return error(StatusCode::BAD_REQUEST, why),
    };
    if ends_at <= now {
        return error(StatusCode::BAD_REQUEST, "endsAt is in the past: the silence would mute nothing");
    }
    let existing = match &posted.id {
        Some(id) => match api.mutes.read().expect("mutes lock").silences.get(id).cloned() {
            Some(silence) => Some(silence),
            None => return error(StatusCode::NOT_FOUND, format!("silence {id} not found")),
        },
        None => None,
    };
    let created_by = if posted.created_by.is_empty() { token.to_string() } else { posted.created_by };
    let mut writes = Vec::new();
    let silence = match existing {
        Some(old) if old.matchers == posted.matchers && old.state(now) != "expired" => Silence {
            // An active silence keeps its start: what it muted stays muted.
            starts_at: if old.state(now) == "active" { old.starts_at } else { starts_at },
            ends_at,
            updated_at: now,
            comment: posted.comment,
            created_by,
            ..old
        },
        replaced => {
            if let Some(old) = replaced.filter(|old| old.state(now) != "expired") {
                writes.push(expired(old, now));
            }
            Silence {
                id: new_id(),
                matchers: posted.matchers,
                starts_at,
                ends_at,
                created_at: now,
                updated_at: now,
                created_by,
                comment: posted.comment,
            }
        }
    };
    if let Err(e) = silence.compile() {
        return error(StatusCode::BAD_REQUEST, e);
    }
    let id = silence.id.clone();
    writes.push(silence);
    match write(&api, writes).await {
        Ok(()) => Json(json!({"silenceID": id})).into_response(),
        Err(response) => response,
    }
}

/// DELETE: expires the silence now (a pending one never starts).
pub async fn expire(State(api): State<Arc<Api>>, Path(id): Path<String>, headers: HeaderMap) -> Response {
    if authenticate(&api.tokens, &headers).is_none() {
        return unauthorized();
    }
    if let Some(response) = unready(&api) {
        return response;
    }
    let now = now_ms();
    let Some(silence) = api.mutes.read().expect("mutes lock").silences.get(&id).cloned() else {
        return error(StatusCode::NOT_FOUND, format!("silence {id} not found"));
    };
    if silence.state(now) == "expired" {
        return StatusCode::OK.into_response();
    }
    match write(&api, vec![expired(silence, now)]).await {
        Ok(()) => StatusCode::OK.into_response(),
        Err(response) => response,
    }
}

fn unauthorized() -> Response {
    error(StatusCode::UNAUTHORIZED, "missing or unknown `Authorization: Bearer <token>` (see ingest.api_tokens)")
}

fn expired(silence: Silence, now: i64) -> Silence {
    Silence { starts_at: silence.starts_at.min(now), ends_at: now, updated_at: now, ..silence }
}

/// Writes the silences to the topic, then to this process's set (the follower applies the same
/// records again later, which changes nothing); 500 when Kafka does not acknowledge them.
async fn write(api: &Api, silences: Vec<Silence>) -> Result<(), Response> {
    for silence in &silences {
        let value = serde_json::to_vec(silence).expect("a silence serialises");
        let record = FutureRecord::to(&api.silences_topic).key(&silence.id).payload(&value);
        if let Err((e, _)) = api.producer.send(record, Duration::from_secs(10)).await {
            return Err(error(StatusCode::INTERNAL_SERVER_ERROR, format!("the silence was not stored: {e}")));
        }
    }
    let mut mutes = api.mutes.write().expect("mutes lock");
    for silence in silences {
        mutes.silences.upsert(silence).expect("checked before it was written");
    }
    Ok(())
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
