//! A real Alertmanager (Debian's `prometheus-alertmanager`) for the harnesses that compare with
//! it, and the collector its webhooks post to.

use std::{
    path::Path,
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::{body::Bytes, extract::Path as UrlPath, routing::post, Router};
use serde_json::Value;

use crate::now_ms;

/// What the collector received: side, receiver, arrival (epoch ms), body.
pub type Received = Arc<Mutex<Vec<(String, String, i64, Value)>>>;

/// The collector: every POST to `/{side}/{receiver}` is recorded with its arrival time. Returns
/// its base URL.
pub async fn collect(received: Received) -> anyhow::Result<String> {
    let app = Router::new().route(
        "/{side}/{receiver}",
        post(move |UrlPath((side, receiver)): UrlPath<(String, String)>, body: Bytes| {
            let received = received.clone();
            async move {
                let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
                received.lock().expect("collector lock").push((side, receiver, now_ms(), body));
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(url)
}

/// Starts `binary` on `config`, keeping its state in `dir`, without clustering; returns the
/// process and its base URL (not yet ready: see [`wait_ready`]).
pub fn start(binary: &Path, config: &Path, dir: &Path) -> anyhow::Result<(Child, String)> {
    let port = free_port();
    let child = Command::new(binary)
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--storage.path={}", dir.join("am").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--cluster.listen-address=")
        .arg("--log.level=warn")
        .stdout(Stdio::null())
        .spawn()
        .map_err(|e| {
            anyhow::anyhow!("cannot start {} ({e}): apt-get install prometheus-alertmanager", binary.display())
        })?;
    Ok((child, format!("http://127.0.0.1:{port}")))
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map_or(0, |a| a.port())
}

/// Waits until `url` answers 2xx, two minutes at most; `what` names it in the error.
pub async fn wait_ready(what: &str, url: &str) -> anyhow::Result<()> {
    let started = Instant::now();
    let client = http_client();
    loop {
        if client.get(url).send().await.is_ok_and(|r| r.status().is_success()) {
            return Ok(());
        }
        if started.elapsed() > Duration::from_secs(120) {
            anyhow::bail!("{what} was not ready at {url} within 120 s");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder().timeout(Duration::from_secs(10)).build().expect("an HTTP client")
}
