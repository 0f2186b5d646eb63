//! The HTTP side: one route per format, each with a default source and a named-source variant,
//! and the mapping of every failure to the status a sender can act on: 401 (credentials, and no
//! such source: the two answer alike, so source names cannot be probed), 408 (body too slow), 413 (body too large), 400 (payload, with the field
//! named), 503 with Retry-After (Kafka did not acknowledge; retry the same request).

use std::{sync::Arc, time::Instant};

use axum::{
    body::{Body, Bytes},
    extract::{Path, State},
    http::{header, HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    routing::post,
    Json, Router,
};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde_json::json;
use tracing::Instrument;

use quench_schemas::now_ms;

use crate::{
    auth::{self, Presented},
    config::{IngestConfig, SourceConfig},
    events::{AlertsAccepted, QuotaExceeded, RequestAnswered},
    payload::{self, Context, Format},
    publish::Publisher,
    quota::Quotas,
};

struct Ingest {
    config: IngestConfig,
    publisher: Arc<Publisher>,
    quotas: Quotas,
}

/// The webhook routes; the caller adds `/metrics` and `/healthz` and serves them.
pub fn router(config: IngestConfig, publisher: Arc<Publisher>) -> Router {
    let quotas = Quotas::new(config.quotas.clone());
    let state = Arc::new(Ingest { config, publisher, quotas });
    let route = |format: Format| {
        post(move |State(ingest): State<Arc<Ingest>>, source: Option<Path<String>>, headers: HeaderMap, body: Body| {
            let source = source.map_or_else(|| format.name().to_string(), |Path(name)| name);
            async move { ingest.handle(format, &source, &headers, body).await }
        })
    };
    Router::new()
        .route("/v1/alertmanager", route(Format::Alertmanager))
        .route("/v1/alertmanager/{source}", route(Format::Alertmanager))
        .route("/v1/grafana", route(Format::Grafana))
        .route("/v1/grafana/{source}", route(Format::Grafana))
        .route("/v2/enqueue", route(Format::Pagerduty))
        .route("/v2/enqueue/{source}", route(Format::Pagerduty))
        .route("/api/v2/alerts", route(Format::Prometheus))
        .route("/{source}/api/v2/alerts", route(Format::Prometheus))
        .route("/v1/alerts", route(Format::Generic))
        .route("/v1/alerts/{source}", route(Format::Generic))
        .with_state(state)
}

/// A request that did not go through, as the sender sees it.
struct Rejection {
    status: StatusCode,
    message: String,
    field: Option<String>,
    retry_after_secs: Option<u64>,
}

impl Rejection {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self { status, message: message.into(), field: None, retry_after_secs: None }
    }
}

impl IntoResponse for Rejection {
    fn into_response(self) -> Response {
        let body = json!({"status": "rejected", "message": self.message, "field": self.field});
        let mut response = (self.status, Json(body)).into_response();
        let headers = response.headers_mut();
        if let Some(secs) = self.retry_after_secs {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

impl Ingest {
    async fn handle(&self, format: Format, source: &str, headers: &HeaderMap, body: Body) -> Response {
        let started = Instant::now();
        let response = match self.accept(format, source, headers, body).await {
            Ok(response) => response,
            Err(rejection) => {
                tracing::debug!(source, status = rejection.status.as_u16(), reason = %rejection.message, "rejected");
                rejection.into_response()
            }
        };
        RequestAnswered { format: format.name(), status: response.status().as_u16(), elapsed: started.elapsed() }
            .emit();
        response
    }

    async fn accept(&self, format: Format, name: &str, headers: &HeaderMap, body: Body) -> Result<Response, Rejection> {
        let header_text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let unauthorized = |e: auth::AuthError| Rejection::new(StatusCode::UNAUTHORIZED, e.to_string());
        let source = self.source(format, name).ok_or_else(|| {
            // What a token source answers without its token: no answer tells a source that
            // exists from one that does not.
            let present = header_text(header::AUTHORIZATION.as_str()).is_some();
            unauthorized(if present { auth::AuthError::WrongToken } else { auth::AuthError::MissingToken })
        })?;
        let mut presented = Presented {
            authorization: header_text(header::AUTHORIZATION.as_str()),
            signature: header_text(&source.hmac_header),
            timestamp: header_text(&source.hmac_timestamp_header),
            routing_key: None,
        };
        let now_s = now_ms() / 1000;
        // Only a request carrying what it needs gets its body read (see `auth::needs_body`).
        let pagerduty = format == Format::Pagerduty;
        if !auth::needs_body(source, &presented, pagerduty, now_s) {
            auth::verify(source, &presented, b"", now_s).map_err(unauthorized)?;
        }
        let body = self.read_body(headers, body).await?;
        if auth::needs_body(source, &presented, pagerduty, now_s) {
            let routing_key = pagerduty.then(|| routing_key(&body)).flatten();
            presented.routing_key = routing_key.as_deref();
            auth::verify(source, &presented, &body, now_s).map_err(unauthorized)?;
        }

        let context =
            Context { source: name, tenant: &source.tenant, received_at: now_ms(), limits: &self.config.limits };
        let parsed = payload::parse(format, &body, &context).map_err(|e| Rejection {
            field: Some(e.field.clone()),
            ..Rejection::new(StatusCode::BAD_REQUEST, e.to_string())
        })?;
        self.quotas.take(&source.tenant, parsed.alerts.len(), Instant::now()).map_err(|wait| {
            QuotaExceeded { tenant: &source.tenant, alerts: parsed.alerts.len() }.emit();
            Rejection {
                // Rounded up: a sender told to wait less than it must is refused again.
                retry_after_secs: Some(wait.as_secs_f64().ceil().max(1.0) as u64),
                ..Rejection::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    format!(
                        "tenant `{}` is over its quota of alerts per second (ingest.quotas); retry after the wait, \
                         or in smaller requests",
                        source.tenant
                    ),
                )
            }
        })?;
        // The root of the alerts' traces (when trace.sample_ratio keeps this request).
        let span = tracing::info_span!("quench.ingest", source = name, alerts = parsed.alerts.len());
        self.publisher.publish(&parsed.alerts).instrument(span).await.map_err(|e| {
            tracing::warn!(source = name, error = %e, "answering 503");
            Rejection {
                retry_after_secs: Some(e.retry_after.as_secs().max(1)),
                ..Rejection::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
            }
        })?;
        AlertsAccepted { source: name, count: parsed.alerts.len() }.emit();
        Ok(match parsed.dedup_key {
            // PagerDuty's documented answer, which its client libraries parse.
            Some(dedup_key) => (
                StatusCode::ACCEPTED,
                Json(json!({"status": "success", "message": "Event processed", "dedup_key": dedup_key})),
            )
                .into_response(),
            None => Json(json!({"status": "success", "alerts": parsed.alerts.len()})).into_response(),
        })
    }

    fn source(&self, format: Format, name: &str) -> Option<&SourceConfig> {
        self.config.sources.get(name).filter(|source| source.format(name) == Some(format))
    }

    async fn read_body(&self, headers: &HeaderMap, body: Body) -> Result<Bytes, Rejection> {
        let limit = self.config.max_body_bytes;
        let too_large = || Rejection::new(StatusCode::PAYLOAD_TOO_LARGE, format!("body larger than {limit} bytes"));
        let declared = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        if declared.is_some_and(|length| length > limit as u64) {
            return Err(too_large());
        }
        let collect = Limited::new(body, limit).collect();
        match tokio::time::timeout(self.config.body_timeout(), collect).await {
            Err(_) => Err(Rejection::new(
                StatusCode::REQUEST_TIMEOUT,
                format!("body not received within {} ms", self.config.body_timeout_ms),
            )),
            Ok(Err(e)) if e.is::<LengthLimitError>() => Err(too_large()),
            Ok(Err(e)) => Err(Rejection::new(StatusCode::BAD_REQUEST, format!("cannot read the body: {e}"))),
            Ok(Ok(collected)) => Ok(collected.to_bytes()),
        }
    }
}

/// The routing key of a PagerDuty event, read before the event is validated so that an
/// unauthenticated client learns nothing about what a valid event looks like.
fn routing_key(body: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Key {
        routing_key: String,
    }
    serde_json::from_slice::<Key>(body).ok().map(|k| k.routing_key)
}
