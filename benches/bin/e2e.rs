//! End-to-end harness: a generated storm through Kafka, N `quench run` workers and the
//! `incidents` topic, on the local stack. It prints
//! - the rate at which the workers drain a pre-loaded alert topic (alerts/s, transactions on),
//!   from their committed offsets once they committed a first transaction (or, with
//!   `--warm-up`, once they drained the warm-up pass), so that start-up is not counted,
//! - the raw rate of a bare rdkafka consumer reading the same topic, and the ratio,
//! - incidents per 1,000 alerts and worker RSS,
//! - with `--truth FILE`: the generator's root causes, the ground truth to compare incidents with;
//! - with `--paced-rate R`: p50/p99 latency from an alert's produce time to the incident it
//!   opened appearing on `incidents` (read_committed), with group_wait subtracted;
//! - with `--fake-llm-latency-ms L`: workers classify with an LLM, a FAKE OpenAI-compatible
//!   peer in this process that answers every batch after L ms; prints incidents per LLM call.
//!
//! `cargo build --release -p quench-pipeline && cargo run --release -p quench-benches --bin e2e -- --help`
//! Needs the stack (`infra/local/stack up`) and its variables (`eval "$(infra/local/stack env)"`).

use std::{
    collections::HashSet,
    path::PathBuf,
    process::{Child, Command},
    sync::{atomic::Ordering, Arc},
    time::{Duration, Instant},
};

use clap::Parser;
use quench_benches::{default_quench, now_ms, print_figures, rss_kib};
use quench_core::{
    mute::{Silence, SilenceMatcher},
    rules::RouteTree,
};
use quench_pipeline::{
    config::{isolated_env, Config},
    corpus,
    kafka::{client_config, create_topics, send_waiting},
    loadgen::{self, AlertProducer, StormConfig},
    preflight::registry_client,
};
use quench_schemas::{Alert, Decoder, Incident};
use rdkafka::{
    consumer::{BaseConsumer, Consumer},
    producer::{BaseProducer, BaseRecord, Producer},
    Message, Offset, TopicPartitionList,
};
use serde_json::json;

#[derive(Parser)]
struct Args {
    /// JSON-lines alert corpus to generate alerts from (default: the built-in one).
    #[arg(long)]
    corpus: Option<PathBuf>,
    /// Storm size: correlated storms in the generated load (about 2,500 alerts each by default).
    #[arg(long, default_value_t = 400)]
    storms: usize,
    /// Storms are generated and produced in this many chunks, one after the other in time (memory
    /// holds one chunk): 2,700 storms make about 6 M alerts.
    #[arg(long, default_value_t = 1)]
    chunks: usize,
    /// Workers (`quench run` processes) in the group.
    #[arg(long, default_value_t = 1)]
    workers: usize,
    /// Partitions of the test topics.
    #[arg(long, default_value_t = 4)]
    partitions: i32,
    /// Instead of draining a pre-loaded topic, produce at this rate (alerts/s) while workers run,
    /// and measure latency.
    #[arg(long)]
    paced_rate: Option<u64>,
    /// Write the ground truth (one JSON line per root cause: id, kind, alerts) to this file.
    #[arg(long)]
    truth: Option<PathBuf>,
    /// The quench binary (default: $CARGO_TARGET_DIR/release/quench or target/release/quench).
    #[arg(long)]
    quench: Option<PathBuf>,
    /// Classify with a fake LLM that answers each request after this many milliseconds.
    #[arg(long)]
    fake_llm_latency_ms: Option<u64>,
    /// Run every stage as the noise harness runs them: flap and transient holds, an inhibition
    /// rule (critical mutes warning of the same service), a silence of one service, correlation
    /// across groups. (The holds delay what opens: leave them off for latency.)
    #[arg(long)]
    stages: bool,
    /// Drain the same storms once before, earlier in time, and count only the second pass: the
    /// workers have started and the classifications are in their cache, as in a long run.
    #[arg(long)]
    warm_up: bool,
}

const GROUP_WAIT_MS: i64 = 1_000;

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let rt = tokio::runtime::Runtime::new()?;
    let prefix = format!("bench-{}", now_ms());
    let rules_path = write_rules(&prefix, args.stages)?;
    let env = isolated_env(
        &prefix,
        [
            ("QUENCH_TOPICS__PARTITIONS", args.partitions.to_string()),
            ("QUENCH_WORKER__ALLOWED_LATENESS_MS", "0".into()),
            ("QUENCH_WORKER__IDLE_TIMEOUT_MS", "200".into()),
            ("QUENCH_WORKER__RULES", rules_path.display().to_string()),
            ("QUENCH_HTTP__LISTEN", String::new()),
            ("QUENCH_LOG__LEVEL", "warn".into()),
            ("QUENCH_CORRELATE__ENABLED", args.stages.to_string()),
        ],
    );
    let mut env = env;
    let fake_llm = match args.fake_llm_latency_ms {
        Some(latency) => {
            let fake = Arc::new(fake_llm::FakeLlm { latency: Duration::from_millis(latency), ..Default::default() });
            let url = rt.block_on(fake_llm::serve(fake.clone()));
            env.extend(
                [
                    ("QUENCH_CLASSIFY__PROVIDER", "openai"),
                    ("QUENCH_CLASSIFY__LLM__URL", url.as_str()),
                    ("QUENCH_CLASSIFY__LLM__MODEL", "fake"),
                ]
                .map(|(k, v)| (k.to_string(), v.to_string())),
            );
            Some(fake)
        }
        None => None,
    };
    let config = Config::load(None, env.clone())?;
    rt.block_on(create_topics(&config.kafka, &config.topics))?;
    let quench = args.quench.clone().unwrap_or_else(default_quench);
    if args.stages {
        silence_one_service(&config)?;
        // Correlation learns from ClickHouse's alert history: its tables must exist.
        let migrated = quench_benches::spawn(&quench, "migrate", &env)?.wait()?;
        anyhow::ensure!(migrated.success(), "quench migrate failed ({migrated})");
    }

    let corpus = corpus::load_or_built_in(args.corpus.as_deref())?;
    let storm_config = StormConfig {
        seed: 11,
        services: 200,
        hosts: 50,
        storms: args.storms,
        rules_per_storm: 3,
        resend_every_ms: 15_000,
        resends: 15,
        flapping: args.storms / 10,
        noise: args.storms * 5,
        span_ms: 600_000,
    };
    let rules = RouteTree::load(&rules_path).map_err(anyhow::Error::msg)?;

    let producer = rt.block_on(AlertProducer::new(&config, rules, "bench"))?;

    match args.paced_rate {
        None => {
            // Chunk after chunk, each a storm of its own later in time, so that memory holds one
            // chunk at a time however long the run.
            let started = Instant::now();
            let base = now_ms();
            let chunk_span = storm_config.span_ms + (storm_config.resends as i64 + 2) * storm_config.resend_every_ms;
            // Chunk `k` is storm seed 11 + k, `k` spans later; the warm-up repeats chunk 0 a span before.
            let send_chunk = |k: i64| -> anyhow::Result<loadgen::Storm> {
                let seed = 11 + k.max(0) as u64;
                let storm = loadgen::generate(&corpus, &StormConfig { seed, ..storm_config.clone() }, "bench");
                for alert in &storm.alerts {
                    producer.send(alert, base + k * chunk_span)?;
                }
                Ok(storm)
            };
            let warm = if args.warm_up { send_chunk(-1)?.alerts.len() } else { 0 };
            let mut n = 0;
            let mut causes = Vec::new();
            for k in 0..args.chunks {
                let storm = send_chunk(k as i64)?;
                n += storm.alerts.len();
                causes.extend(storm.causes.into_iter().map(|mut c| {
                    c.id = format!("{k}/{}", c.id);
                    c
                }));
            }
            producer.flush(Duration::from_secs(120))?;
            write_truth(args.truth.as_deref(), &causes)?;
            println!(
                "load: {n} alerts from {} causes ({} chunks of {} storms) after {warm} to warm up, {} partitions, {} worker(s){}",
                causes.len(),
                args.chunks,
                args.storms,
                args.partitions,
                args.workers,
                if args.stages { ", every stage on" } else { "" }
            );
            let total = warm + n;
            println!(
                "produce: {total} alerts in {:.1?} ({:.0} alerts/s)",
                started.elapsed(),
                total as f64 / started.elapsed().as_secs_f64()
            );

            let bare = bare_consume(&config, total)?;
            let bare_rate = total as f64 / bare.as_secs_f64();
            println!(
                "bare consumer: {total} records in {bare:.2?} ({bare_rate:.0} records/s, read_committed, no decoding)"
            );

            let mut workers = start_workers(&quench, &env, args.workers)?;
            let drain = wait_for_lag_zero(&config, warm)?;
            let rss = workers.iter().map(|w| rss_kib(w.id())).sum::<u64>();
            let rate = drain.offsets as f64 / drain.took.as_secs_f64();
            println!(
                "pipeline: {} alerts drained by {} worker(s) in {:.2?} after their first commit ({rate:.0} alerts/s, {:.2} of the bare consumer); {:.2?} from their start",
                drain.offsets,
                args.workers,
                drain.took,
                rate / bare_rate,
                drain.since_start
            );
            println!("worker RSS at the end: {:.1} MiB in total", rss as f64 / 1024.0);
            std::thread::sleep(Duration::from_secs(3));
            let incidents = rt.block_on(distinct_incidents(&config))?;
            println!("incidents: {incidents} ({:.2} per 1,000 alerts)", incidents as f64 * 1000.0 / n as f64);
            if let Some(fake) = &fake_llm {
                let (calls, asked) = (fake.requests.load(Ordering::SeqCst), fake.asked.load(Ordering::SeqCst));
                println!(
                    "LLM (fake, {} ms a call): {calls} calls for {incidents} incidents ({:.1} incidents per call; {asked} incidents asked)",
                    args.fake_llm_latency_ms.unwrap_or_default(),
                    incidents as f64 / calls.max(1) as f64
                );
            }
            stop(&mut workers);
            print_figures(json!({
                "alerts": n,
                "workers": args.workers,
                "bare_per_s": bare_rate,
                "worker_per_s": rate,
                "worker_ratio": rate / bare_rate,
                "worker_rss_mib": rss as f64 / 1024.0,
                "incidents": incidents,
            }));
        }
        Some(rate) => {
            let storm = loadgen::generate(&corpus, &storm_config, "bench");
            write_truth(args.truth.as_deref(), &storm.causes)?;
            let mut workers = start_workers(&quench, &env, args.workers)?;
            std::thread::sleep(Duration::from_secs(5));
            let latencies = rt.block_on(paced(&config, &storm.alerts, rate, &producer))?;
            stop(&mut workers);
            report_latency(&latencies);
        }
    }
    Ok(())
}

fn write_truth(path: Option<&std::path::Path>, causes: &[loadgen::Cause]) -> anyhow::Result<()> {
    let Some(path) = path else { return Ok(()) };
    let lines: Vec<String> = causes.iter().map(serde_json::to_string).collect::<Result<_, _>>()?;
    std::fs::write(path, lines.join("\n") + "\n")?;
    println!("truth: {} causes written to {}", causes.len(), path.display());
    Ok(())
}

fn start_workers(quench: &std::path::Path, env: &[(String, String)], n: usize) -> anyhow::Result<Vec<Child>> {
    (0..n)
        .map(|i| {
            let mut env = env.to_vec();
            env.push(("QUENCH_WORKER__INSTANCE_ID".into(), format!("bench-{i}")));
            Ok(quench_benches::spawn(quench, "run", &env)?)
        })
        .collect()
}

fn stop(workers: &mut [Child]) {
    for w in workers.iter() {
        let _ = Command::new("kill").arg("-TERM").arg(w.id().to_string()).status();
    }
    for w in workers.iter_mut() {
        let _ = w.wait();
    }
}

fn bare_consume(config: &Config, n: usize) -> anyhow::Result<Duration> {
    let consumer: BaseConsumer = client_config(&config.kafka, "bench-bare")
        .set("group.id", format!("{}-bare", config.topics.alerts))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .create()?;
    consumer.subscribe(&[&config.topics.alerts])?;
    let started = Instant::now();
    let mut seen = 0;
    while seen < n {
        if let Some(m) = consumer.poll(Duration::from_millis(100)) {
            m?;
            seen += 1;
        }
        anyhow::ensure!(started.elapsed() < Duration::from_secs(600), "bare consumer stalled at {seen}");
    }
    Ok(started.elapsed())
}

/// A drain as the committed offsets show it.
struct Drain {
    /// Offsets committed between the first sample past the warm-up and the end.
    offsets: i64,
    took: Duration,
    since_start: Duration,
}

/// Waits until the worker group's committed offsets reach the end of the input topic, sampling
/// them every 100 ms; the drain counted starts at the first sample where more than `warm`
/// offsets are committed (a first transaction after start-up, or past the warm-up pass).
fn wait_for_lag_zero(config: &Config, warm: usize) -> anyhow::Result<Drain> {
    let started = Instant::now();
    let probe: BaseConsumer =
        client_config(&config.kafka, "bench-probe").set("group.id", &config.worker.group_id).create()?;
    let metadata = probe.fetch_metadata(Some(&config.topics.alerts), Duration::from_secs(60))?;
    let partitions: Vec<i32> = metadata.topics()[0].partitions().iter().map(|p| p.id()).collect();
    let mut ends = TopicPartitionList::new();
    let mut total_end = 0;
    for p in &partitions {
        let (_, high) = probe.fetch_watermarks(&config.topics.alerts, *p, Duration::from_secs(10))?;
        total_end += high;
        ends.add_partition(&config.topics.alerts, *p);
    }
    let mut first: Option<(i64, Instant)> = None;
    let mut last_print = Instant::now();
    loop {
        let committed = probe.committed_offsets(ends.clone(), Duration::from_secs(10))?;
        let done: i64 =
            committed.elements().iter().map(|e| if let Offset::Offset(o) = e.offset() { o } else { 0 }).sum();
        if first.is_none() && done > warm as i64 {
            first = Some((done, Instant::now()));
        }
        if let (true, Some((from, at))) = (done >= total_end, first) {
            return Ok(Drain { offsets: total_end - from, took: at.elapsed(), since_start: started.elapsed() });
        }
        if last_print.elapsed() > Duration::from_secs(5) {
            println!(
                "  progress: {done} of {total_end} offsets committed ({:.0} alerts/s so far)",
                done as f64 / started.elapsed().as_secs_f64()
            );
            last_print = Instant::now();
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(1800),
            "workers did not drain {total_end} alerts in 30 minutes"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The route of every run (group by alert name and service, `GROUP_WAIT_MS`), and with `stages`
/// the holds of the noise harness and an inhibition rule; a file for `worker.rules`.
fn write_rules(prefix: &str, stages: bool) -> anyhow::Result<PathBuf> {
    let route = format!(
        "global: {{resolve_timeout: 5m}}\nroute:\n  receiver: bench\n  group_by: [alertname, service]\n  group_wait: {GROUP_WAIT_MS}ms\n  group_interval: 5s\n"
    );
    let stages = match stages {
        true => "  flap_changes: 4\n  flap_window: 10m\n  flap_stable: 5m\n  transient_pause: 3m\ninhibit_rules:\n  - source_matchers: ['severity=\"critical\"']\n    target_matchers: ['severity=\"warning\"']\n    equal: [service]\n",
        false => "",
    };
    let path = std::env::temp_dir().join(format!("{prefix}-alertmanager.yml"));
    std::fs::write(&path, format!("{route}{stages}receivers: [{{name: bench}}]\n"))?;
    Ok(path)
}

/// Writes a silence of one service's alerts, active for the run, as the Alertmanager API would.
fn silence_one_service(config: &Config) -> anyhow::Result<()> {
    let now = now_ms();
    let silence = Silence {
        id: "bench-silence".into(),
        matchers: vec![SilenceMatcher {
            name: "service".into(),
            value: "svc-007".into(),
            is_regex: false,
            is_equal: true,
        }],
        starts_at: now - 86_400_000,
        ends_at: now + 86_400_000,
        created_at: now - 86_400_000,
        updated_at: now,
        created_by: "e2e".into(),
        comment: "the bench's silence".into(),
    };
    let producer: BaseProducer = client_config(&config.kafka, "bench-silences").create()?;
    let value = serde_json::to_vec(&silence)?;
    send_waiting(&producer, BaseRecord::to(&config.topics.silences).key(&silence.id).payload(&value))?;
    producer.flush(Duration::from_secs(30))?;
    Ok(())
}

async fn distinct_incidents(config: &Config) -> anyhow::Result<usize> {
    let consumer: BaseConsumer = client_config(&config.kafka, "bench-incidents")
        .set("group.id", format!("{}-reader", config.topics.incidents))
        .set("auto.offset.reset", "earliest")
        .set("isolation.level", "read_committed")
        .create()?;
    consumer.subscribe(&[&config.topics.incidents])?;
    let mut ids = HashSet::new();
    let mut idle = Instant::now();
    while idle.elapsed() < Duration::from_secs(3) {
        if let Some(m) = consumer.poll(Duration::from_millis(100)) {
            if let Some(key) = m?.key() {
                ids.insert(key.to_vec());
            }
            idle = Instant::now();
        }
    }
    Ok(ids.len())
}

/// Produces at `rate` alerts/s with current times and measures, for every incident's first
/// state on `incidents`, the delay from its first alert's produce time, minus group_wait.
async fn paced(config: &Config, alerts: &[Alert], rate: u64, producer: &AlertProducer) -> anyhow::Result<Vec<i64>> {
    let decoder = Decoder::<Incident>::new(registry_client(&config.registry)?);
    let consumer: BaseConsumer = client_config(&config.kafka, "bench-latency")
        .set("group.id", format!("{}-latency", config.topics.incidents))
        .set("auto.offset.reset", "latest")
        .set("isolation.level", "read_committed")
        .create()?;
    consumer.subscribe(&[&config.topics.incidents])?;
    let start = now_ms();
    let span = alerts.last().map(|a| a.received_at).unwrap_or(0).max(1);
    let count = alerts.len().min((rate * 60) as usize);
    // Compress the storm's timeline so that `count` alerts take count/rate seconds.
    let factor = span as f64 / (count as f64 * 1000.0 / rate as f64);
    let mut latencies = Vec::new();
    let mut seen = HashSet::new();
    let mut next = 0;
    let deadline = Instant::now() + Duration::from_secs(count as u64 / rate + 20);
    while Instant::now() < deadline {
        let elapsed = now_ms() - start;
        while next < count && (alerts[next].received_at as f64 / factor) as i64 <= elapsed {
            let mut alert = alerts[next].clone();
            // Event time is produce time: the latency clock starts when the alert is sent.
            alert.starts_at = 0;
            alert.received_at = 0;
            alert.ends_at = alert.ends_at.map(|_| 0);
            producer.send(&alert, now_ms())?;
            next += 1;
        }
        if let Some(m) = consumer.poll(Duration::from_millis(1)) {
            let m = m?;
            let incident = decoder.decode(m.payload().unwrap_or_default()).await?;
            if incident.version == 1 && seen.insert(incident.incident_id.clone()) {
                latencies.push(now_ms() - incident.first_seen - GROUP_WAIT_MS);
            }
        }
    }
    println!("paced: {next} alerts at {rate} alerts/s, {} incidents opened", latencies.len());
    Ok(latencies)
}

fn report_latency(latencies: &[i64]) {
    let mut sorted = latencies.to_vec();
    sorted.sort_unstable();
    let pct = |p: f64| sorted.get(((sorted.len() as f64 - 1.0) * p) as usize).copied().unwrap_or(0);
    println!("latency to incident (group_wait {GROUP_WAIT_MS} ms subtracted): p50 {} ms, p99 {} ms, max {} ms over {} incidents", pct(0.5), pct(0.99), sorted.last().copied().unwrap_or(0), sorted.len());
    print_figures(json!({ "incident_p50_ms": pct(0.5), "incident_p99_ms": pct(0.99), "incidents": sorted.len() }));
}

/// The FAKE OpenAI-compatible peer of the pipeline's tests (no hosted LLM can run here).
#[path = "../../pipeline/tests/support/fake_llm.rs"]
mod fake_llm;
