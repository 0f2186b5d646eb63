//! Side by side with Alertmanager: plays timed scenarios into a real Alertmanager (Debian's
//! `prometheus-alertmanager`, through `/api/v2/alerts`) and into Quench (ingest → worker →
//! notifier, on the local stack), both on the same `alertmanager.yml` with every receiver
//! rewritten to a webhook of a collector in this process, and compares the notifications each
//! receiver got: group key, firing and resolved alerts (by fingerprint), order, and time within
//! `--tolerance-ms`. Prints the differences and, as its last line, JSON
//! `{"scenarios":N,"notifications_am":N,"notifications_quench":N,"mismatches":N}`.
//!
//! Scenario files are JSON lines, one alert event each (see `benches/am-diff/README.md`):
//! `{"at_ms": 2500, "labels": {...}, "annotations": {...}, "status": "firing"}`.
//!
//! `cargo build --release -p quench-pipeline && cargo run --release -p quench-benches --bin am-diff -- \
//!   --config benches/am-diff/alertmanager.yml --scenario benches/am-diff/`
//! Needs the stack (`infra/local/stack up`, `eval "$(infra/local/stack env)"`), `quench prepare`
//! done, and Debian's `prometheus-alertmanager`.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
    process::{Child, Command},
    sync::Arc,
    time::{Duration, Instant},
};

use clap::Parser;
use quench_benches::{
    alertmanager::{self, collect, free_port, http_client, wait_ready, Received},
    default_quench, now_ms, spawn,
};
use quench_core::rules::{duration, Receiver};
use quench_pipeline::{
    alertmanager_api::rfc3339,
    config::{isolated_env, Config},
    kafka::create_topics,
};
use serde::Deserialize;
use serde_json::{json, Value};
use serde_yaml::{Mapping, Value as Yaml};

#[derive(Parser)]
struct Args {
    /// The Alertmanager configuration both run on (its receivers are rewritten to the collector).
    #[arg(long)]
    config: PathBuf,
    /// Scenario files (JSON lines), or directories of them (`*.jsonl`).
    #[arg(long, required = true)]
    scenario: Vec<PathBuf>,
    /// Print each notification of both sides as JSON lines before the summary.
    #[arg(long)]
    json: bool,
    /// How far apart in time two matching notifications may be.
    #[arg(long, default_value_t = 1_500)]
    tolerance_ms: i64,
    /// How long to wait after a scenario's last event (default: three times the largest
    /// group_interval, plus 3 s).
    #[arg(long)]
    settle_ms: Option<u64>,
    /// The quench binary (default: $CARGO_TARGET_DIR/release/quench or target/release/quench).
    #[arg(long)]
    quench: Option<PathBuf>,
    /// Alertmanager's binary.
    #[arg(long, default_value = "prometheus-alertmanager")]
    alertmanager: PathBuf,
}

/// One alert event of a scenario.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Event {
    at_ms: u64,
    labels: BTreeMap<String, String>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
    status: Status,
}

#[derive(Deserialize, PartialEq, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum Status {
    Firing,
    Resolved,
}

/// One notification as a receiver got it, `at` milliseconds after the scenario started.
#[derive(Debug, Clone)]
struct Notification {
    receiver: String,
    at: i64,
    group_key: String,
    firing: BTreeSet<String>,
    resolved: BTreeSet<String>,
}

impl Notification {
    fn same(&self, other: &Self) -> bool {
        (&self.group_key, &self.firing, &self.resolved) == (&other.group_key, &other.firing, &other.resolved)
    }

    fn show(&self) -> String {
        let short =
            |set: &BTreeSet<String>| set.iter().map(|f| &f[f.len().saturating_sub(6)..]).collect::<Vec<_>>().join(",");
        format!(
            "{:>6} ms {} firing [{}] resolved [{}]",
            self.at,
            self.group_key,
            short(&self.firing),
            short(&self.resolved)
        )
    }
}

const TOKEN: &str = "am-diff-token-0123456789";

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let rt = tokio::runtime::Runtime::new()?;
    let received: Received = Arc::default();
    let collector = rt.block_on(collect(received.clone()))?;
    let work = std::env::temp_dir().join(format!("quench-am-diff-{}", now_ms()));
    std::fs::create_dir_all(&work)?;
    let text = std::fs::read_to_string(&args.config)?;
    let original: Yaml = serde_yaml::from_str(&text)?;
    let am_config = work.join("am.yml");
    let quench_config = work.join("quench.yml");
    std::fs::write(&am_config, serde_yaml::to_string(&rewrite(&original, &format!("{collector}/am"))?)?)?;
    std::fs::write(&quench_config, serde_yaml::to_string(&rewrite(&original, &format!("{collector}/quench"))?)?)?;
    let settle = Duration::from_millis(args.settle_ms.unwrap_or_else(|| 3 * largest_interval(&original) + 3_000));
    let quench = args.quench.clone().unwrap_or_else(default_quench);
    println!(
        "tolerance: {} ms; settling {} ms after each scenario's last event",
        args.tolerance_ms,
        settle.as_millis()
    );

    let (mut total_am, mut total_quench, mut mismatches, mut scenarios) = (0, 0, 0, 0);
    for file in scenario_files(&args.scenario)? {
        let events = read_scenario(&file)?;
        let name = file.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        println!("== {name}: {} events", events.len());
        received.lock().expect("collector lock").clear();
        let sides = Sides::start(&args, &quench, &am_config, &quench_config, &work.join(&name), &rt)?;
        let started = now_ms();
        rt.block_on(play(&events, &sides))?;
        std::thread::sleep(settle);
        drop(sides);
        let (am, quench) = notifications(&received.lock().expect("collector lock"), started);
        if args.json {
            for (side, list) in [("am", &am), ("quench", &quench)] {
                for n in list {
                    println!(
                        "{}",
                        json!({"scenario": name, "side": side, "receiver": n.receiver, "at_ms": n.at,
                               "group_key": n.group_key, "firing": n.firing, "resolved": n.resolved})
                    );
                }
            }
        }
        let differences = compare(&am, &quench, args.tolerance_ms);
        for line in &differences {
            println!("  {line}");
        }
        println!(
            "  Alertmanager {} notifications, Quench {}, {} mismatches",
            am.len(),
            quench.len(),
            differences.len()
        );
        scenarios += 1;
        total_am += am.len();
        total_quench += quench.len();
        mismatches += differences.len();
    }
    println!(
        "{}",
        json!({"scenarios": scenarios, "notifications_am": total_am, "notifications_quench": total_quench,
               "mismatches": mismatches})
    );
    Ok(())
}

/// The configuration with every receiver a webhook to `{base}/{receiver}`, keeping the
/// `send_resolved` of its first integration (a receiver without any stays without), and no
/// templates (Alertmanager would look for the files).
fn rewrite(original: &Yaml, base: &str) -> anyhow::Result<Yaml> {
    let mut config = original.clone();
    let map = config.as_mapping_mut().ok_or_else(|| anyhow::anyhow!("the configuration is not a mapping"))?;
    map.remove("templates");
    let Some(Yaml::Sequence(receivers)) = map.get_mut("receivers") else { return Ok(config) };
    for receiver in receivers.iter_mut() {
        let Yaml::Mapping(fields) = receiver else { anyhow::bail!("a receiver is not a mapping") };
        let name = fields.get("name").and_then(Yaml::as_str).unwrap_or_default().to_string();
        let mut settings = fields.clone();
        settings.remove("name");
        let parsed = Receiver::parse(&name, &settings).map_err(anyhow::Error::msg)?;
        let mut rewritten = Mapping::new();
        rewritten.insert("name".into(), name.clone().into());
        if let Some(first) = parsed.integrations.first() {
            let mut hook = Mapping::new();
            hook.insert("url".into(), format!("{base}/{name}").into());
            hook.insert("send_resolved".into(), first.send_resolved.into());
            rewritten.insert("webhook_configs".into(), Yaml::Sequence(vec![Yaml::Mapping(hook)]));
        }
        *fields = rewritten;
    }
    Ok(config)
}

/// The largest `group_interval` in the file, in ms (Alertmanager's default, 5 min, if none).
fn largest_interval(config: &Yaml) -> u64 {
    fn walk(route: &Yaml, largest: &mut u64) {
        if let Some(text) = route.get("group_interval").and_then(Yaml::as_str) {
            if let Ok(interval) = duration::parse(text) {
                *largest = (*largest).max(interval.as_millis() as u64);
            }
        }
        for child in route.get("routes").and_then(Yaml::as_sequence).into_iter().flatten() {
            walk(child, largest);
        }
    }
    let mut largest = 0;
    if let Some(route) = config.get("route") {
        walk(route, &mut largest);
    }
    if largest == 0 {
        300_000
    } else {
        largest
    }
}

fn scenario_files(paths: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(path)?
                .filter_map(|e| Some(e.ok()?.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
                .collect();
            found.sort();
            files.extend(found);
        } else {
            files.push(path.clone());
        }
    }
    Ok(files)
}

fn read_scenario(file: &Path) -> anyhow::Result<Vec<Event>> {
    let text = std::fs::read_to_string(file).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    let mut events = Vec::new();
    for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let event: Event =
            serde_json::from_str(line).map_err(|e| anyhow::anyhow!("{}:{}: {e}", file.display(), i + 1))?;
        if events.last().is_some_and(|last: &Event| last.at_ms > event.at_ms) {
            anyhow::bail!("{}:{}: events must be in time order", file.display(), i + 1);
        }
        events.push(event);
    }
    Ok(events)
}

/// A running Alertmanager and a running Quench (ingest, worker, notifier) on topics of their own.
struct Sides {
    children: Vec<Child>,
    alertmanager: String,
    ingest: String,
}

impl Sides {
    fn start(
        args: &Args,
        quench: &Path,
        am_config: &Path,
        quench_config: &Path,
        dir: &Path,
        rt: &tokio::runtime::Runtime,
    ) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let [ingest_port, worker_port, notify_port] = [0; 3].map(|_| free_port());
        let (alertmanager, url) = alertmanager::start(&args.alertmanager, am_config, dir)?;
        let mut sides =
            Self { children: vec![alertmanager], alertmanager: url, ingest: format!("http://127.0.0.1:{ingest_port}") };
        let prefix = format!("am-diff-{}", now_ms());
        let env = isolated_env(
            &prefix,
            [
                ("QUENCH_TOPICS__PARTITIONS", "1".to_string()),
                ("QUENCH_WORKER__RULES", quench_config.display().to_string()),
                ("QUENCH_WORKER__ALLOWED_LATENESS_MS", "0".into()),
                ("QUENCH_WORKER__IDLE_TIMEOUT_MS", "100".into()),
                ("QUENCH_HTTP__LISTEN", format!("127.0.0.1:{worker_port}")),
                ("QUENCH_INGEST__LISTEN", format!("127.0.0.1:{ingest_port}")),
                ("QUENCH_INGEST__SOURCES__PROMETHEUS__TOKEN", TOKEN.into()),
                ("QUENCH_NOTIFY__LISTEN", format!("127.0.0.1:{notify_port}")),
                ("QUENCH_LOG__LEVEL", "warn".into()),
            ],
        );
        let config = Config::load(None, env.clone())?;
        rt.block_on(create_topics(&config.kafka, &config.topics))?;
        // The worker serves its probes on http.listen; ingest and notify on their own listeners
        // (http.listen empty for them: one port each, as their readiness is read below).
        let mut public = env.clone();
        public.retain(|(k, _)| k != "QUENCH_HTTP__LISTEN");
        public.push(("QUENCH_HTTP__LISTEN".into(), String::new()));
        for (command, env) in [("ingest", &public), ("run", &env), ("notify", &public)] {
            sides.children.push(spawn(quench, command, env)?);
        }
        for (what, url) in [
            ("Alertmanager", format!("{}/-/ready", sides.alertmanager)),
            ("quench ingest", format!("{}/readyz", sides.ingest)),
            ("quench run", format!("http://127.0.0.1:{worker_port}/readyz")),
            ("quench notify", format!("http://127.0.0.1:{notify_port}/readyz")),
        ] {
            rt.block_on(wait_ready(what, &url))?;
        }
        Ok(sides)
    }
}

impl Drop for Sides {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
        }
        for child in &mut self.children {
            let _ = child.wait();
        }
    }
}

/// Sends each event at its time to both sides, as Prometheus posts to an Alertmanager: a firing
/// alert starts when it first fired and has no end; a resolved one ends now.
async fn play(events: &[Event], sides: &Sides) -> anyhow::Result<()> {
    let client = http_client();
    let started = Instant::now();
    let mut first_fired: BTreeMap<&BTreeMap<String, String>, String> = BTreeMap::new();
    for event in events {
        let due = Duration::from_millis(event.at_ms);
        if let Some(wait) = due.checked_sub(started.elapsed()) {
            tokio::time::sleep(wait).await;
        }
        let now = rfc3339(now_ms());
        let starts = first_fired.entry(&event.labels).or_insert_with(|| now.clone()).clone();
        let mut alert = json!({"labels": event.labels, "annotations": event.annotations, "startsAt": starts});
        if event.status == Status::Resolved {
            alert["endsAt"] = now.into();
            first_fired.remove(&event.labels);
        }
        let body = json!([alert]);
        let am = client.post(format!("{}/api/v2/alerts", sides.alertmanager)).json(&body).send();
        let quench = client.post(format!("{}/api/v2/alerts", sides.ingest)).bearer_auth(TOKEN).json(&body).send();
        let (am, quench) = tokio::join!(am, quench);
        for (side, answer) in [("Alertmanager", am), ("Quench", quench)] {
            let status = answer?.status();
            anyhow::ensure!(status.is_success(), "{side} answered {status} to an alert");
        }
    }
    Ok(())
}

/// The notifications of each side, in arrival order, with times relative to `started`.
fn notifications(received: &[(String, String, i64, Value)], started: i64) -> (Vec<Notification>, Vec<Notification>) {
    let mut am = Vec::new();
    let mut quench = Vec::new();
    for (side, receiver, at, body) in received {
        let fingerprints = |status: &str| -> BTreeSet<String> {
            body["alerts"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|a| a["status"] == status)
                .filter_map(|a| a["fingerprint"].as_str().map(str::to_string))
                .collect()
        };
        let notification = Notification {
            receiver: receiver.clone(),
            at: at - started,
            group_key: body["groupKey"].as_str().unwrap_or_default().to_string(),
            firing: fingerprints("firing"),
            resolved: fingerprints("resolved"),
        };
        if side == "am" {
            am.push(notification);
        } else {
            quench.push(notification);
        }
    }
    (am, quench)
}

/// The differences, per receiver and group, in order: a notification one side made and the
/// other did not, or made with other alerts or too far apart in time.
fn compare(am: &[Notification], quench: &[Notification], tolerance_ms: i64) -> Vec<String> {
    let keys: BTreeSet<(&str, &str)> =
        am.iter().chain(quench).map(|n| (n.receiver.as_str(), n.group_key.as_str())).collect();
    let mut differences = Vec::new();
    for (receiver, group) in keys {
        let of = |list: &[Notification]| -> Vec<Notification> {
            list.iter().filter(|n| n.receiver == receiver && n.group_key == group).cloned().collect()
        };
        let (a, q) = (of(am), of(quench));
        for i in 0..a.len().max(q.len()) {
            match (a.get(i), q.get(i)) {
                (Some(a), Some(q)) if a.same(q) && (a.at - q.at).abs() <= tolerance_ms => {}
                (Some(a), Some(q)) => differences.push(format!(
                    "{receiver}: notification {i} differs\n    Alertmanager {}\n    Quench       {}",
                    a.show(),
                    q.show()
                )),
                (Some(a), None) => differences.push(format!("{receiver}: only Alertmanager sent {}", a.show())),
                (None, Some(q)) => differences.push(format!("{receiver}: only Quench sent {}", q.show())),
                (None, None) => {}
            }
        }
    }
    differences
}
