//! The operations endpoint: Prometheus `/metrics`, `/healthz` (the process serves requests) and
//! `/readyz` (it is doing its job: classifier loaded, partitions assigned and restored, ClickHouse
//! reachable). `serve` runs it on `http.listen` for `quench run`, `sink`, `predict run` and `demo`.
//! `quench ingest` and `quench notify` face senders and chat services: with `http.listen` set they
//! serve the endpoint there too and give their public listener only `/healthz` and a `/readyz`
//! that does not say why (its reason may quote a broker's error); with `http.listen` empty (one
//! port for everything) the public listener serves all three ([`public`]).
//! Load balancers and Kubernetes probes read the last two.

use std::sync::{Arc, Mutex};

use axum::{extract::State, http::StatusCode, routing::get, Router};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use crate::config::HttpConfig;

/// Why the process is not ready, or `None` when it is.
pub struct Readiness(Mutex<Option<String>>);

impl Readiness {
    pub fn starting() -> Arc<Self> {
        Arc::new(Self(Mutex::new(Some("starting".into()))))
    }

    pub fn not_ready(&self, reason: impl Into<String>) {
        *self.0.lock().expect("readiness lock") = Some(reason.into());
    }

    pub fn ready(&self) {
        *self.0.lock().expect("readiness lock") = None;
    }

    /// Why the process is not ready yet, or `None` when it is.
    pub fn reason(&self) -> Option<String> {
        self.0.lock().expect("readiness lock").clone()
    }
}

/// Installs the metrics recorder and serves the endpoint. Returns the readiness the command
/// reports through; the endpoint starts "not ready: starting".
pub async fn serve(config: &HttpConfig) -> anyhow::Result<Arc<Readiness>> {
    let readiness = Readiness::starting();
    if config.listen.is_empty() {
        return Ok(readiness);
    }
    let listener = bind(&config.listen, "http.listen").await?;
    let app = operations(readiness.clone())?;
    tracing::info!(address = %config.listen, "serving /metrics, /healthz and /readyz");
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "operations endpoint stopped");
        }
    });
    Ok(readiness)
}

/// `/metrics`, `/healthz` and `/readyz`. Installs the process's metrics recorder, so it is called
/// once per process.
fn operations(readiness: Arc<Readiness>) -> anyhow::Result<Router> {
    let handle = PrometheusBuilder::new().install_recorder()?;
    Ok(Router::new().route("/metrics", get(metrics)).with_state(handle).merge(
        Router::new().route("/healthz", get(|| async { "ok\n" })).route("/readyz", get(ready)).with_state(readiness),
    ))
}

/// For a command with a public listener of its own: the readiness it reports through, and the
/// operations routes to serve beside its own routes (see the module's documentation).
pub async fn public(config: &HttpConfig) -> anyhow::Result<(Arc<Readiness>, Router)> {
    if config.listen.is_empty() {
        let readiness = Readiness::starting();
        let routes = operations(readiness.clone())?;
        return Ok((readiness, routes));
    }
    let readiness = serve(config).await?;
    let probes = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(terse))
        .with_state(readiness.clone());
    Ok((readiness, probes))
}

/// Binds `address`, naming the configuration key when it cannot.
pub async fn bind(address: &str, key: &str) -> anyhow::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(address).await.map_err(|e| anyhow::anyhow!("cannot listen on {key} = {address}: {e}"))
}

async fn metrics(State(handle): State<PrometheusHandle>) -> String {
    handle.render()
}

async fn terse(State(readiness): State<Arc<Readiness>>) -> (StatusCode, &'static str) {
    match readiness.reason() {
        None => (StatusCode::OK, "ready\n"),
        Some(_) => (StatusCode::SERVICE_UNAVAILABLE, "not ready\n"),
    }
}

async fn ready(State(readiness): State<Arc<Readiness>>) -> (StatusCode, String) {
    match readiness.reason() {
        None => (StatusCode::OK, "ready\n".into()),
        Some(reason) => (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {reason}\n")),
    }
}

#[cfg(test)]
mod tests {
    use axum::{body::Body, http::Request};
    use tower::ServiceExt;

    use super::*;

    #[tokio::test]
    async fn a_public_listener_with_an_operations_port_says_neither_metrics_nor_why_it_is_not_ready() {
        let config = HttpConfig { listen: "127.0.0.1:0".into(), ..HttpConfig::default() };
        let (readiness, probes) = public(&config).await.unwrap();
        readiness.not_ready("broker 10.0.0.7:9092 refused SASL user alice");
        let get = |path: &str| probes.clone().oneshot(Request::get(path).body(Body::empty()).unwrap());
        assert_eq!(get("/metrics").await.unwrap().status(), StatusCode::NOT_FOUND);
        let answer = get("/readyz").await.unwrap();
        assert_eq!(answer.status(), StatusCode::SERVICE_UNAVAILABLE);
        let body = axum::body::to_bytes(answer.into_body(), 1024).await.unwrap();
        assert_eq!(&body[..], b"not ready\n");
        assert_eq!(get("/healthz").await.unwrap().status(), StatusCode::OK);
    }
}
