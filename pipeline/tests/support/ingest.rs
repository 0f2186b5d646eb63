//! A `quench ingest` child for tests that send it webhooks, and the requests they send.

use std::{
    io::{Read as _, Write as _},
    net::TcpStream,
    process::Child,
    time::{Duration, Instant},
};

use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

use super::Run;

pub const TOKEN: &str = "test-token-0123456789";
pub const HMAC_SECRET: &str = "test-hmac-secret-0123456789";

/// A `quench ingest` child with one source per format (Grafana's signed with HMAC, the others
/// with a bearer token) and a named generic source, `team_a`, of tenant `team-a`.
pub struct Ingest {
    pub child: Child,
    pub url: String,
}

impl Ingest {
    pub fn start(run: &Run, extra: &[(&str, &str)]) -> Self {
        let port = free_port();
        let listen = format!("127.0.0.1:{port}");
        let mut env: Vec<(&str, &str)> = vec![
            ("QUENCH_INGEST__LISTEN", &listen),
            ("QUENCH_INGEST__SOURCES__ALERTMANAGER__TOKEN", TOKEN),
            ("QUENCH_INGEST__SOURCES__PROMETHEUS__TOKEN", TOKEN),
            ("QUENCH_INGEST__SOURCES__PAGERDUTY__TOKEN", TOKEN),
            ("QUENCH_INGEST__SOURCES__GENERIC__TOKEN", TOKEN),
            ("QUENCH_INGEST__SOURCES__GRAFANA__HMAC_SECRET", HMAC_SECRET),
            ("QUENCH_INGEST__SOURCES__TEAM_A__FORMAT", "generic"),
            ("QUENCH_INGEST__SOURCES__TEAM_A__TOKEN", TOKEN),
            ("QUENCH_INGEST__SOURCES__TEAM_A__TENANT", "team-a"),
        ];
        env.extend_from_slice(extra);
        let child = run.start_with("ingest", &env);
        let ingest = Self { child, url: format!("http://{listen}") };
        let started = Instant::now();
        while !healthy(&listen) {
            assert!(started.elapsed() < Duration::from_secs(30), "quench ingest did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        ingest
    }
}

impl Drop for Ingest {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn healthy(address: &str) -> bool {
    let Ok(mut stream) = TcpStream::connect(address) else { return false };
    let mut answer = String::new();
    write!(stream, "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").is_ok()
        && stream.read_to_string(&mut answer).is_ok()
        && answer.starts_with("HTTP/1.1 200")
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The signature of `body` sent at `timestamp` (Unix seconds), as a signing source checks it.
pub fn signature(timestamp: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(HMAC_SECRET.as_bytes()).unwrap();
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    let hex: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

/// Posts `body` with the credentials its path's source expects.
pub async fn post(client: &reqwest::Client, base: &str, path: &str, body: Vec<u8>) -> reqwest::Response {
    try_post(client, base, path, body).await.unwrap()
}

pub async fn try_post(
    client: &reqwest::Client,
    base: &str,
    path: &str,
    body: Vec<u8>,
) -> reqwest::Result<reqwest::Response> {
    let request = client.post(format!("{base}{path}"));
    let request = if path.starts_with("/v1/grafana") {
        let timestamp = (quench_schemas::now_ms() / 1000).to_string();
        request.header("x-quench-signature", signature(&timestamp, &body)).header("x-quench-timestamp", timestamp)
    } else {
        request.bearer_auth(TOKEN)
    };
    request.body(body).send().await
}

pub fn alertmanager_body(name: &str, instances: std::ops::Range<usize>) -> Value {
    let alerts: Vec<Value> = instances
        .map(|i| {
            json!({"status": "firing", "labels": {"alertname": name, "instance": format!("host-{i}")},
                   "annotations": {"summary": "s"}, "startsAt": "2024-01-01T00:00:00Z",
                   "endsAt": "0001-01-01T00:00:00Z", "generatorURL": "http://prom/graph", "fingerprint": "x"})
        })
        .collect();
    json!({"version": "4", "status": "firing", "receiver": "quench", "groupLabels": {}, "alerts": alerts})
}
