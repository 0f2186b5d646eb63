//! An Alertmanager file's receivers delivered: a worker and a notifier started on one
//! `alertmanager.yml`, its `webhook_configs` pointing at a local webhook consumer (a real HTTP
//! server standing for the services that read Alertmanager's webhooks). The consumer gets
//! Alertmanager's payload (version 4) with the group key in Alertmanager's format and the
//! credentials of `http_config` read from a file; a receiver with `send_resolved: false` hears
//! of the opening and not of the resolution.

mod support;

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::{body::Bytes, extract::Path, http::HeaderMap, routing::post, Router};
use quench_core::rules::RouteTree;
use quench_pipeline::kafka::create_topics;
use quench_schemas::{now_ms, Alert, AlertStatus, Encoder};
use serde_json::Value;
use support::{alert, ingest::free_port, produce, sigterm, Run};

/// What the consumer received: path, Authorization header, body.
type Received = Arc<Mutex<Vec<(String, String, Value)>>>;

async fn consumer() -> (String, Received) {
    let received: Received = Arc::default();
    let store = received.clone();
    let app = Router::new().route(
        "/{path}",
        post(move |Path(path): Path<String>, headers: HeaderMap, body: Bytes| {
            let store = store.clone();
            async move {
                let auth = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
                store.lock().unwrap().push((path, auth, serde_json::from_slice(&body).unwrap_or(Value::Null)));
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, received)
}

async fn wait_for(what: &str, received: &Received, done: impl Fn(&[(String, String, Value)]) -> bool) {
    let started = Instant::now();
    while !done(&received.lock().unwrap()) {
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "gave up waiting for {what}: {:?}",
            received.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_alertmanager_files_webhook_receivers_get_alertmanagers_payload_with_send_resolved() {
    let (url, received) = consumer().await;
    let mut run = Run::new("receivers");
    let dir = std::env::temp_dir().join(format!("quench-receivers-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let credentials = dir.join("hook-token");
    std::fs::write(&credentials, "hook-secret-token\n").unwrap();
    let rules = dir.join("alertmanager.yml");
    std::fs::write(
        &rules,
        format!(
            "route:\n  receiver: loud\n  group_by: [alertname]\n  group_wait: 1s\n  group_interval: 1s\n  resolve_timeout: 1h\n  \
             routes: [{{matchers: [team=\"quiet\"], receiver: quiet}}]\n\
             receivers:\n\
             - name: loud\n  webhook_configs: [{{url: '{url}/loud', http_config: {{authorization: {{credentials_file: '{}'}}}}}}]\n\
             - name: quiet\n  webhook_configs: [{{url: '{url}/quiet', send_resolved: false}}]\n",
            credentials.display()
        ),
    )
    .unwrap();
    run.set("QUENCH_WORKER__RULES", &rules.display().to_string());
    run.set("QUENCH_NOTIFY__LISTEN", &format!("127.0.0.1:{}", free_port()));
    create_topics(&run.config.kafka, &run.config.topics).await.unwrap();
    let mut worker = run.start("run");
    let mut notifier = run.start("notify");

    let tree = RouteTree::load(&rules).unwrap();
    let encoder = Encoder::<Alert>::register(&run.registry(), &run.config.topics.alerts).await.unwrap();
    let send = |alerts: Vec<Alert>| {
        let records = alerts.iter().map(|a| (tree.partition_key(a), encoder.encode(a).unwrap())).collect();
        produce(&run, records)
    };
    let now = now_ms();
    let mut firing = vec![alert("DiskFull", 1, now), alert("DiskFull", 2, now), alert("Latency", 1, now)];
    firing[2].labels.insert("team".into(), "quiet".into());
    for a in &mut firing {
        a.stateful = true;
        a.annotations.insert("summary".into(), format!("{} on {}", a.labels["alertname"], a.labels["instance"]));
    }
    send(firing.clone()).await;
    wait_for("both openings", &received, |r| r.len() >= 2).await;

    let later = now_ms();
    let resolved: Vec<Alert> = firing
        .iter()
        .map(|a| Alert { status: AlertStatus::Resolved, ends_at: Some(later), received_at: later, ..a.clone() })
        .collect();
    send(resolved).await;
    wait_for("the resolution", &received, |r| r.iter().any(|(_, _, b)| b["status"] == "resolved")).await;
    // Time for a resolution the quiet receiver must not get to arrive anyway.
    tokio::time::sleep(Duration::from_secs(3)).await;
    for child in [&mut worker, &mut notifier] {
        sigterm(child);
        assert!(child.wait().unwrap().success());
    }

    let received = received.lock().unwrap().clone();
    let of = |path: &str| -> Vec<(String, Value)> {
        received.iter().filter(|(p, _, _)| p == path).map(|(_, auth, body)| (auth.clone(), body.clone())).collect()
    };
    let loud = of("loud");
    assert_eq!(loud.len(), 2, "opened and resolved: {loud:?}");
    let (auth, opened) = &loud[0];
    assert_eq!(auth, "Bearer hook-secret-token", "credentials_file");
    assert_eq!(opened["version"], "4");
    assert_eq!((opened["status"].as_str(), opened["receiver"].as_str()), (Some("firing"), Some("loud")));
    assert_eq!(opened["groupKey"], "{}:{alertname=\"DiskFull\"}");
    assert_eq!(opened["groupLabels"], serde_json::json!({"alertname": "DiskFull"}));
    let alerts = opened["alerts"].as_array().unwrap();
    assert_eq!(alerts.len(), 2);
    assert!(alerts.iter().all(|a| a["status"] == "firing" && a["endsAt"] == "0001-01-01T00:00:00Z"), "{alerts:?}");
    assert!(alerts.iter().all(|a| a["fingerprint"].as_str().is_some_and(|f| f.len() == 16)));
    assert!(alerts.iter().any(|a| a["annotations"]["summary"] == "DiskFull on host-1"));
    let (_, resolution) = &loud[1];
    assert_eq!(resolution["status"], "resolved");
    assert!(resolution["alerts"].as_array().unwrap().iter().all(|a| a["status"] == "resolved"), "{resolution}");
    let quiet = of("quiet");
    assert_eq!(quiet.len(), 1, "send_resolved: false hears of the opening only: {quiet:?}");
    assert_eq!(quiet[0].1["groupKey"], "{}/{team=\"quiet\"}:{alertname=\"Latency\"}");
}
