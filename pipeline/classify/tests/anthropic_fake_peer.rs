//! The Anthropic provider against a FAKE Messages API peer (no real Anthropic server can run
//! here). The fake checks each request's documented shape (headers, model, system, messages, a
//! forced tool with an input schema) and answers as scripted, in Anthropic's documented formats:
//! a `tool_use` answer, 429 rate_limit_error with Retry-After, 529 overloaded_error, 401, 500,
//! malformed JSON text, and an answer that leaves incidents out.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::{extract::State, http::HeaderMap, response::IntoResponse, routing::post, Json, Router};
use quench_classify::{stage::FALLBACK, Classifier, ClassifyConfig, ProviderKind, Subject};
use serde_json::{json, Value};

#[derive(Clone, Copy, Debug)]
enum Reply {
    Answer,
    /// Answers every incident asked with severity `low`.
    AnswerLow,
    /// Answers only the first incident asked.
    Partial,
    RateLimited,
    Overloaded,
    ServerError,
    Unauthorised,
    MalformedJson,
}

#[derive(Default)]
struct Peer {
    script: Vec<Reply>,
    /// Used when the script is exhausted.
    then: Option<Reply>,
    bodies: Vec<Value>,
    violations: Vec<String>,
}

type Shared = Arc<Mutex<Peer>>;

async fn messages(State(peer): State<Shared>, headers: HeaderMap, Json(body): Json<Value>) -> impl IntoResponse {
    let mut peer = peer.lock().unwrap();
    for violation in shape_violations(&headers, &body) {
        peer.violations.push(violation);
    }
    peer.bodies.push(body.clone());
    let reply = if peer.script.is_empty() { peer.then.unwrap_or(Reply::Answer) } else { peer.script.remove(0) };
    let ids: Vec<String> = body["tools"][0]["input_schema"]["properties"]["incidents"]["items"]["properties"]["id"]
        ["enum"]
        .as_array()
        .map(|ids| ids.iter().filter_map(|i| i.as_str().map(String::from)).collect())
        .unwrap_or_default();
    let error = |status: u16, kind: &str| {
        let mut headers = HeaderMap::new();
        if status == 429 {
            headers.insert("retry-after", "1".parse().unwrap());
        }
        let body = json!({ "type": "error", "error": { "type": kind, "message": format!("fake {kind}") } });
        (axum::http::StatusCode::from_u16(status).unwrap(), headers, Json(body)).into_response()
    };
    let answer = |ids: &[String], severity: &str| {
        let incidents: Vec<Value> = ids
            .iter()
            .map(|id| json!({ "id": id, "severity": severity, "category": "database", "confidence": 0.93, "summary": "fake: database down" }))
            .collect();
        Json(json!({
            "id": "msg_fake", "type": "message", "role": "assistant", "model": "claude-test",
            "content": [{ "type": "tool_use", "id": "toolu_fake", "name": "classify_incidents", "input": { "incidents": incidents } }],
            "stop_reason": "tool_use",
            "usage": { "input_tokens": 1200, "output_tokens": 300 }
        }))
        .into_response()
    };
    match reply {
        Reply::Answer => answer(&ids, "critical"),
        Reply::AnswerLow => answer(&ids, "low"),
        Reply::Partial => answer(&ids[..1], "critical"),
        Reply::RateLimited => error(429, "rate_limit_error"),
        Reply::Overloaded => error(529, "overloaded_error"),
        Reply::ServerError => error(500, "api_error"),
        Reply::Unauthorised => error(401, "authentication_error"),
        Reply::MalformedJson => Json(json!({
            "id": "msg_fake", "type": "message", "role": "assistant", "model": "claude-test",
            "content": [{ "type": "text", "text": "{\"incidents\": [{\"id\": " }],
            "stop_reason": "max_tokens",
            "usage": { "input_tokens": 1200, "output_tokens": 4096 }
        }))
        .into_response(),
    }
}

/// What the Messages API documents as required, and what Quench relies on.
fn shape_violations(headers: &HeaderMap, body: &Value) -> Vec<String> {
    let mut violations = Vec::new();
    let mut check = |ok: bool, what: &str| {
        if !ok {
            violations.push(what.to_string());
        }
    };
    check(headers.get("x-api-key").is_some_and(|k| k == "test-key"), "x-api-key header");
    check(headers.get("anthropic-version").is_some_and(|v| v == "2023-06-01"), "anthropic-version header");
    check(headers.get("content-type").is_some_and(|v| v == "application/json"), "content-type");
    check(body["model"] == "claude-test", "model");
    check(body["max_tokens"].as_u64().is_some_and(|n| n > 0), "max_tokens");
    check(body["system"].is_string(), "system prompt");
    check(body["messages"][0]["role"] == "user" && body["messages"][0]["content"].is_string(), "one user message");
    check(body["tools"][0]["name"] == "classify_incidents", "tool name");
    check(body["tools"][0]["input_schema"]["type"] == "object", "tool input_schema");
    check(body["tool_choice"] == json!({ "type": "tool", "name": "classify_incidents" }), "forced tool_choice");
    violations
}

async fn start(peer: Peer) -> (String, Shared) {
    let shared = Arc::new(Mutex::new(peer));
    let app = Router::new().route("/v1/messages", post(messages)).with_state(shared.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, shared)
}

fn config(url: &str) -> ClassifyConfig {
    let mut config = ClassifyConfig { provider: ProviderKind::Anthropic, max_batch: 20, ..Default::default() };
    config.llm.url = Some(url.to_string());
    config.llm.model = "claude-test".into();
    config.llm.api_key = Some("test-key".into());
    config.llm.timeout_ms = 3_000;
    config.llm.max_retries = 5;
    // Every incident goes to the LLM here; the confidence gate has its own test.
    config.llm.ask_below_confidence = 1.0;
    config.breaker.failures = 2;
    config.breaker.open_ms = 300;
    config.redact.patterns = vec!["ACME-\\d+".into()];
    config
}

/// For an outage: no retries, and a breaker that stays open until the test moves tokio's clock.
fn outage_config(url: &str) -> ClassifyConfig {
    let mut config = config(url);
    config.llm.max_retries = 0;
    config.breaker.open_ms = 600_000;
    config
}

/// Secrets and personal data seeded into alert texts and labels.
const SEEDED: &[&str] = &[
    "hunter2-pass",
    "sk-ant-api03-abcdefghijklmnopqrstuv",
    "xoxb-1234567890-abcdefghij",
    "AKIAABCDEFGHIJKLMNOP",
    "s3cr3t-token-value",
    "oncall@example.com",
    "10.20.30.40",
    "2001:db8::8a2e:370:7334",
    "ACME-4242",
];

fn subject(i: usize) -> Subject {
    let labels = BTreeMap::from([
        ("alertname".to_string(), format!("PostgresqlDown{i}")),
        ("job".to_string(), "postgres-exporter".to_string()),
        ("instance".to_string(), "10.20.30.40:9187".to_string()),
        ("owner".to_string(), "oncall@example.com".to_string()),
    ]);
    let annotations = BTreeMap::from([
        (
            "summary".to_string(),
            "Postgres down: postgres://app:hunter2-pass@db:5432 refused, key sk-ant-api03-abcdefghijklmnopqrstuv".to_string(),
        ),
        (
            "description".to_string(),
            "xoxb-1234567890-abcdefghij AKIAABCDEFGHIJKLMNOP token=s3cr3t-token-value from 2001:db8::8a2e:370:7334 ACME-4242"
                .to_string(),
        ),
    ]);
    Subject::from_alert(format!("inc-{i}"), &labels, &annotations)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anthropic_fake_peer_retries_429_529_and_malformed_json_and_asks_again_for_missing_items() {
    let script = vec![Reply::RateLimited, Reply::Overloaded, Reply::MalformedJson, Reply::Partial];
    let (url, peer) = start(Peer { script, ..Default::default() }).await;
    let classifier = Classifier::new(&config(&url)).unwrap();
    let subjects: Vec<Subject> = (0..3).map(subject).collect();
    let started = Instant::now();
    let answers = classifier.classify(&subjects).await.unwrap();
    assert!(started.elapsed() >= Duration::from_secs(1), "Retry-After: 1 was honoured");
    for answer in &answers {
        assert_eq!(answer.classified_by, "anthropic/claude-test", "{answer:?}");
        assert_eq!((answer.category.as_str(), answer.severity.as_str()), ("database", "critical"));
        assert_eq!(answer.summary, "fake: database down");
        assert_eq!(answer.priority, "P2", "critical with one alert");
    }
    let peer = peer.lock().unwrap();
    assert!(peer.violations.is_empty(), "{:?}", peer.violations);
    assert_eq!(peer.bodies.len(), 5, "429, 529, malformed, partial, then the missing ones");
    let last_ids =
        &peer.bodies[4]["tools"][0]["input_schema"]["properties"]["incidents"]["items"]["properties"]["id"]["enum"];
    assert_eq!(last_ids, &json!(["inc-1", "inc-2"]), "the last request asks only for what was missing");
    for body in &peer.bodies {
        let text = body.to_string();
        for secret in SEEDED {
            assert!(!text.contains(secret), "{secret} left the process in {text}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anthropic_fake_peer_gets_one_request_per_batch_and_none_for_cached_incidents() {
    let (url, peer) = start(Peer::default()).await;
    let classifier = Classifier::new(&config(&url)).unwrap();
    let subjects: Vec<Subject> = (0..45).map(subject).collect();
    classifier.classify(&subjects).await.unwrap();
    assert_eq!(peer.lock().unwrap().bodies.len(), 3, "45 incidents in batches of 20");
    // A storm of the same incidents again, under other ids: all from the cache.
    let again: Vec<Subject> = (0..45).map(|i| Subject { id: format!("other-{i}"), ..subject(i) }).collect();
    let answers = classifier.classify(&again).await.unwrap();
    assert!(answers.iter().all(|a| a.classified_by == "anthropic/claude-test"));
    assert_eq!(peer.lock().unwrap().bodies.len(), 3, "no request for cached signatures");
    assert_eq!(classifier.llm_calls(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anthropic_fake_peer_gets_one_request_per_tenant_and_cannot_lower_the_alerts_severity() {
    let (url, peer) = start(Peer { then: Some(Reply::AnswerLow), ..Default::default() }).await;
    let in_tenant = |tenant: &str, i| Subject {
        id: format!("{tenant}-{i}"),
        tenant: tenant.into(),
        severity: "critical".into(),
        ..subject(i)
    };
    let subjects = vec![in_tenant("a", 0), in_tenant("b", 0), in_tenant("a", 1)];
    let answers = Classifier::new(&config(&url)).unwrap().classify(&subjects).await.unwrap();
    {
        let peer = peer.lock().unwrap();
        assert_eq!(peer.bodies.len(), 2, "one request per tenant, and b's copy of a's text is no cache hit");
        for body in &peer.bodies {
            let ids = &body["tools"][0]["input_schema"]["properties"]["incidents"]["items"]["properties"]["id"]["enum"];
            let tenants: std::collections::BTreeSet<_> =
                ids.as_array().unwrap().iter().map(|id| id.as_str().unwrap().split('-').next().unwrap()).collect();
            assert_eq!(tenants.len(), 1, "one tenant per request: {ids}");
        }
    }
    for answer in &answers {
        assert_eq!((answer.severity.as_str(), answer.priority.as_str()), ("critical", "P2"), "the labels' floor");
    }
    let mut unfloored = config(&url);
    unfloored.llm.severity_floor = false;
    let answers = Classifier::new(&unfloored).unwrap().classify(&subjects[..1]).await.unwrap();
    assert_eq!(answers[0].severity, "low", "without the floor the model may lower it");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anthropic_fake_peer_is_asked_only_about_incidents_the_local_classifier_is_unsure_of() {
    let (url, peer) = start(Peer::default()).await;
    let mut gated = config(&url);
    gated.llm.ask_below_confidence = 0.9;
    let classifier = Classifier::new(&gated).unwrap();
    // A storm of a kind the catalog and the examples know well, and one kind nobody lists.
    let mut subjects: Vec<Subject> = (0..30).map(subject).collect();
    let labels = BTreeMap::from([("alertname".to_string(), "ZorblatFrobnicationStalled".to_string())]);
    let annotations = BTreeMap::from([("summary".to_string(), "Zorblat frobnication stalled".to_string())]);
    subjects.push(Subject::from_alert("unknown", &labels, &annotations));
    let answers = classifier.classify(&subjects).await.unwrap();
    assert!(answers[..30].iter().all(|a| a.classified_by == "local" && a.confidence >= 0.9), "{:?}", answers[0]);
    assert_eq!(answers[30].classified_by, "anthropic/claude-test", "{:?}", answers[30]);
    let peer = peer.lock().unwrap();
    assert_eq!(peer.bodies.len(), 1);
    let ids =
        &peer.bodies[0]["tools"][0]["input_schema"]["properties"]["incidents"]["items"]["properties"]["id"]["enum"];
    assert_eq!(ids, &json!(["unknown"]), "only the unknown kind was asked about");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anthropic_fake_peer_is_not_asked_past_the_daily_spend_cap() {
    let (url, peer) = start(Peer::default()).await;
    let mut capped = config(&url);
    // The fake's usage (1,200 tokens in, 300 out) at these prices costs 0.0081 USD a request.
    (capped.llm.input_price_per_mtok, capped.llm.output_price_per_mtok) = (3.0, 15.0);
    capped.llm.max_usd_per_day = 0.005;
    let classifier = Classifier::new(&capped).unwrap();
    let answers = classifier.classify(&[subject(0)]).await.unwrap();
    assert_eq!(answers[0].classified_by, "anthropic/claude-test", "under the cap");
    let answers = classifier.classify(&[subject(1)]).await.unwrap();
    assert_eq!(answers[0].classified_by, FALLBACK, "past the cap the local classifier answers");
    assert_eq!(answers[0].category, "database");
    assert_eq!(peer.lock().unwrap().bodies.len(), 1, "no request past the cap");
}

/// The breaker runs on tokio's clock. Its cool-down is far longer than any local fallback takes,
/// on however slow a machine, and it passes only when the test moves the clock (stopped only
/// while no request is in flight: real HTTP needs it running).
#[tokio::test]
async fn anthropic_fake_peer_outage_opens_the_breaker_and_the_llm_answers_again_after_it() {
    let (url, peer) = start(Peer { then: Some(Reply::ServerError), ..Default::default() }).await;
    let config = outage_config(&url);
    let classifier = Classifier::new(&config).unwrap();
    for i in 0..2 {
        let answers = classifier.classify(&[subject(i)]).await.unwrap();
        assert_eq!(answers[0].classified_by, FALLBACK, "the local classifier answers during the outage");
        assert_eq!(answers[0].category, "database", "and answers well");
    }
    assert_eq!(peer.lock().unwrap().bodies.len(), 2);
    tokio::time::pause();
    let answers = classifier.classify(&[subject(2)]).await.unwrap();
    assert_eq!(answers[0].classified_by, FALLBACK);
    assert_eq!(peer.lock().unwrap().bodies.len(), 2, "an open breaker sends nothing");

    peer.lock().unwrap().then = Some(Reply::Answer);
    tokio::time::advance(Duration::from_millis(config.breaker.open_ms + 1)).await;
    tokio::time::resume();
    let answers = classifier.classify(&[subject(0)]).await.unwrap();
    assert_eq!(
        answers[0].classified_by, "anthropic/claude-test",
        "the fallback answer is not trusted once the LLM is back"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anthropic_fake_peer_rejecting_the_key_is_not_retried() {
    let (url, peer) = start(Peer { then: Some(Reply::Unauthorised), ..Default::default() }).await;
    let classifier = Classifier::new(&config(&url)).unwrap();
    let answers = classifier.classify(&[subject(0)]).await.unwrap();
    assert_eq!(answers[0].classified_by, FALLBACK);
    assert_eq!(peer.lock().unwrap().bodies.len(), 1, "401 is permanent: no retry");
}

/// Like the outage test above: the breaker's cool-down passes only when the test moves tokio's
/// clock, and every other step waits for a condition, so no count depends on the machine's speed.
#[tokio::test]
async fn anthropic_fake_peer_answers_queued_incidents_in_batches_while_callers_never_wait() {
    let (url, peer) = start(Peer { then: Some(Reply::ServerError), ..Default::default() }).await;
    let config = outage_config(&url);
    let classifier = Arc::new(Classifier::new(&config).unwrap());
    classifier.spawn_refiner(&tokio::runtime::Handle::current());
    // 40 kinds of incident (two full batches: no batch waits for max_wait), each seen ten times:
    // answered locally at once, whatever the LLM does. `classify_now` is not async: it cannot
    // wait for the LLM.
    let subjects: Vec<Subject> = (0..40).map(subject).collect();
    for _ in 0..10 {
        let answers = classifier.classify_now(&subjects).unwrap();
        assert!(answers.iter().all(|a| a.classified_by == FALLBACK));
    }
    // The outage: two failed batches open the breaker; everything is parked, nothing more sent.
    wait_for("both batches to fail and park their incidents", || classifier.parked() == 40).await;
    assert_eq!(peer.lock().unwrap().bodies.len(), 2, "one request per batch, none while the breaker is open");

    peer.lock().unwrap().then = Some(Reply::Answer);
    tokio::time::pause();
    tokio::time::advance(Duration::from_millis(config.breaker.open_ms + 1)).await;
    tokio::time::resume();
    let mut refined = Vec::new();
    wait_for("the LLM to answer every parked incident", || {
        refined.extend(classifier.take_refined());
        refined.len() == 40
    })
    .await;
    let answers = classifier.classify_now(&subjects).unwrap();
    assert!(answers.iter().all(|a| a.classified_by == "anthropic/claude-test"), "answers now come from the cache");
    assert_eq!(peer.lock().unwrap().bodies.len(), 2 + 1 + 1, "failed batches, the trial, then the other parked batch");
}

/// Waits until `done` holds, checking every 50 ms, for at most a minute (a generous deadline:
/// the verdict is the condition, not the time it took).
async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < Duration::from_secs(60), "gave up waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A storm of distinct incidents during an LLM outage: the backlog waiting for the LLM stops at
/// `max_backlog`; incidents beyond it keep the local answer as final (nothing would replace a
/// fallback), so neither the queue nor the parked map grows without bound.
#[tokio::test]
async fn anthropic_fake_peer_outage_with_a_storm_keeps_the_backlog_bounded() {
    let (url, _peer) = start(Peer { then: Some(Reply::ServerError), ..Default::default() }).await;
    let mut config = outage_config(&url);
    config.max_backlog = 30;
    let classifier = Arc::new(Classifier::new(&config).unwrap());
    classifier.spawn_refiner(&tokio::runtime::Handle::current());
    let subjects: Vec<Subject> = (0..100).map(subject).collect();
    let answers = classifier.classify_now(&subjects).unwrap();
    let waiting = answers.iter().filter(|a| a.classified_by == FALLBACK).count();
    assert_eq!(waiting, 30, "as many wait for the LLM as the backlog holds");
    assert!(answers[30..].iter().all(|a| a.classified_by == "local"), "the rest are final local answers");
    wait_for("the failed batches to park their incidents", || classifier.parked() == 30).await;
    let again = classifier.classify_now(&subjects).unwrap();
    assert_eq!(again.iter().filter(|a| a.classified_by == FALLBACK).count(), 30, "still no more than the bound");
    assert_eq!(classifier.parked(), 30);
}
