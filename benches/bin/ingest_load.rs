//! Ingest benchmark: `wrk` posts Alertmanager-API batches (50 alerts per request, built from the
//! built-in corpus) first to Debian's Alertmanager on its `/api/v2/alerts`, which keeps alerts in
//! memory only, then to `quench ingest` on the same path, which answers only once Kafka has
//! every alert. Same bodies, same machine, same run. It prints both rates in alerts/s, the ratio
//! and the latency percentiles, and checks that Kafka holds exactly the alerts Quench accepted.
//!
//! `cargo build --release -p quench-pipeline && cargo run --release -p quench-benches --bin ingest-load`
//! Needs the stack (`infra/local/stack up`, which also installs wrk and Alertmanager) and its
//! variables (`eval "$(infra/local/stack env)"`).

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use clap::Parser;
use quench_benches::{default_quench, now_ms};
use quench_pipeline::{
    config::{isolated_env, Config},
    corpus,
    kafka::{client_config, create_topics, delete_topics},
};
use rdkafka::consumer::{BaseConsumer, Consumer};
use serde::Deserialize;
use serde_json::json;

#[derive(Parser)]
struct Args {
    /// JSON-lines alert corpus to generate alerts from (default: the built-in one).
    #[arg(long)]
    corpus: Option<PathBuf>,
    /// Seconds of measured load per target (after a 3 s warm-up).
    #[arg(long, default_value_t = 20)]
    duration: u64,
    /// wrk's threads and connections.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    #[arg(long, default_value_t = 16)]
    connections: usize,
    /// Alerts per request.
    #[arg(long, default_value_t = 50)]
    batch: usize,
    /// Distinct request bodies wrk cycles through.
    #[arg(long, default_value_t = 400)]
    bodies: usize,
    /// The quench binary (default: $CARGO_TARGET_DIR/release/quench or target/release/quench).
    #[arg(long)]
    quench: Option<PathBuf>,
}

const TOKEN: &str = "bench-token-0123456789";

/// What the wrk script prints when a run ends.
#[derive(Deserialize, Debug)]
struct WrkRun {
    requests: u64,
    duration_us: u64,
    non_2xx: u64,
    socket_errors: u64,
    p50_us: u64,
    p99_us: u64,
    max_us: u64,
}

impl WrkRun {
    fn accepted(&self) -> u64 {
        self.requests - self.non_2xx
    }
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let rt = tokio::runtime::Runtime::new()?;
    let prefix = format!("bench-ingest-{}", now_ms());
    let dir = std::env::temp_dir().join(&prefix);
    std::fs::create_dir_all(&dir)?;
    let bodies = dir.join("bodies.jsonl");
    write_bodies(&args, &bodies)?;

    let ingest_address = format!("127.0.0.1:{}", free_port()?);
    let env = isolated_env(
        &prefix,
        [
            ("QUENCH_TOPICS__PARTITIONS", "4".into()),
            ("QUENCH_INGEST__LISTEN", ingest_address.clone()),
            ("QUENCH_INGEST__SOURCES__PROMETHEUS__TOKEN", TOKEN.into()),
            ("QUENCH_HTTP__LISTEN", String::new()),
            ("QUENCH_LOG__LEVEL", "warn".into()),
        ],
    );
    let config = Config::load(None, env.clone())?;
    rt.block_on(create_topics(&config.kafka, &config.topics))?;
    let quench = args.quench.clone().unwrap_or_else(default_quench);
    let ingest = Killed(Command::new(&quench).arg("ingest").env_clear().envs(env).spawn()?);
    let am_address = format!("127.0.0.1:{}", free_port()?);
    let alertmanager = start_alertmanager(&dir, &am_address)?;
    for address in [&ingest_address, &am_address] {
        wait_listening(address)?;
    }

    println!(
        "{} alerts per request, {} distinct bodies from {}",
        args.batch,
        args.bodies,
        corpus::name(args.corpus.as_deref())
    );
    let mut results = Vec::new();
    let mut quench_accepted = 0;
    for (name, address, token) in
        [("alertmanager 0.25", &am_address, None), ("quench ingest", &ingest_address, Some(TOKEN))]
    {
        let url = format!("http://{address}/api/v2/alerts");
        let warmup = wrk(&args, &url, &bodies, token, 3)?;
        let run = wrk(&args, &url, &bodies, token, args.duration)?;
        if token.is_some() {
            quench_accepted = (warmup.accepted() + run.accepted()) * args.batch as u64;
        }
        let rate = run.accepted() as f64 * args.batch as f64 / (run.duration_us as f64 / 1e6);
        println!(
            "{name:<18} {rate:>9.0} alerts/s  {:>7.0} req/s  p50 {:>6.1} ms  p99 {:>6.1} ms  max {:>6.1} ms  \
             non-2xx {}  socket errors {}",
            run.requests as f64 / (run.duration_us as f64 / 1e6),
            run.p50_us as f64 / 1e3,
            run.p99_us as f64 / 1e3,
            run.max_us as f64 / 1e3,
            run.non_2xx,
            run.socket_errors
        );
        results.push(rate);
    }
    println!("ratio quench / alertmanager: {:.2}", results[1] / results[0]);

    // Every alert Quench answered 2xx for is in Kafka. wrk stops counting at its deadline, so the
    // requests in flight then (at most one per connection, in each of the two runs) may be in
    // Kafka without being counted as accepted.
    let in_kafka = records_in(&config)?;
    let in_flight = 2 * (args.connections * args.batch) as u64;
    println!("alerts accepted by quench: {quench_accepted}; records in Kafka: {in_kafka}");
    drop(ingest);
    drop(alertmanager);
    rt.block_on(delete_topics(&config.kafka, &config.topics))?;
    anyhow::ensure!(
        (quench_accepted..=quench_accepted + in_flight).contains(&in_kafka),
        "Kafka holds {in_kafka} alerts; quench accepted {quench_accepted} (+ at most {in_flight} in flight)"
    );
    quench_benches::print_figures(serde_json::json!({
        "alertmanager_per_s": results[0],
        "ingest_per_s": results[1],
        "ingest_ratio_am": results[1] / results[0],
    }));
    Ok(())
}

/// One body per line: a JSON array of `batch` postable alerts, corpus rules on distinct instances.
fn write_bodies(args: &Args, path: &Path) -> anyhow::Result<()> {
    let corpus = corpus::load_or_built_in(args.corpus.as_deref())?;
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let starts = time_text(now - 60);
    let ends = time_text(now + 3_600);
    let mut out = String::new();
    for body in 0..args.bodies {
        let alerts: Vec<_> = (0..args.batch)
            .map(|i| {
                let n = body * args.batch + i;
                let rule = &corpus[n % corpus.len()];
                let mut labels = rule.labels.clone();
                labels.insert("instance".into(), format!("host-{}:9100", n % 5_000));
                json!({"labels": labels, "annotations": rule.annotations, "startsAt": starts, "endsAt": ends,
                       "generatorURL": "http://prometheus:9090/graph"})
            })
            .collect();
        out.push_str(&serde_json::to_string(&alerts)?);
        out.push('\n');
    }
    std::fs::write(path, out)?;
    Ok(())
}

/// RFC 3339 in UTC for a Unix time in seconds (days-from-civil, inverted).
fn time_text(unix: u64) -> String {
    let (days, rest) = ((unix / 86_400) as i64, unix % 86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z", rest / 3_600, rest / 60 % 60, rest % 60)
}

fn wrk(args: &Args, url: &str, bodies: &Path, token: Option<&str>, seconds: u64) -> anyhow::Result<WrkRun> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("ingest/post.lua");
    let output = Command::new("wrk")
        .args(["-t", &args.threads.to_string(), "-c", &args.connections.to_string()])
        .args(["-d", &format!("{seconds}s"), "--timeout", "10s", "-s"])
        .arg(script)
        .arg(url)
        .arg("--")
        .arg(bodies)
        .args(token)
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| anyhow::anyhow!("cannot run wrk ({e}); `infra/local/stack install` installs it"))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let last = stdout.lines().rev().find(|line| line.starts_with('{'));
    let last = last.ok_or_else(|| anyhow::anyhow!("wrk printed no result:\n{stdout}"))?;
    Ok(serde_json::from_str(last)?)
}

fn start_alertmanager(dir: &Path, address: &str) -> anyhow::Result<Killed> {
    let config = dir.join("alertmanager.yml");
    std::fs::write(&config, "route:\n  receiver: none\nreceivers:\n  - name: none\n")?;
    let child = Command::new("prometheus-alertmanager")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--storage.path={}", dir.join("am-data").display()))
        .arg(format!("--web.listen-address={address}"))
        .arg("--cluster.listen-address=")
        .stderr(std::fs::File::create(dir.join("alertmanager.log"))?)
        .spawn()
        .map_err(|e| anyhow::anyhow!("cannot start prometheus-alertmanager ({e}); `infra/local/stack install`"))?;
    Ok(Killed(child))
}

fn records_in(config: &Config) -> anyhow::Result<u64> {
    let consumer: BaseConsumer = client_config(&config.kafka, "bench-count").create()?;
    let mut total = 0;
    for partition in 0..config.topics.partitions {
        let (low, high) = consumer.fetch_watermarks(&config.topics.alerts, partition, Duration::from_secs(10))?;
        total += (high - low) as u64;
    }
    Ok(total)
}

fn wait_listening(address: &str) -> anyhow::Result<()> {
    let started = Instant::now();
    while std::net::TcpStream::connect(address).is_err() {
        anyhow::ensure!(started.elapsed() < Duration::from_secs(30), "nothing listens on {address}");
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}
