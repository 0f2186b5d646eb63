//! Alertmanager's API v2, served by `quench ingest` beside the webhooks, so that `amtool` and the
//! tools written against Alertmanager's API work with Quench unchanged: silences (list, get,
//! create or update, expire), the alerts with their silenced and inhibited status, and a status.
//!
//! A silence is a record of the compacted silences topic, which every worker follows (see
//! [`crate::mutes`]); this process follows it too, to answer reads. Alerts are read from
//! ClickHouse (`alerts`: the latest state of each alert seen in the last week) and their status
//! decided with the rules and side inputs in force, as the workers decide it. Every request but
//! the status needs a bearer token of `ingest.api_tokens` (amtool sends one from its
//! `--http.config.file`): alerts are listed of the token's tenants only; silences, which mute
//! every tenant, are read by tokens of all tenants and written by writing ones.

mod alerts;
mod silences;

pub use silences::{Change, Refusal};

use std::{
    collections::BTreeMap,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, RwLock,
    },
    time::Duration,
};

use axum::{
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::get,
    Json, Router,
};
use quench_core::{mute::Mutes, rules::RouteTree};
use quench_schemas::now_ms;
use quench_secret::ApiToken;
use rdkafka::producer::FutureProducer;
use serde_json::json;
use time::{format_description::well_known::Rfc3339, OffsetDateTime};

use crate::{config::Config, kafka::client_config, mutes::SideInputs};

pub struct Api {
    silences_topic: String,
    producer: FutureProducer,
    rules: Arc<RwLock<RouteTree>>,
    mutes: Arc<RwLock<Mutes>>,
    /// The side inputs were read up to their end: until then the API answers 500, since the
    /// silences it knows may not be all.
    caught_up: Arc<AtomicBool>,
    tokens: BTreeMap<String, ApiToken>,
    clickhouse: clickhouse::Client,
    started: i64,
}

impl Api {
    /// The API over the rules in force (`rules`, which the caller reloads); follows the side
    /// inputs in the background until `shutdown`, so that webhooks are served whatever Kafka does.
    pub fn start(config: &Config, rules: Arc<RwLock<RouteTree>>, shutdown: Arc<AtomicBool>) -> anyhow::Result<Self> {
        let producer = client_config(&config.kafka, "silences").set("enable.idempotence", "true").create()?;
        let mutes = Arc::new(RwLock::new(Mutes::default()));
        let caught_up = Arc::new(AtomicBool::new(false));
        let (followed, ready, config_) = (mutes.clone(), caught_up.clone(), config.clone());
        std::thread::spawn(move || follow(&config_, &followed, &ready, &shutdown));
        Ok(Self {
            silences_topic: config.topics.silences.clone(),
            producer,
            rules,
            mutes,
            caught_up,
            tokens: config.ingest.api_tokens.clone(),
            clickhouse: crate::clickhouse::client(&config.clickhouse),
            started: now_ms(),
        })
    }
}

/// Reads the side inputs to their end (again and again while Kafka or the topics are missing),
/// then follows them until `shutdown`.
fn follow(config: &Config, mutes: &RwLock<Mutes>, caught_up: &AtomicBool, shutdown: &AtomicBool) {
    let mut inputs = loop {
        if shutdown.load(Ordering::SeqCst) {
            return;
        }
        match SideInputs::start(config, "api") {
            Ok((inputs, read)) => {
                *mutes.write().expect("mutes lock") = read;
                caught_up.store(true, Ordering::SeqCst);
                break inputs;
            }
            Err(error) => {
                tracing::warn!(%error, "silences not read yet; the Alertmanager API answers 500 meanwhile");
                std::thread::sleep(Duration::from_secs(5));
            }
        }
    };
    while !shutdown.load(Ordering::SeqCst) {
        if let Err(error) = inputs.poll(&mut mutes.write().expect("mutes lock"), Duration::ZERO) {
            tracing::error!(%error, "following silences and inhibition sources failed");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The token presented, if it is one of `ingest.api_tokens`.
fn reader<'a>(api: &'a Api, headers: &axum::http::HeaderMap) -> Option<&'a ApiToken> {
    let authorization = headers.get("authorization").and_then(|v| v.to_str().ok());
    quench_secret::authenticate(&api.tokens, authorization).map(|(_, token)| token)
}

/// 401 for a request without a token it needs.
fn unauthorized(need: &str) -> Response {
    error(
        StatusCode::UNAUTHORIZED,
        format!("missing or unknown `Authorization: Bearer <token>`: {need} (see ingest.api_tokens)"),
    )
}

/// An error until the silences were read (see [`Api::caught_up`]). Failures are 500, the one
/// status Alertmanager's API declares for them, so that its clients print the message.
fn unready(api: &Api) -> Option<Response> {
    (!api.caught_up.load(Ordering::SeqCst))
        .then(|| error(StatusCode::INTERNAL_SERVER_ERROR, "the silences topic is still being read; retry shortly"))
}

pub fn router(api: Arc<Api>) -> Router {
    Router::new()
        .route("/api/v2/silences", get(silences::list).post(silences::post))
        .route("/api/v2/silence/{id}", get(silences::get_one).delete(silences::expire))
        .route("/api/v2/alerts", get(alerts::list))
        .route("/api/v2/status", get(status))
        .with_state(api)
}

/// What Alertmanager's status carries that clients read: the cluster is this one process.
async fn status(State(api): State<Arc<Api>>) -> Json<serde_json::Value> {
    Json(json!({
        "cluster": {"name": "quench", "status": "ready", "peers": []},
        "versionInfo": {
            "version": env!("CARGO_PKG_VERSION"), "revision": "", "branch": "",
            "buildUser": "", "buildDate": "", "goVersion": ""
        },
        "config": {"original": ""},
        "uptime": rfc3339(api.started),
    }))
}

/// An answer with Alertmanager's error shape: the message as a JSON string.
fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(message.into())).into_response()
}

/// Epoch milliseconds as Alertmanager writes times.
pub fn rfc3339(ms: i64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default()
}

/// An RFC 3339 time as epoch milliseconds, or why it is not one.
pub fn parse_time(text: &str, field: &str) -> Result<i64, String> {
    OffsetDateTime::parse(text, &Rfc3339)
        .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64)
        .map_err(|e| format!("{field}: {text:?} is not an RFC 3339 time: {e}"))
}

/// What a read asks for: the matchers of its `filter` parameters and its other parameters; an
/// error until the silences were read, or for a bad filter.
type ReadRequest = (Vec<quench_core::rules::Matcher>, BTreeMap<String, String>);

fn read_request(api: &Api, query: Option<&str>) -> Result<ReadRequest, Box<Response>> {
    if let Some(response) = unready(api) {
        return Err(Box::new(response));
    }
    let (filters, others) = query_params(query);
    Ok((filter_matchers(&filters)?, others))
}

/// The `filter` parameters of a query (each a matcher, `alertname="X"`), and the others by name.
fn query_params(query: Option<&str>) -> (Vec<String>, BTreeMap<String, String>) {
    let mut filters = Vec::new();
    let mut others = BTreeMap::new();
    for (name, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        match name.as_ref() {
            "filter" => filters.push(value.into_owned()),
            _ => {
                others.insert(name.into_owned(), value.into_owned());
            }
        }
    }
    (filters, others)
}

/// The matchers of `filter` parameters, or a 400 naming the bad one.
fn filter_matchers(filters: &[String]) -> Result<Vec<quench_core::rules::Matcher>, Box<Response>> {
    let mut out = Vec::new();
    for text in filters {
        let parsed = quench_core::rules::Matcher::parse_list(text)
            .map_err(|e| Box::new(error(StatusCode::BAD_REQUEST, format!("bad filter: {e}"))))?;
        out.extend(parsed);
    }
    Ok(out)
}
