//! `quench api` under load, by hand, against a running API (its URL and a token of all tenants):
//!
//! - `load --incidents N`: N generated incidents (five tenants, 50 services, four severities,
//!   three statuses, 90 days) into the configured ClickHouse database (QUENCH_* variables);
//! - `list --clients 16 --seconds 30`: that many clients asking `GET /api/v1/incidents` at once,
//!   each request with random filters (tenant, status, severity, service, a time range) and
//!   every fourth one the next page of the previous; prints requests/s and latency percentiles;
//! - `stream --incidents 200`: one client on `GET /api/v1/stream` (what the console reads) while
//!   incidents are produced to the `incidents` topic, ten a second; prints how long each took
//!   from Kafka's acknowledgement to the event (the console's "within 1 s").
//!
//! The last line is JSON: `{"mode":"list","requests":N,"errors":N,"p50_ms":F,"p99_ms":F}` or
//! `{"mode":"stream","events":N,"p50_ms":F,"p99_ms":F}`.
//!
//! `cargo run --release -p quench-benches --bin api-load -- --url http://127.0.0.1:9490 --token T
//! (load --incidents 1000000 | list --clients 16 --seconds 30 | stream --incidents 200)`

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use clap::{Parser, Subcommand};
use quench_pipeline::{ask::time_text, clickhouse::client, config::Config, loadgen::rng::Rng};
use quench_schemas::{now_ms, Encoder, Incident, IncidentStatus};
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::{json, Value};

#[derive(Parser)]
struct Args {
    /// The API's base URL.
    #[arg(long, default_value = "http://127.0.0.1:9490")]
    url: String,
    /// A token of api.tokens that sees every tenant.
    #[arg(long, default_value = "")]
    token: String,
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Subcommand)]
enum Mode {
    Load {
        #[arg(long, default_value_t = 1_000_000)]
        incidents: usize,
    },
    List {
        #[arg(long, default_value_t = 16)]
        clients: usize,
        #[arg(long, default_value_t = 30)]
        seconds: u64,
    },
    Stream {
        #[arg(long, default_value_t = 200)]
        incidents: usize,
    },
}

const TENANTS: [&str; 5] = ["acme", "globex", "initech", "umbrella", "hooli"];
const SEVERITIES: [&str; 4] = ["critical", "high", "medium", "low"];
const STATUSES: [&str; 3] = ["open", "acknowledged", "resolved"];
const DAY: i64 = 86_400_000;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let config = Config::load(None, std::env::vars())?;
    match args.mode {
        Mode::Load { incidents } => load(&config, incidents).await,
        Mode::List { clients, seconds } => list(&args.url, &args.token, clients, seconds).await,
        Mode::Stream { incidents } => stream(&config, &args.url, &args.token, incidents).await,
    }
}

async fn load(config: &Config, incidents: usize) -> anyhow::Result<()> {
    let clickhouse = client(&config.clickhouse);
    let mut rng = Rng::new(7);
    let now = now_ms();
    let started = Instant::now();
    for chunk in (0..incidents).collect::<Vec<_>>().chunks(50_000) {
        let rows: Vec<String> = chunk
            .iter()
            .map(|n| {
                let first_seen = now - rng.between(0, 90 * DAY);
                let service = format!("svc-{:02}", rng.below(50));
                json!({"tenant": TENANTS[rng.below(5)], "incident_id": format!("inc-load-{n:08}"),
                       "group_key": format!("default|{service}"), "status": STATUSES[rng.below(3)],
                       "title": format!("{service} is failing"), "summary": format!("{service}: errors above 5%"),
                       "severity": SEVERITIES[rng.below(4)], "first_seen": time_text(first_seen),
                       "last_seen": time_text(first_seen + 60_000), "alert_count": 1 + rng.below(20),
                       "distinct_alerts": 1, "common_labels": {"service": service}, "version": 1})
                .to_string()
            })
            .collect();
        clickhouse.query(&format!("INSERT INTO incidents FORMAT JSONEachRow\n{}", rows.join("\n"))).execute().await?;
        eprintln!("{} incidents in {:.1?}", chunk.last().map_or(0, |n| n + 1), started.elapsed());
    }
    println!("{}", json!({"mode": "load", "incidents": incidents, "seconds": started.elapsed().as_secs_f64()}));
    Ok(())
}

/// A list query with random filters.
fn query(rng: &mut Rng) -> String {
    let mut params = vec![format!("limit={}", [20, 50, 100][rng.below(3)])];
    if rng.below(2) == 0 {
        params.push(format!("tenant={}", TENANTS[rng.below(5)]));
    }
    if rng.below(2) == 0 {
        params.push(format!("status={}", STATUSES[rng.below(3)]));
    }
    if rng.below(3) == 0 {
        params.push(format!("severity={}", SEVERITIES[rng.below(4)]));
    }
    if rng.below(3) == 0 {
        params.push(format!("service=svc-{:02}", rng.below(50)));
    }
    if rng.below(3) == 0 {
        let from = now_ms() - rng.between(DAY, 60 * DAY);
        let from = time_text(from).replace(' ', "T") + "Z";
        params.push(format!("from={}", from.replace(':', "%3A")));
    }
    format!("/api/v1/incidents?{}", params.join("&"))
}

async fn list(url: &str, token: &str, clients: usize, seconds: u64) -> anyhow::Result<()> {
    let http = reqwest::Client::new();
    let latencies = Arc::new(Mutex::new(Vec::new()));
    let errors = Arc::new(Mutex::new(0usize));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for c in 0..clients {
        let (http, url, token) = (http.clone(), url.to_string(), token.to_string());
        let (latencies, errors) = (latencies.clone(), errors.clone());
        tasks.push(tokio::spawn(async move {
            let mut rng = Rng::new(c as u64 + 1);
            let mut next: Option<String> = None;
            while Instant::now() < deadline {
                let path = match next.take().filter(|_| rng.below(4) == 0) {
                    Some(path) => path,
                    None => query(&mut rng),
                };
                let started = Instant::now();
                let answer = http.get(format!("{url}{path}")).bearer_auth(&token).send().await;
                let page: Option<Value> = match answer {
                    Ok(r) if r.status().is_success() => r.json().await.ok(),
                    _ => None,
                };
                let elapsed = started.elapsed().as_secs_f64() * 1e3;
                match page {
                    Some(page) => {
                        latencies.lock().unwrap().push(elapsed);
                        if let Some(cursor) = page["next_cursor"].as_str() {
                            let base = path.split("&cursor=").next().unwrap_or(&path).to_string();
                            next = Some(format!("{base}&cursor={cursor}"));
                        }
                    }
                    None => *errors.lock().unwrap() += 1,
                }
            }
        }));
    }
    for task in tasks {
        task.await?;
    }
    let mut latencies = latencies.lock().unwrap().clone();
    let errors = *errors.lock().unwrap();
    let (p50, p99) = percentiles(&mut latencies);
    println!(
        "{clients} clients, {seconds} s: {} requests ({:.0}/s), {errors} errors, p50 {p50:.1} ms, p99 {p99:.1} ms",
        latencies.len(),
        latencies.len() as f64 / seconds as f64
    );
    println!(
        "{}",
        json!({"mode": "list", "requests": latencies.len(), "errors": errors, "p50_ms": p50, "p99_ms": p99})
    );
    Ok(())
}

async fn stream(config: &Config, url: &str, token: &str, incidents: usize) -> anyhow::Result<()> {
    let registry = quench_schemas::Registry::new(&config.registry.url, Duration::from_secs(10))?;
    let encoder = Encoder::<Incident>::register(&registry, &config.topics.incidents).await?;
    let producer: FutureProducer = quench_pipeline::kafka::client_config(&config.kafka, "api-load").create()?;
    let acked: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let (seen_tx, mut seen_rx) = tokio::sync::mpsc::unbounded_channel::<(String, Instant)>();
    let response = reqwest::Client::new().get(format!("{url}/api/v1/stream")).bearer_auth(token).send().await?;
    anyhow::ensure!(response.status().is_success(), "the stream answered {}", response.status());
    tokio::spawn(async move {
        let mut response = response;
        let mut buffer = String::new();
        while let Ok(Some(chunk)) = response.chunk().await {
            buffer.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = buffer.find("\n\n") {
                let frame: String = buffer.drain(..end + 2).collect();
                let data: String = frame.lines().filter_map(|l| l.strip_prefix("data:")).collect();
                if let Ok(incident) = serde_json::from_str::<Value>(data.trim()) {
                    let id = incident["incident_id"].as_str().unwrap_or_default().to_string();
                    let _ = seen_tx.send((id, Instant::now()));
                }
            }
        }
    });
    // The stream starts at the end: give it a moment to be there before the first incident.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let run = now_ms();
    for n in 0..incidents {
        let incident = incident(&format!("inc-stream-{run}-{n:05}"));
        let value = encoder.encode(&incident)?;
        let record = FutureRecord::to(&config.topics.incidents).key(&incident.group_key).payload(&value);
        producer.send(record, Duration::from_secs(10)).await.map_err(|(e, _)| e)?;
        acked.lock().unwrap().insert(incident.incident_id.clone(), Instant::now());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut latencies = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while latencies.len() < incidents && Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_secs(1), seen_rx.recv()).await {
            Ok(Some((id, at))) => {
                if let Some(sent) = acked.lock().unwrap().get(&id) {
                    latencies.push(at.saturating_duration_since(*sent).as_secs_f64() * 1e3);
                }
            }
            _ => continue,
        }
    }
    let events = latencies.len();
    let (p50, p99) = percentiles(&mut latencies);
    println!("{events} of {incidents} incidents seen on the stream: p50 {p50:.1} ms, p99 {p99:.1} ms after Kafka acknowledged");
    println!("{}", json!({"mode": "stream", "events": events, "p50_ms": p50, "p99_ms": p99}));
    Ok(())
}

fn incident(id: &str) -> Incident {
    let now = now_ms();
    Incident {
        incident_id: id.into(),
        group_key: format!("default|{id}"),
        tenant: "acme".into(),
        status: IncidentStatus::Open,
        title: "LoadTest".into(),
        summary: "an incident of the stream harness".into(),
        severity: "high".into(),
        priority: Some("P2".into()),
        category: None,
        confidence: None,
        classified_by: None,
        first_seen: now,
        last_seen: now,
        acknowledged_at: None,
        resolved_at: None,
        alert_count: 1,
        fingerprints: vec![id.into()],
        common_labels: BTreeMap::from([("alertname".into(), "LoadTest".into())]),
        flapping: false,
        version: 1,
        distinct_alerts: 1,
        muted_alerts: 0,
        silenced_by: Vec::new(),
        inhibited_by: Vec::new(),
        state_changes: 1,
        transient: false,
        parent_incident_id: None,
        correlation: None,
    }
}

/// p50 and p99 of `values` (sorted in place); zeros when empty.
fn percentiles(values: &mut [f64]) -> (f64, f64) {
    if values.is_empty() {
        return (0.0, 0.0);
    }
    values.sort_by(f64::total_cmp);
    let at = |p: f64| values[((values.len() - 1) as f64 * p).round() as usize];
    (at(0.5), at(0.99))
}
