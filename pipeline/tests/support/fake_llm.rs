//! A FAKE OpenAI-compatible chat completions peer for the tests of the worker's classification
//! and the end-to-end benchmark (`benches/bin/e2e.rs` includes this file): no hosted LLM can run
//! here. It answers every incident asked as `database`/`high` after `latency`, or 503 while
//! `down`, and counts the requests and the incidents asked about.

use std::{
    sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use axum::{extract::State, http::StatusCode, response::IntoResponse, routing::post, Json, Router};
use serde_json::{json, Value};

#[derive(Default)]
pub struct FakeLlm {
    pub down: AtomicBool,
    pub requests: AtomicUsize,
    pub asked: AtomicUsize,
    pub latency: Duration,
}

/// Serves the fake on 127.0.0.1 and returns its base URL (for `classify.llm.url`).
pub async fn serve(fake: Arc<FakeLlm>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let app = Router::new().route("/v1/chat/completions", post(completions)).with_state(fake);
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

async fn completions(State(fake): State<Arc<FakeLlm>>, Json(body): Json<Value>) -> impl IntoResponse {
    tokio::time::sleep(fake.latency).await;
    fake.requests.fetch_add(1, Ordering::SeqCst);
    if fake.down.load(Ordering::SeqCst) {
        return (StatusCode::SERVICE_UNAVAILABLE, Json(json!({ "error": { "message": "fake outage" } })))
            .into_response();
    }
    let schema = &body["response_format"]["json_schema"]["schema"];
    let ids =
        schema["properties"]["incidents"]["items"]["properties"]["id"]["enum"].as_array().cloned().unwrap_or_default();
    fake.asked.fetch_add(ids.len(), Ordering::SeqCst);
    let incidents: Vec<Value> = ids
        .iter()
        .map(|id| json!({ "id": id, "severity": "high", "category": "database", "confidence": 0.9, "summary": "fake LLM summary" }))
        .collect();
    let content = json!({ "incidents": incidents }).to_string();
    Json(json!({
        "choices": [{ "index": 0, "message": { "role": "assistant", "content": content }, "finish_reason": "stop" }],
        "usage": { "prompt_tokens": 500, "completion_tokens": 80 }
    }))
    .into_response()
}
