//! Notification harness, on the local stack, with a local webhook sink in this process:
//! - drain: N routing events pre-loaded on `incident-routing`, each for one webhook target; one
//!   `quench notify` delivers them (delivery log, attempt records and commits included). Prints
//!   notifications/s from the first delivery to the last.
//! - live (`--alerts-per-second R`, default 100, for `--seconds`): alerts produced now, each a
//!   new incident (the built-in corpus's rules in turn, each alert on a service of its own),
//!   through `quench run` (group_wait 0) and `quench notify` to the sink. Prints p50/p99/max
//!   latency from an alert's produce time to its webhook's arrival, and how many never arrived.
//!   The rules are known ones, as in a running deployment: their texts' embeddings are the
//!   classifier's stored ones; a rule never seen costs a cold embedding (the `classify` harness).
//!
//! `cargo build --release -p quench-pipeline && cargo run --release -p quench-benches --bin notify`
//! Needs the stack (`infra/local/stack up`) and its variables (`eval "$(infra/local/stack env)"`).

use std::{
    collections::HashMap,
    path::PathBuf,
    process::{Child, Command},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::{body::Bytes, extract::State, http::StatusCode, routing::post, Router};
use clap::Parser;
use quench_benches::{default_quench, now_ms, spawn};
use quench_core::rules::RouteTree;
use quench_pipeline::{
    config::{isolated_env, Config},
    corpus::{self, CorpusAlert},
    kafka::{client_config, create_topics},
    loadgen::AlertProducer,
    preflight::registry_client,
};
use quench_schemas::{Alert, AlertStatus, Encoder, IncidentStatus, RoutingEvent, RoutingReason, RoutingTarget};
use rdkafka::producer::{FutureProducer, FutureRecord};

#[derive(Parser)]
struct Args {
    /// Routing events pre-loaded for the drain phase.
    #[arg(long, default_value_t = 100_000)]
    events: usize,
    #[arg(long, default_value_t = 100)]
    alerts_per_second: u64,
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    #[arg(long, default_value_t = 4)]
    partitions: i32,
    /// The quench binary (default: $CARGO_TARGET_DIR/release/quench or target/release/quench).
    #[arg(long)]
    quench: Option<PathBuf>,
}

/// What the sink received: idempotency key, the incident's `service` label and arrival time, in
/// order.
type Arrivals = Arc<Mutex<Vec<(String, String, i64)>>>;

async fn sink(State(arrivals): State<Arrivals>, body: Bytes) -> StatusCode {
    let at = now_ms();
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let key = body["idempotency_key"].as_str().unwrap_or_default().to_string();
    let service = body["event"]["common_labels"]["service"].as_str().unwrap_or_default().to_string();
    arrivals.lock().unwrap().push((key, service, at));
    StatusCode::NO_CONTENT
}

fn stop(children: &mut [Child]) {
    for child in children.iter() {
        let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
    }
    for child in children.iter_mut() {
        let _ = child.wait();
    }
}

fn percentile(sorted: &[i64], p: f64) -> i64 {
    sorted.get(((sorted.len() as f64 - 1.0) * p) as usize).copied().unwrap_or(0)
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let rt = tokio::runtime::Runtime::new()?;
    let arrivals: Arrivals = Arc::default();
    let app = Router::new().route("/hook", post(sink)).with_state(arrivals.clone());
    let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
    let url = format!("http://{}/hook", listener.local_addr()?);
    rt.spawn(async move { axum::serve(listener, app).await });

    let prefix = format!("bench-notify-{}", now_ms());
    let dir = std::env::temp_dir().join(&prefix);
    std::fs::create_dir_all(&dir)?;
    let config_file = dir.join("quench.toml");
    std::fs::write(&config_file, format!("[notify]\nlisten = \"127.0.0.1:0\"\n[notify.webhook.sink]\nurl = \"{url}\"\nsecret = \"bench-secret-0123456789\"\n"))?;
    let rules = dir.join("rules.toml");
    std::fs::write(
        &rules,
        "[route]\ngroup_by = [\"alertname\", \"service\"]\ngroup_wait = \"0s\"\ngroup_interval = \"5s\"\nresolve_timeout = \"5m\"\n",
    )?;
    let routing = dir.join("routing.yaml");
    std::fs::write(&routing, "default: { team: ops, targets: [{ channel: webhook, target: sink }] }\n")?;
    let env = isolated_env(
        &prefix,
        [
            ("QUENCH_CONFIG", config_file.display().to_string()),
            ("QUENCH_TOPICS__PARTITIONS", args.partitions.to_string()),
            ("QUENCH_WORKER__ALLOWED_LATENESS_MS", "0".into()),
            ("QUENCH_WORKER__IDLE_TIMEOUT_MS", "200".into()),
            ("QUENCH_WORKER__RULES", rules.display().to_string()),
            ("QUENCH_WORKER__ROUTING", routing.display().to_string()),
            ("QUENCH_HTTP__LISTEN", String::new()),
            ("QUENCH_LOG__LEVEL", "warn".into()),
            // One target takes the whole backlog: its queue may be as long as the notifier's
            // (10,000), where reading pauses, rather than dead-letter beyond 2,000.
            ("QUENCH_NOTIFY__MAX_QUEUED_PER_TARGET", "10000".into()),
        ],
    );
    let config = Config::load(Some(&config_file), env.clone())?;
    rt.block_on(create_topics(&config.kafka, &config.topics))?;
    let quench = args.quench.clone().unwrap_or_else(default_quench);

    // Drain: a backlog of routing events, one notification each.
    let encoder =
        rt.block_on(Encoder::<RoutingEvent>::register(&registry_client(&config.registry)?, &config.topics.routing))?;
    let producer: FutureProducer = client_config(&config.kafka, "bench").set("linger.ms", "20").create()?;
    rt.block_on(async {
        let mut pending = Vec::with_capacity(args.events);
        for i in 0..args.events {
            let event = backlog_event(i);
            let value = encoder.encode(&event)?;
            let record = FutureRecord::to(&config.topics.routing).key(&event.incident_id).payload(&value);
            pending.push(producer.send_result(record).map_err(|(e, _)| e)?);
        }
        for delivery in pending {
            delivery.await?.map_err(|(e, _)| e)?;
        }
        anyhow::Ok(())
    })?;
    println!("drain: {} routing events produced", args.events);
    let notifier = spawn(&quench, "notify", &env)?;
    let started = Instant::now();
    while arrivals.lock().unwrap().len() < args.events {
        anyhow::ensure!(started.elapsed() < Duration::from_secs(600), "drain did not finish in 10 minutes");
        std::thread::sleep(Duration::from_millis(50));
    }
    let (first, last) = {
        let a = arrivals.lock().unwrap();
        (a.first().map_or(0, |x| x.2), a.last().map_or(0, |x| x.2))
    };
    let rate = args.events as f64 / ((last - first).max(1) as f64 / 1000.0);
    println!(
        "drain: {} notifications in {:.2} s (first to last delivery): {rate:.0} notifications/s; {:.1} s including start-up",
        args.events,
        (last - first) as f64 / 1000.0,
        started.elapsed().as_secs_f64()
    );

    // Live: alert to webhook, through the worker and the notifier.
    arrivals.lock().unwrap().clear();
    let worker = spawn(&quench, "run", &env)?;
    let alerts =
        rt.block_on(AlertProducer::new(&config, RouteTree::load(&rules).map_err(anyhow::Error::msg)?, "bench"))?;
    std::thread::sleep(Duration::from_secs(20)); // the worker loads its classifier and joins the group
    let total = args.alerts_per_second * args.seconds;
    let corpus = corpus::load_or_built_in(None)?;
    let mut sent: HashMap<String, i64> = HashMap::new();
    let begin = Instant::now();
    for i in 0..total {
        let due = Duration::from_secs_f64(i as f64 / args.alerts_per_second as f64);
        if let Some(wait) = due.checked_sub(begin.elapsed()) {
            std::thread::sleep(wait);
        }
        let service = format!("live-{i}");
        let now = now_ms();
        alerts.send(&live_alert(&corpus[i as usize % corpus.len()], &service, now), 0)?;
        sent.insert(service, now);
    }
    alerts.flush(Duration::from_secs(30))?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while arrivals.lock().unwrap().len() < total as usize && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut latencies: Vec<i64> =
        arrivals.lock().unwrap().iter().filter_map(|(_, service, at)| sent.get(service).map(|s| at - s)).collect();
    latencies.sort_unstable();
    println!(
        "live: {total} alerts at {}/s, {} webhooks ({} never arrived): alert to webhook p50 {} ms, p99 {} ms, max {} ms",
        args.alerts_per_second,
        latencies.len(),
        total as usize - latencies.len().min(total as usize),
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        latencies.last().copied().unwrap_or(0)
    );
    let mut children = [worker, notifier];
    stop(&mut children);
    quench_benches::print_figures(serde_json::json!({
        "notify_per_s": rate,
        "webhook_rate_per_s": args.alerts_per_second,
        "webhooks": latencies.len(),
        "webhook_p50_ms": percentile(&latencies, 0.5),
        "webhook_p99_ms": percentile(&latencies, 0.99),
    }));
    Ok(())
}

fn backlog_event(i: usize) -> RoutingEvent {
    RoutingEvent {
        event_id: format!("bench-{i}/1/opened"),
        incident_id: format!("bench-{i}"),
        reason: RoutingReason::Opened,
        tenant: "default".into(),
        status: IncidentStatus::Open,
        title: format!("Backlog incident {i}"),
        summary: "generated".into(),
        severity: "high".into(),
        priority: Some("P2".into()),
        category: Some("application".into()),
        alert_count: 1,
        common_labels: Default::default(),
        team: Some("ops".into()),
        targets: vec![RoutingTarget::new("webhook", "sink")],
        escalation_policy: None,
        incident_version: 1,
        emitted_at: now_ms(),
        receiver: None,
        group_key: String::new(),
        group_labels: Default::default(),
        alerts: Vec::new(),
        truncated_alerts: 0,
        flaps: 0,
        parent_incident_id: None,
        correlation: None,
    }
}

/// A corpus rule's alert on `service`, firing now.
fn live_alert(rule: &CorpusAlert, service: &str, now: i64) -> Alert {
    let mut labels = rule.labels.clone();
    labels.insert("service".into(), service.into());
    Alert {
        source: "bench".into(),
        status: AlertStatus::Firing,
        labels,
        annotations: rule.annotations.clone(),
        starts_at: now,
        ends_at: None,
        received_at: now,
        generator_url: None,
        fingerprint: None,
        tenant: "default".into(),
        stateful: false,
    }
}
