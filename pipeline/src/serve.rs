//! Serving an HTTP app on a listener that faces the network (webhooks, the incident API, the
//! acknowledgement API), with the limits `axum::serve` does not set: a deadline for a request's
//! headers (a client trickling them cannot hold a connection open), a cap on open connections
//! (past it, new ones wait in the kernel's backlog), and a cap on requests in flight (past it,
//! 503 at once rather than a growing queue). Shutdown as axum's: stop accepting, let the requests
//! in flight finish.

use std::{future::Future, sync::Arc, time::Duration};

use axum::{
    extract::{Request, State},
    http::StatusCode,
    middleware::{self, Next},
    response::{IntoResponse, Response},
    Router,
};
use hyper::server::conn::http1;
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    server::graceful::GracefulShutdown,
    service::TowerToHyperService,
};
use serde::{Deserialize, Serialize};
use tokio::{net::TcpListener, sync::Semaphore};

/// `[http.limits]`: what one process's public listener allows at once.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// A request's headers must arrive within this, from the first byte.
    pub header_timeout_ms: u64,
    /// Connections open at once.
    pub max_connections: usize,
    /// Requests being handled at once; more get 503 with Retry-After.
    pub max_requests_in_flight: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self { header_timeout_ms: 10_000, max_connections: 1_024, max_requests_in_flight: 512 }
    }
}

impl Limits {
    pub fn validate(&self) -> Result<(), (String, String)> {
        let positive = [
            ("header_timeout_ms", self.header_timeout_ms),
            ("max_connections", self.max_connections as u64),
            ("max_requests_in_flight", self.max_requests_in_flight as u64),
        ];
        match positive.iter().find(|(_, v)| *v == 0) {
            Some((key, _)) => Err((format!("http.limits.{key}"), "must be at least 1".into())),
            None => Ok(()),
        }
    }
}

/// Serves `app` on `listener` within `limits` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: &Limits,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let in_flight = Arc::new(Semaphore::new(limits.max_requests_in_flight));
    let app = app.layer(middleware::from_fn_with_state(in_flight, admit));
    let connections = Arc::new(Semaphore::new(limits.max_connections));
    let mut builder = http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(Duration::from_millis(limits.header_timeout_ms));
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = connections.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
            () = &mut shutdown => break,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                // Out of file descriptors, or a connection reset before it was accepted: the
                // listener itself is fine, so wait a moment rather than spin.
                Err(e) => {
                    tracing::warn!(error = %e, "could not accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let connection = builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(app.clone()));
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            // A client that went away or sent garbage: nothing to do but close.
            let _ = connection.await;
            drop(permit);
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// Handles the request if fewer than the limit are in flight, else answers 503 at once. Probes
/// and scrapes are not counted: a liveness probe failing under load would restart the process
/// and make the load worse.
async fn admit(State(in_flight): State<Arc<Semaphore>>, request: Request, next: Next) -> Response {
    if matches!(request.uri().path(), "/healthz" | "/readyz" | "/metrics") {
        return next.run(request).await;
    }
    match in_flight.try_acquire() {
        Ok(_permit) => next.run(request).await,
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            [("retry-after", "1")],
            axum::Json(serde_json::json!({"error": "too many requests in flight; retry"})),
        )
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};

    use super::*;

    async fn start(limits: Limits) -> (String, tokio::sync::oneshot::Sender<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let app = Router::new().route(
            "/slow",
            axum::routing::get(|| async {
                tokio::time::sleep(Duration::from_millis(500)).await;
                "done"
            }),
        );
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            serve(listener, app, &limits, async {
                let _ = stopped.await;
            })
            .await
            .unwrap()
        });
        (address, stop)
    }

    #[tokio::test]
    async fn headers_that_trickle_in_lose_their_connection() {
        let (address, _stop) = start(Limits { header_timeout_ms: 300, ..Limits::default() }).await;
        let closed = tokio::task::spawn_blocking(move || {
            let mut stream = std::net::TcpStream::connect(address).unwrap();
            stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            stream.write_all(b"GET /slow HTTP/1.1\r\nHost: x\r\n").unwrap();
            let mut answer = Vec::new();
            // The server closes the connection (an error answer or none) instead of waiting.
            let started = std::time::Instant::now();
            let _ = stream.read_to_end(&mut answer);
            started.elapsed()
        })
        .await
        .unwrap();
        assert!(closed < Duration::from_secs(4), "closed after {closed:?}");
    }

    #[tokio::test]
    async fn requests_past_the_limit_get_503_at_once() {
        let (address, _stop) = start(Limits { max_requests_in_flight: 2, ..Limits::default() }).await;
        let client = reqwest::Client::new();
        let requests = (0..6).map(|_| client.get(format!("http://{address}/slow")).send());
        let statuses: Vec<u16> =
            futures::future::join_all(requests).await.into_iter().map(|r| r.unwrap().status().as_u16()).collect();
        assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 2, "{statuses:?}");
        assert_eq!(statuses.iter().filter(|s| **s == 503).count(), 4, "{statuses:?}");
    }
}
