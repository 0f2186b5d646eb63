//! Soak harness, run by hand (not in CI): one `quench run` worker under a steady generated load
//! for many minutes, its resident memory sampled as it goes. What it shows: memory flat after
//! warm-up, however long the run (groups resolve and leave, storms into one group stay bounded).
//!
//! `cargo build --release -p quench-pipeline && cargo run --release -p quench-benches --bin soak -- --help`
//! Needs the stack (`infra/local/stack up`) and its variables (`eval "$(infra/local/stack env)"`).

use std::{
    path::PathBuf,
    process::Command,
    time::{Duration, Instant},
};

use clap::Parser;
use quench_benches::{default_quench, now_ms, rss_kib};
use quench_core::rules::RouteTree;
use quench_pipeline::{
    config::{isolated_env, Config},
    corpus,
    kafka::create_topics,
    loadgen::{self, AlertProducer, StormConfig},
};

#[derive(Parser)]
struct Args {
    /// Alerts produced per second.
    #[arg(long, default_value_t = 20_000)]
    rate: u64,
    /// How long the load lasts.
    #[arg(long, default_value_t = 10)]
    minutes: u64,
    /// Seconds between two samples of the worker's memory.
    #[arg(long, default_value_t = 10)]
    sample_s: u64,
    /// JSON-lines alert corpus to generate alerts from (default: the built-in one).
    #[arg(long)]
    corpus: Option<PathBuf>,
    /// The quench binary (default: $CARGO_TARGET_DIR/release/quench or target/release/quench).
    #[arg(long)]
    quench: Option<PathBuf>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let rt = tokio::runtime::Runtime::new()?;
    let prefix = format!("soak-{}", now_ms());
    let rules_path = std::env::temp_dir().join(format!("{prefix}-rules.toml"));
    // Short timings, so that groups open, resolve and leave many times within the run.
    std::fs::write(
        &rules_path,
        "[route]\ngroup_by = [\"alertname\", \"service\"]\ngroup_wait = \"1s\"\ngroup_interval = \"5s\"\nresolve_timeout = \"1m\"\n",
    )?;
    let env = isolated_env(
        &prefix,
        [
            ("QUENCH_TOPICS__PARTITIONS", "4".to_string()),
            ("QUENCH_WORKER__RULES", rules_path.display().to_string()),
            ("QUENCH_WORKER__INSTANCE_ID", "soak-0".into()),
            ("QUENCH_HTTP__LISTEN", String::new()),
            ("QUENCH_LOG__LEVEL", "warn".into()),
        ],
    );
    let config = Config::load(None, env.clone())?;
    rt.block_on(create_topics(&config.kafka, &config.topics))?;
    let corpus = corpus::load_or_built_in(args.corpus.as_deref())?;
    let rules = RouteTree::load(&rules_path).map_err(anyhow::Error::msg)?;
    let producer = rt.block_on(AlertProducer::new(&config, rules, "soak"))?;
    let quench = args.quench.clone().unwrap_or_else(default_quench);
    let mut worker = quench_benches::spawn(&quench, "run", &env)?;

    println!("soak: {} alerts/s for {} min into one worker (pid {})", args.rate, args.minutes, worker.id());
    println!("{:>8} {:>12} {:>10}", "minute", "alerts", "RSS MiB");
    let started = Instant::now();
    let end = started + Duration::from_secs(args.minutes * 60);
    let mut next_sample = started;
    let mut samples: Vec<(f64, u64)> = Vec::new();
    let mut produced: u64 = 0;
    let mut chunk = 0u64;
    'load: while Instant::now() < end {
        // A fresh storm per chunk (other hosts, services and alerts), produced at the rate with
        // its own timeline compressed: received now, so event time follows the wall clock.
        let storm = loadgen::generate(&corpus, &storm_config(100 + chunk), "soak");
        chunk += 1;
        for alert in &storm.alerts {
            if Instant::now() >= end {
                break 'load;
            }
            let due = started + Duration::from_secs_f64(produced as f64 / args.rate as f64);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            let mut alert = alert.clone();
            let now = now_ms();
            alert.ends_at = alert.ends_at.map(|end| now + (end - alert.received_at).max(0));
            alert.starts_at = now;
            alert.received_at = now;
            producer.send(&alert, 0)?;
            produced += 1;
            if Instant::now() >= next_sample {
                let minute = started.elapsed().as_secs_f64() / 60.0;
                let rss = rss_kib(worker.id()) / 1024;
                anyhow::ensure!(rss > 0, "the worker exited: {:?}", worker.try_wait()?);
                println!("{minute:>8.1} {produced:>12} {rss:>10}");
                samples.push((minute, rss));
                next_sample += Duration::from_secs(args.sample_s);
            }
        }
    }
    producer.flush(Duration::from_secs(60))?;
    let _ = Command::new("kill").arg("-TERM").arg(worker.id().to_string()).status();
    worker.wait()?;
    // Warm-up is the first third; after it, memory should stay where it got to.
    let warm: Vec<u64> = samples.iter().filter(|(m, _)| *m >= args.minutes as f64 / 3.0).map(|(_, r)| *r).collect();
    if let (Some(first), Some(max)) = (warm.first(), warm.iter().max()) {
        println!(
            "after warm-up: RSS {first} MiB at first, {max} MiB at most ({:+.0}%), {produced} alerts in {:.1} min",
            (*max as f64 / *first as f64 - 1.0) * 100.0,
            started.elapsed().as_secs_f64() / 60.0
        );
    }
    Ok(())
}

/// About 250,000 alerts: a hundred correlated storms with re-sends, flapping alerts and noise.
fn storm_config(seed: u64) -> StormConfig {
    StormConfig {
        seed,
        services: 200,
        hosts: 50,
        storms: 100,
        rules_per_storm: 3,
        resend_every_ms: 15_000,
        resends: 15,
        flapping: 10,
        noise: 500,
        span_ms: 600_000,
    }
}
