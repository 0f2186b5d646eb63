//! End-to-end harness: a generated storm through Kafka, N `quench run` workers and the
//! `incidents` topic, on the local stack. It prints
//! - the rate at which the workers drain a pre-loaded alert topic (alerts/s, transactions on),
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
use quench_core::rules::RouteTree;
use quench_pipeline::{
    config::{isolated_env, Config},
    corpus,
    kafka::{client_config, create_topics},
    loadgen::{self, AlertProducer, StormConfig},
    preflight::registry_client,
};
use quench_schemas::{Alert, Decoder, Incident};
use rdkafka::{
    consumer::{BaseConsumer, Consumer},
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
}

const GROUP_WAIT_MS: i64 = 1_000;

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let rt = tokio::runtime::Runtime::new()?;
    let prefix = format!("bench-{}", now_ms());
    let rules_path = std::env::temp_dir().join(format!("{prefix}-rules.toml"));
    std::fs::write(&rules_path, format!("[route]\ngroup_by = [\"alertname\", \"service\"]\ngroup_wait = \"{GROUP_WAIT_MS}ms\"\ngroup_interval = \"5s\"\nresolve_timeout = \"5m\"\n"))?;
    let env = isolated_env(
        &prefix,
        [
            ("QUENCH_TOPICS__PARTITIONS", args.partitions.to_string()),
            ("QUENCH_WORKER__ALLOWED_LATENESS_MS", "0".into()),
            ("QUENCH_WORKER__IDLE_TIMEOUT_MS", "200".into()),
            ("QUENCH_WORKER__RULES", rules_path.display().to_string()),
            ("QUENCH_HTTP__LISTEN", String::new()),
            ("QUENCH_LOG__LEVEL", "warn".into()),
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
    let quench = args.quench.clone().unwrap_or_else(default_quench);

    let producer = rt.block_on(AlertProducer::new(&config, rules, "bench"))?;

    match args.paced_rate {
        None => {
            // Chunk after chunk, each a storm of its own later in time, so that memory holds one
            // chunk at a time however long the run.
            let started = Instant::now();
            let base = now_ms();
            let chunk_span = storm_config.span_ms + (storm_config.resends as i64 + 2) * storm_config.resend_every_ms;
            let mut n = 0;
            let mut causes = Vec::new();
            for k in 0..args.chunks {
                let storm =
                    loadgen::generate(&corpus, &StormConfig { seed: 11 + k as u64, ..storm_config.clone() }, "bench");
                for alert in &storm.alerts {
                    producer.send(alert, base + k as i64 * chunk_span)?;
                }
                n += storm.alerts.len();
                causes.extend(storm.causes.into_iter().map(|mut c| {
                    c.id = format!("{k}/{}", c.id);
                    c
                }));
            }
            producer.flush(Duration::from_secs(120))?;
            write_truth(args.truth.as_deref(), &causes)?;
            println!(
                "load: {n} alerts from {} causes ({} chunks of {} storms), {} partitions, {} worker(s)",
                causes.len(),
                args.chunks,
                args.storms,
                args.partitions,
                args.workers
            );
            println!(
                "produce: {n} alerts in {:.1?} ({:.0} alerts/s)",
                started.elapsed(),
                n as f64 / started.elapsed().as_secs_f64()
            );

            let bare = bare_consume(&config, n)?;
            println!(
                "bare consumer: {n} records in {bare:.2?} ({:.0} records/s, read_committed, no decoding)",
                n as f64 / bare.as_secs_f64()
            );

            let started = Instant::now();
            let mut workers = start_workers(&quench, &env, args.workers)?;
            let drained = wait_for_lag_zero(&config, started, n)?;
            let rss = workers.iter().map(|w| rss_kib(w.id())).sum::<u64>();
            let rate = n as f64 / drained.as_secs_f64();
            println!("pipeline: {n} alerts drained by {} worker(s) in {drained:.2?} ({rate:.0} alerts/s, {:.2} of the bare consumer)", args.workers, rate / (n as f64 / bare.as_secs_f64()));
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
                "bare_per_s": n as f64 / bare.as_secs_f64(),
                "worker_per_s": rate,
                "worker_ratio": rate / (n as f64 / bare.as_secs_f64()),
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

/// Waits until the worker group's committed offsets reach the end of the input topic.
fn wait_for_lag_zero(config: &Config, started: Instant, n: usize) -> anyhow::Result<Duration> {
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
    let mut last_print = Instant::now();
    loop {
        let committed = probe.committed_offsets(ends.clone(), Duration::from_secs(10))?;
        let done: i64 =
            committed.elements().iter().map(|e| if let Offset::Offset(o) = e.offset() { o } else { 0 }).sum();
        if done >= total_end {
            return Ok(started.elapsed());
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
            "workers did not drain {n} alerts in 30 minutes"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
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
