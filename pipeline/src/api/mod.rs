//! `quench api`: Quench's incidents over HTTP, read from ClickHouse.
//!
//! - `GET /api/v1/incidents`: filters ([`params::LIST`]), newest first, cursor pagination;
//! - `GET /api/v1/incidents/{id}`: one incident with its alerts, timeline, notifications and
//!   the incidents linked under it;
//! - `POST /api/v1/incidents/{id}/{acknowledge|resolve|comment}`: an action on
//!   `incident-actions` ([`crate::actions`]), recorded with the token's name as its actor;
//! - `GET /api/v1/alerts`: alerts (each fingerprint's latest record) by name, status, time and
//!   text, with the incidents they joined ([`alerts`]);
//! - `GET /api/v1/analytics/daily` and `/noisy`: the analytics views, summed per day and per
//!   alert name over what the filters leave ([`analytics`]);
//! - `GET /api/v1/ask?q=...`: a question in plain language, answered by [`crate::ask`] over
//!   the token's tenants (the SQL that ran comes with the rows);
//! - `GET`/`POST /api/v1/silences`, `DELETE /api/v1/silences/{id}`: the silences ([`silences`]),
//!   for tokens of all tenants only, as a silence is not per tenant yet;
//! - `GET /api/v1/stream`: incident updates as they commit, as server-sent events, resumable
//!   ([`stream`]);
//! - `GET /`: the console (`console.html`, embedded), a page that uses the rest;
//! - `GET /api/v1/openapi.json`: the OpenAPI 3.1 document, made from the same parameter and
//!   field tables the handlers use.
//!
//! Every request but the document's needs a bearer token of `api.tokens`, which names the
//! tenants it sees: a list is filtered to them, another tenant's incident is not found, and
//! asking for another tenant by name is refused; only a token with `write` acts. Queries run
//! read-only, with a time limit.

mod alerts;
mod analytics;
mod config;
mod incidents;
mod openapi;
mod params;
mod silences;
mod stream;

use std::{
    collections::BTreeMap,
    num::NonZeroUsize,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::Duration,
};

use axum::{
    extract::{Path, RawQuery, State},
    http::{HeaderMap, StatusCode},
    response::{Html, IntoResponse, Response},
    routing::{delete, get, post},
    Json, Router,
};
pub use config::{ApiConfig, ApiToken};
use incidents::Bind;
use quench_classify::embed::Embedder;
use quench_core::rules::RouteTree;
use quench_notify::api::Rejection;
use quench_schemas::{now_ms, ActionKind, Decoder, Incident, IncidentAction};
use rdkafka::producer::FutureProducer;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::{
    actions::Actions,
    alertmanager_api,
    ask::{AskError, Asker, Via},
    clickhouse,
    config::{Config, KafkaConfig},
    http,
    kafka::client_config,
    preflight::registry_client,
    similar::{indexer, Similar},
};

#[derive(Clone)]
struct Api {
    config: Arc<ApiConfig>,
    clickhouse: ::clickhouse::Client,
    actions: Arc<Actions>,
    /// For the stream: where incidents are, and how to read them.
    kafka: KafkaConfig,
    topic: String,
    decoder: Arc<Decoder<Incident>>,
    asker: Arc<Asker>,
    /// Similar past incidents, when `api.similar.enabled`.
    similar: Option<Arc<Similar>>,
    /// The silences, shared with the Alertmanager API and the worker through their topic.
    silences: Arc<alertmanager_api::Api>,
}

/// Serves the API on `api.listen` until `shutdown`.
pub async fn run(config: &Config, shutdown: Arc<AtomicBool>) -> anyhow::Result<()> {
    if config.api.tokens.is_empty() {
        tracing::warn!("api.tokens is empty: every request but the OpenAPI document will be refused");
    }
    let readiness = http::serve(&config.http).await?;
    let producer: FutureProducer = client_config(&config.kafka, "api").set("enable.idempotence", "true").create()?;
    let registry = registry_client(&config.registry)?;
    let actions = Actions::start(config, &registry, producer, "api").await?;
    if config.api.similar.enabled {
        let embedder = Arc::new(tokio::task::block_in_place(|| {
            Embedder::load(&config.classify.local.model_dir, NonZeroUsize::new(100_000).expect("positive"))
        })?);
        let interval = Duration::from_millis(config.api.similar.index_interval_ms);
        tokio::spawn(indexer::run(clickhouse::client(&config.clickhouse), embedder, interval, shutdown.clone()));
    }
    // The silences' store needs rules only to list alerts, which this API does not.
    let rules = Arc::new(std::sync::RwLock::new(RouteTree::parse("[route]\n").map_err(anyhow::Error::msg)?));
    let silences = Arc::new(alertmanager_api::Api::start(config, rules, shutdown.clone())?);
    let app = router(config, Arc::new(actions), Decoder::new(registry), silences)?;
    let listener = http::bind(&config.api.listen, "api.listen").await?;
    readiness.ready();
    tracing::info!(address = %config.api.listen, tokens = config.api.tokens.len(), "serving the incident API");
    let stopped = async move {
        while !shutdown.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    crate::serve::serve(listener, app, &config.http.limits, stopped).await?;
    tracing::info!("stopped");
    Ok(())
}

pub fn router(
    whole: &Config,
    actions: Arc<Actions>,
    decoder: Decoder<Incident>,
    silences: Arc<alertmanager_api::Api>,
) -> anyhow::Result<Router> {
    let config = &whole.api;
    let reader = clickhouse::client(&whole.clickhouse)
        .with_setting("readonly", "2")
        .with_setting("max_execution_time", config.query_timeout_s.to_string());
    let api = Api {
        config: Arc::new(config.clone()),
        similar: config.similar.enabled.then(|| Arc::new(Similar::new(reader.clone(), &config.similar))),
        clickhouse: reader,
        actions,
        kafka: whole.kafka.clone(),
        topic: whole.topics.incidents.clone(),
        decoder: Arc::new(decoder),
        asker: Arc::new(Asker::new(whole, Via::Auto)?),
        silences,
    };
    Ok(Router::new()
        .route("/api/v1/incidents", get(list))
        .route("/api/v1/incidents/{id}", get(one))
        .route("/api/v1/incidents/{id}/{action}", post(act))
        .route("/api/v1/stream", get(stream::stream))
        .route("/api/v1/analytics/daily", get(daily))
        .route("/api/v1/analytics/noisy", get(noisy))
        .route("/api/v1/ask", get(ask))
        .route("/api/v1/alerts", get(alert_search))
        .route("/api/v1/silences", get(silences::list).post(silences::create))
        .route("/api/v1/silences/{id}", delete(silences::expire))
        .route("/", get(console))
        .route(
            "/api/v1/openapi.json",
            get(move |State(api): State<Api>| async move { Json(openapi::document(&api.config)) }),
        )
        .with_state(api))
}

/// Who is asking: the token's scope, and the client to ask ClickHouse with.
pub struct Caller<'a> {
    name: &'a str,
    token: &'a ApiToken,
    clickhouse: &'a ::clickhouse::Client,
}

impl Caller<'_> {
    /// Limits `sql` to the tenants the token sees.
    fn tenant_filter(&self, sql: &mut String, binds: &mut Vec<Bind>) {
        if let Some(tenants) = self.token.scope() {
            sql.push_str(" AND has(?, tenant)");
            binds.push(Bind::Texts(tenants));
        }
    }

    /// The rows of a query, as JSON objects (times in RFC 3339).
    async fn rows(&self, sql: &str, binds: Vec<Bind>) -> Result<Vec<Map<String, Value>>, Failure> {
        let mut query = self.clickhouse.query(sql);
        for bind in binds {
            query = match bind {
                Bind::Text(text) => query.bind(text),
                Bind::Int(n) => query.bind(n),
                Bind::Texts(texts) => query.bind(texts),
            };
        }
        let bytes = query
            .with_setting("date_time_output_format", "iso")
            .with_setting("output_format_json_quote_64bit_integers", "0")
            .fetch_bytes("JSONEachRow")
            .map_err(Failure::clickhouse)?
            .collect()
            .await
            .map_err(Failure::clickhouse)?;
        String::from_utf8_lossy(&bytes)
            .lines()
            .map(|line| serde_json::from_str(line).map_err(|e| Failure::clickhouse(format!("an unreadable row: {e}"))))
            .collect()
    }
}

/// An answer other than 200: its status, message and, for a bad request, the parameter.
#[derive(Debug)]
pub struct Failure {
    status: StatusCode,
    message: String,
    parameter: Option<String>,
}

impl Failure {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self { status, message: message.into(), parameter: None }
    }

    fn parameter(status: StatusCode, name: &str, message: impl Into<String>) -> Self {
        Self { status, message: message.into(), parameter: Some(name.into()) }
    }

    fn kafka(error: impl std::fmt::Display) -> Self {
        tracing::warn!(error = %error, "the API could not read incidents from Kafka");
        Self::new(StatusCode::SERVICE_UNAVAILABLE, format!("Kafka did not answer: {error}"))
    }

    /// The error is logged, not answered: it may name tables, settings or other tenants' values.
    fn clickhouse(error: impl std::fmt::Display) -> Self {
        tracing::warn!(error = %error, "a ClickHouse query of the API failed");
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "ClickHouse did not answer; retry (the API's log says why)")
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let mut body = json!({"error": self.message});
        if let Some(parameter) = self.parameter {
            body["parameter"] = parameter.into();
        }
        (self.status, Json(body)).into_response()
    }
}

impl Api {
    fn caller(&self, headers: &HeaderMap) -> Result<Caller<'_>, Failure> {
        let authorization = headers.get("authorization").and_then(|v| v.to_str().ok());
        let (name, token) = quench_secret::authenticate(&self.config.tokens, authorization).ok_or_else(|| {
            Failure::new(
                StatusCode::UNAUTHORIZED,
                "a bearer token of api.tokens is required (Authorization: Bearer ...)",
            )
        })?;
        Ok(Caller { name, token, clickhouse: &self.clickhouse })
    }

    /// The caller of a read and its parameters, parsed by `table`; a tenant the token does not
    /// see is refused by name.
    fn read(
        &self,
        headers: &HeaderMap,
        raw: Option<&str>,
        table: &'static [params::Param],
    ) -> Result<(Caller<'_>, params::ListQuery), Failure> {
        let caller = self.caller(headers)?;
        let params = query_params(raw)?;
        let query = params::parse(table, &params, &self.config)
            .map_err(|bad| Failure::parameter(StatusCode::BAD_REQUEST, &bad.name, bad.message))?;
        if let Some(tenant) = params.get("tenant").filter(|t| !caller.token.sees(t)) {
            let message = format!("the token does not see tenant `{tenant}`");
            return Err(Failure::parameter(StatusCode::FORBIDDEN, "tenant", message));
        }
        Ok((caller, query))
    }
}

/// The console: one page, its script and styles inline, allowed to talk to this origin only.
async fn console() -> impl IntoResponse {
    let policy = "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; frame-ancestors 'none'";
    ([("content-security-policy", policy), ("x-content-type-options", "nosniff")], Html(include_str!("console.html")))
}

async fn list(State(api): State<Api>, headers: HeaderMap, RawQuery(raw): RawQuery) -> Result<Json<Value>, Failure> {
    let (caller, query) = api.read(&headers, raw.as_deref(), params::LIST)?;
    Ok(Json(incidents::list(&caller, &query).await?))
}

async fn alert_search(
    State(api): State<Api>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, Failure> {
    let (caller, query) = api.read(&headers, raw.as_deref(), params::ALERTS)?;
    Ok(Json(alerts::search(&caller, &query).await?))
}

async fn daily(State(api): State<Api>, headers: HeaderMap, RawQuery(raw): RawQuery) -> Result<Json<Value>, Failure> {
    let (caller, query) = api.read(&headers, raw.as_deref(), params::ANALYTICS)?;
    Ok(Json(analytics::daily(&caller, &query).await?))
}

async fn noisy(State(api): State<Api>, headers: HeaderMap, RawQuery(raw): RawQuery) -> Result<Json<Value>, Failure> {
    let (caller, query) = api.read(&headers, raw.as_deref(), params::NOISE)?;
    Ok(Json(analytics::noisy(&caller, &query).await?))
}

async fn one(State(api): State<Api>, headers: HeaderMap, Path(id): Path<String>) -> Result<Json<Value>, Failure> {
    let caller = api.caller(&headers)?;
    incidents::one(&caller, &id, api.similar.as_deref())
        .await?
        .map(Json)
        .ok_or_else(|| Failure::new(StatusCode::NOT_FOUND, format!("no incident `{id}` that the token sees")))
}

/// The longest question taken.
const QUESTION_MAX: usize = 500;

async fn ask(State(api): State<Api>, headers: HeaderMap, RawQuery(raw): RawQuery) -> Result<Json<Value>, Failure> {
    let caller = api.caller(&headers)?;
    let params = query_params(raw.as_deref())?;
    if let Some(name) = params.keys().find(|name| *name != "q") {
        return Err(Failure::parameter(StatusCode::BAD_REQUEST, name, format!("unknown parameter `{name}`: only `q`")));
    }
    let question = params.get("q").map(|q| q.trim()).unwrap_or_default();
    if question.is_empty() || question.chars().count() > QUESTION_MAX {
        let message = format!("`q` must be a question of 1 to {QUESTION_MAX} characters");
        return Err(Failure::parameter(StatusCode::BAD_REQUEST, "q", message));
    }
    let scope = caller.token.scope();
    match api.asker.ask(question, now_ms(), scope.as_deref()).await {
        Ok(answer) => Ok(Json(serde_json::to_value(answer).map_err(Failure::clickhouse)?)),
        Err(e @ (AskError::NotUnderstood(_) | AskError::Refused(_))) => {
            Err(Failure::parameter(StatusCode::UNPROCESSABLE_ENTITY, "q", e.to_string()))
        }
        Err(AskError::ClickHouse(e)) => Err(Failure::clickhouse(e)),
    }
}

/// The body of an action: a comment (required to comment, optional otherwise). There is no
/// actor: the action is recorded as the token's.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ActionBody {
    comment: Option<String>,
}

/// The actions a token with `write` may take.
const ACTIONS: &[(&str, ActionKind)] =
    &[("acknowledge", ActionKind::Acknowledge), ("resolve", ActionKind::Resolve), ("comment", ActionKind::Comment)];

async fn act(
    State(api): State<Api>,
    headers: HeaderMap,
    Path((id, verb)): Path<(String, String)>,
    body: axum::body::Body,
) -> Result<(StatusCode, Json<Value>), Failure> {
    let caller = api.caller(&headers)?;
    if !caller.token.write {
        return Err(Failure::new(
            StatusCode::FORBIDDEN,
            format!("token `{}` may only read (api.tokens.{0}.write)", caller.name),
        ));
    }
    let body = quench_notify::api::read_body(body).await.map_err(|(status, message)| Failure::new(status, message))?;
    let Some(&(_, kind)) = ACTIONS.iter().find(|(name, _)| *name == verb) else {
        return Err(Failure::new(
            StatusCode::NOT_FOUND,
            format!("no action `{verb}`: acknowledge, resolve or comment"),
        ));
    };
    let body: ActionBody = match body.iter().all(u8::is_ascii_whitespace) {
        true => ActionBody::default(),
        false => serde_json::from_slice(&body).map_err(|e| {
            Failure::parameter(StatusCode::BAD_REQUEST, "body", format!("not {{\"comment\": \"...\"}} JSON: {e}"))
        })?,
    };
    let not_found = || Failure::new(StatusCode::NOT_FOUND, format!("no incident `{id}` that the token sees"));
    let located = api.actions.locate(&id).map_err(|rejection| match rejection {
        Rejection::UnknownIncident => not_found(),
        Rejection::Unavailable(why) => Failure::new(StatusCode::SERVICE_UNAVAILABLE, why),
    })?;
    if !caller.token.sees(&located.tenant) {
        return Err(not_found());
    }
    let blank = body.comment.as_deref().map(|c| c.trim().is_empty());
    if blank == Some(true) || (kind == ActionKind::Comment && blank.is_none()) {
        return Err(Failure::parameter(StatusCode::BAD_REQUEST, "comment", "a comment needs a non-empty `comment`"));
    }
    let at = now_ms();
    let action_id = match headers.get("idempotency-key").and_then(|v| v.to_str().ok()).map(str::trim) {
        Some(key) if !key.is_empty() => key.to_string(),
        _ => format!("{id}/{verb}/{}/{at}", caller.name),
    };
    let action = IncidentAction {
        action_id: action_id.clone(),
        incident_id: id.clone(),
        kind,
        actor: caller.name.to_string(),
        comment: body.comment,
        at,
        tenant: located.tenant,
        token: caller.name.to_string(),
    };
    api.actions.send(&action, located.partition).await.map_err(|rejection| match rejection {
        Rejection::Unavailable(why) => {
            Failure::new(StatusCode::SERVICE_UNAVAILABLE, format!("not recorded, retry: {why}"))
        }
        Rejection::UnknownIncident => not_found(),
    })?;
    let answer = json!({"action_id": action_id, "incident_id": id, "action": verb, "actor": caller.name});
    Ok((StatusCode::ACCEPTED, Json(answer)))
}

/// A query string's parameters by name; a parameter given twice is an error.
fn query_params(raw: Option<&str>) -> Result<BTreeMap<String, String>, Failure> {
    let mut params = BTreeMap::new();
    for (name, value) in form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
        if params.insert(name.to_string(), value.into_owned()).is_some() {
            return Err(Failure::parameter(StatusCode::BAD_REQUEST, &name, format!("`{name}` is given twice")));
        }
    }
    Ok(params)
}
