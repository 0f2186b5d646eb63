//! One alert's trace across the processes: ingest, worker and notifier export OpenTelemetry spans
//! over OTLP/HTTP to a FAKE collector (no OpenTelemetry Collector can be installed here from the
//! registries this project may use), with the trace context carried in the Kafka records'
//! `traceparent` header. The spans must form one trace: ingest's request, the worker's span of
//! the alert under it, the notifier's delivery under that.

mod support;

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::{extract::State, routing::post, Json, Router};
use quench_pipeline::kafka::create_topics;
use quench_schemas::now_ms;
use serde_json::Value;
use support::{
    fake_peers::{self, Peers},
    ingest::{alertmanager_body, post as post_webhook, Ingest},
    sigterm, KillOnDrop, Run,
};

/// A span as the fake collector received it.
#[derive(Debug, Clone)]
struct Span {
    service: String,
    name: String,
    trace: String,
    id: String,
    parent: String,
}

/// FAKE OTLP/HTTP receiver (JSON encoding, `POST /v1/traces`), keeping every span it is sent.
async fn collector(spans: Arc<Mutex<Vec<Span>>>) -> String {
    async fn traces(State(spans): State<Arc<Mutex<Vec<Span>>>>, Json(body): Json<Value>) -> Json<Value> {
        let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
        for resource in body["resourceSpans"].as_array().into_iter().flatten() {
            let service = resource["resource"]["attributes"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|a| a["key"] == "service.name")
                .map(|a| text(&a["value"]["stringValue"]))
                .unwrap_or_default();
            for scope in resource["scopeSpans"].as_array().into_iter().flatten() {
                for span in scope["spans"].as_array().into_iter().flatten() {
                    spans.lock().unwrap().push(Span {
                        service: service.clone(),
                        name: text(&span["name"]),
                        trace: text(&span["traceId"]),
                        id: text(&span["spanId"]),
                        parent: text(&span["parentSpanId"]),
                    });
                }
            }
        }
        Json(serde_json::json!({}))
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let app = Router::new().route("/v1/traces", post(traces)).with_state(spans);
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

#[tokio::test(flavor = "multi_thread")]
async fn one_alerts_trace_runs_from_the_webhook_through_the_worker_to_the_delivery() {
    trace_one_alert(false).await;
}

/// The same through the re-keying stage, which passes the header on.
#[tokio::test(flavor = "multi_thread")]
async fn one_alerts_trace_runs_through_the_re_keying_stage_too() {
    trace_one_alert(true).await;
}

async fn trace_one_alert(rekeyed: bool) {
    let spans = Arc::new(Mutex::new(Vec::new()));
    let endpoint = collector(spans.clone()).await;
    let peers = Arc::new(Peers::default());
    let base = fake_peers::serve(peers.clone()).await;
    let dir = std::env::temp_dir().join(format!("quench-traces-{rekeyed}-{}-{}", std::process::id(), now_ms()));
    std::fs::create_dir_all(&dir).unwrap();
    let (config, routing) = fake_peers::webhook_files(&dir, &base, "");
    let mut run = Run::new("traces");
    run.set("QUENCH_CONFIG", &config.display().to_string());
    run.set("QUENCH_WORKER__ROUTING", &routing.display().to_string());
    run.set("QUENCH_TRACE__OTLP_ENDPOINT", &endpoint);
    run.set("QUENCH_TRACE__SAMPLE_RATIO", "1.0");
    if rekeyed {
        run.set("QUENCH_WORKER__INPUT_KEYED_BY_GROUP", "false");
    }
    create_topics(&run.config.kafka, &run.config.topics).await.unwrap();
    // The batch exporter's delay, from OpenTelemetry's environment (the default is 5 s).
    let quick = [("OTEL_BSP_SCHEDULE_DELAY", "200")];
    let ingest = Ingest::start(&run, &quick);
    let processes = [KillOnDrop(run.start_with("run", &quick)), KillOnDrop(run.start_with("notify", &quick))];

    let body = serde_json::to_vec(&alertmanager_body("TracedAlert", 0..1)).unwrap();
    let answer = post_webhook(&reqwest::Client::new(), &ingest.url, "/v1/alertmanager", body).await;
    assert_eq!(answer.status().as_u16(), 200);

    let started = Instant::now();
    let chain = loop {
        let seen = spans.lock().unwrap().clone();
        if let Some(chain) = chain_of(&seen) {
            break chain;
        }
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "no trace from ingest through the worker to the notifier; spans received: {seen:#?}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    let [ingest_span, worker, notify] = &chain;
    assert_eq!((ingest_span.service.as_str(), ingest_span.name.as_str()), ("quench-ingest", "quench.ingest"));
    assert_eq!((worker.service.as_str(), worker.name.as_str()), ("quench-worker", "quench.worker"));
    assert_eq!((notify.service.as_str(), notify.name.as_str()), ("quench-notify", "quench.notify"));
    // The attempt's span may reach the collector before the peer has recorded the request.
    let started = Instant::now();
    while peers.of("webhook/ops").is_empty() {
        let refused = peers.malformed.lock().unwrap().clone();
        assert!(started.elapsed() < Duration::from_secs(30), "the page was not delivered; refused: {refused:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for process in &processes {
        sigterm(process);
    }
    eprintln!("trace {}: {} → {} → {}", ingest_span.trace, ingest_span.id, worker.id, notify.id);
}

/// An ingest span, a worker span whose parent it is, and a notifier span whose parent that is,
/// all of one trace.
fn chain_of(spans: &[Span]) -> Option<[Span; 3]> {
    spans.iter().filter(|s| s.service == "quench-notify").find_map(|notify| {
        let worker = spans.iter().find(|s| s.service == "quench-worker" && s.id == notify.parent)?;
        let ingest = spans.iter().find(|s| s.service == "quench-ingest" && s.id == worker.parent)?;
        (ingest.trace == worker.trace && worker.trace == notify.trace)
            .then(|| [ingest.clone(), worker.clone(), notify.clone()])
    })
}
