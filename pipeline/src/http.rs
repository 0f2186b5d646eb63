//! The operations endpoint: Prometheus `/metrics`, `/healthz` (the process serves requests) and
//! `/readyz` (it is doing its job: classifier loaded, partitions assigned and restored, ClickHouse
//! reachable). `serve` runs it on `http.listen` for `quench run`, `sink`, `predict run` and `demo`; `operations`
//! gives its routes to `quench ingest` and `quench notify`, which serve them beside their own.
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

/// `/metrics`, `/healthz` and `/readyz`, for commands that serve them beside routes of their own.
/// Installs the process's metrics recorder, so it is called once per process.
pub fn operations(readiness: Arc<Readiness>) -> anyhow::Result<Router> {
    let handle = PrometheusBuilder::new().install_recorder()?;
    Ok(Router::new().route("/metrics", get(metrics)).with_state(handle).merge(
        Router::new().route("/healthz", get(|| async { "ok\n" })).route("/readyz", get(ready)).with_state(readiness),
    ))
}

/// Binds `address`, naming the configuration key when it cannot.
pub async fn bind(address: &str, key: &str) -> anyhow::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(address).await.map_err(|e| anyhow::anyhow!("cannot listen on {key} = {address}: {e}"))
}

async fn metrics(State(handle): State<PrometheusHandle>) -> String {
    handle.render()
}

async fn ready(State(readiness): State<Arc<Readiness>>) -> (StatusCode, String) {
    match readiness.reason() {
        None => (StatusCode::OK, "ready\n".into()),
        Some(reason) => (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {reason}\n")),
    }
}
