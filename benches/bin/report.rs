//! Every headline measurement beside its anchor, in one run: the worker's drain against a bare
//! consumer of the same topic (one worker and two), ingest against Debian's Alertmanager on the
//! same bodies, alert → opened incident at 20 k alerts/s, alert → webhook at 1 k alerts/s, the
//! local classifier against this machine's matrix-product bound, memory per open fingerprint and
//! the notifier's drain. Prints one table (with the figures of the recorded earlier run beside
//! them) and, as its last line, JSON with one key per figure.
//!
//! `cargo run --release -p quench-benches --bin report -- [--quick] [--json]`, with the stack up
//! and its variables set (`infra/local/stack up; eval "$(infra/local/stack env)"`). It builds the
//! release `quench` and the harnesses first, then runs each harness as a child process and reads
//! the figures from its last line; each harness's own output goes to stderr as progress.

use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Instant,
};

use anyhow::{bail, Context};
use clap::Parser;
use serde_json::{Map, Value};

#[derive(Parser)]
struct Args {
    /// Smaller runs of every measurement: about 5 minutes in all instead of 15.
    #[arg(long)]
    quick: bool,
    /// Print only the JSON line.
    #[arg(long)]
    json: bool,
    /// The earlier run to print beside this one (a report's JSON line); default: the one recorded
    /// in benches/report/ for the same mode, if any.
    #[arg(long)]
    before: Option<PathBuf>,
    /// The `quench` the harnesses start, instead of the release build made first (e.g. an earlier
    /// commit's, to measure it with these harnesses). The in-process figures (classifier, memory
    /// per fingerprint) are always this build's.
    #[arg(long)]
    quench: Option<PathBuf>,
}

/// One figure of the report: its JSON key, what it is, and the target it is measured against.
struct Figure {
    key: &'static str,
    what: &'static str,
    target: &'static str,
}

const FIGURES: &[Figure] = &[
    Figure { key: "worker_ratio", what: "worker drain / bare consumer, 1 worker", target: ">= 0.5" },
    Figure { key: "worker_per_s", what: "  worker drain, alerts/s", target: "" },
    Figure { key: "bare_per_s", what: "  bare consumer, records/s", target: "" },
    Figure { key: "worker_ratio_2", what: "worker drain / bare consumer, 2 workers", target: ">= 0.5" },
    Figure { key: "ingest_ratio_am", what: "ingest / Alertmanager, same bodies", target: ">= 2" },
    Figure { key: "ingest_per_s", what: "  ingest, alerts/s", target: "" },
    Figure { key: "alertmanager_per_s", what: "  Alertmanager, alerts/s", target: "" },
    Figure { key: "webhook_p99_ms", what: "alert -> webhook p99 ms, 1 k alerts/s, group_wait 0", target: "<= 200" },
    Figure {
        key: "incident_p99_ms",
        what: "alert -> opened incident p99 ms beyond group_wait, 20 k/s",
        target: "<= 100",
    },
    Figure { key: "classify_cold_per_s", what: "local classifier cold, texts/s", target: ">= 270" },
    Figure { key: "classify_bound_per_s", what: "  its matrix-product bound, texts/s", target: "" },
    Figure { key: "bytes_per_fingerprint", what: "memory per open fingerprint, bytes", target: "<= 100" },
    Figure { key: "notify_per_s", what: "notifier drain, notifications/s", target: "" },
];

/// A harness run: its binary, its arguments in each mode, and the figures it gives under which
/// keys of the report (a harness run twice gives the same key twice, hence the renaming).
struct Run {
    name: &'static str,
    binary: &'static str,
    /// Whether it starts `quench` processes (and takes `--quench`).
    starts_quench: bool,
    quick: &'static [&'static str],
    full: &'static [&'static str],
    keys: &'static [(&'static str, &'static str)],
}

const RUNS: &[Run] = &[
    Run {
        name: "drain, 1 worker",
        binary: "e2e",
        starts_quench: true,
        quick: &["--storms", "100", "--warm-up", "--stages"],
        full: &["--storms", "400", "--warm-up", "--stages"],
        keys: &[("worker_ratio", "worker_ratio"), ("worker_per_s", "worker_per_s"), ("bare_per_s", "bare_per_s")],
    },
    Run {
        name: "drain, 2 workers",
        binary: "e2e",
        starts_quench: true,
        quick: &["--storms", "100", "--warm-up", "--stages", "--workers", "2"],
        full: &["--storms", "400", "--warm-up", "--stages", "--workers", "2"],
        keys: &[("worker_ratio", "worker_ratio_2")],
    },
    Run {
        name: "alert -> incident at 20 k/s",
        binary: "e2e",
        starts_quench: true,
        quick: &["--storms", "60", "--paced-rate", "20000"],
        full: &["--storms", "400", "--paced-rate", "20000"],
        keys: &[("incident_p99_ms", "incident_p99_ms")],
    },
    Run {
        name: "ingest against Alertmanager",
        binary: "ingest-load",
        starts_quench: true,
        quick: &["--duration", "8"],
        full: &["--duration", "20"],
        keys: &[
            ("ingest_ratio_am", "ingest_ratio_am"),
            ("ingest_per_s", "ingest_per_s"),
            ("alertmanager_per_s", "alertmanager_per_s"),
        ],
    },
    Run {
        name: "notifier drain, alert -> webhook at 1 k/s",
        binary: "notify",
        starts_quench: true,
        quick: &["--events", "5000", "--alerts-per-second", "1000", "--seconds", "5"],
        full: &["--events", "100000", "--alerts-per-second", "1000", "--seconds", "20"],
        keys: &[("notify_per_s", "notify_per_s"), ("webhook_p99_ms", "webhook_p99_ms")],
    },
    Run {
        name: "local classifier",
        binary: "classify",
        starts_quench: false,
        quick: &["--cold", "96", "--hot", "50000"],
        full: &[],
        keys: &[("classify_cold_per_s", "classify_cold_per_s"), ("classify_bound_per_s", "classify_bound_per_s")],
    },
    Run {
        name: "memory per fingerprint",
        binary: "window-memory",
        starts_quench: false,
        quick: &["1000000"],
        full: &["10000000"],
        keys: &[("bytes_per_fingerprint", "bytes_per_fingerprint")],
    },
];

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if std::env::var_os("QUENCH_KAFKA__BROKERS").is_none() {
        bail!("the stack's variables are not set: infra/local/stack up; eval \"$(infra/local/stack env)\"");
    }
    let started = Instant::now();
    build()?;
    let here = std::env::current_exe()?.parent().context("the report's directory")?.to_path_buf();
    let mut figures = Map::new();
    for run in RUNS {
        let mut arguments: Vec<&str> = if args.quick { run.quick } else { run.full }.to_vec();
        if let Some(quench) = args.quench.as_deref().filter(|_| run.starts_quench) {
            arguments.extend(["--quench", quench.to_str().context("a quench path in UTF-8")?]);
        }
        eprintln!("== {} ({} {})", run.name, run.binary, arguments.join(" "));
        let given = harness(&here.join(run.binary), &arguments)?;
        for (from, to) in run.keys {
            let value =
                given.get(*from).cloned().with_context(|| format!("{} gave no {from}: {given:?}", run.binary))?;
            figures.insert(to.to_string(), value);
        }
    }
    figures.insert("quick".into(), args.quick.into());
    figures.insert("seconds".into(), started.elapsed().as_secs().into());
    let mode = if args.quick { "quick" } else { "full" };
    let recorded = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("report/before-{mode}.json"));
    let before = match args.before.as_deref().or(recorded.exists().then_some(recorded.as_path())) {
        Some(path) => Some(read_report(path)?),
        None => None,
    };
    if !args.json {
        print_table(&figures, before.as_ref());
    }
    println!("{}", Value::Object(figures));
    Ok(())
}

/// The release `quench` and every harness, built as `cargo run --release` built this one.
fn build() -> anyhow::Result<()> {
    eprintln!("== building the release quench and the harnesses");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    // Without what `cargo run` set for this package: passed on, it reruns build scripts that
    // watch the environment and rebuilds dependencies for nothing. (What the user set, such as
    // CARGO_HOME, CARGO_TARGET_DIR or CARGO_BUILD_JOBS, stays; LD_LIBRARY_PATH goes, as
    // `cargo run` adds the build's directories to it.)
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        let set_by_cargo_run = ["CARGO_PKG_", "CARGO_MANIFEST_"].iter().any(|p| key.starts_with(p))
            || matches!(
                key.as_ref(),
                "CARGO_CRATE_NAME" | "CARGO_BIN_NAME" | "CARGO_PRIMARY_PACKAGE" | "LD_LIBRARY_PATH"
            );
        if set_by_cargo_run {
            command.env_remove(key.as_ref());
        }
    }
    let status = command
        .args(["build", "--release", "--locked", "-p", "quench-pipeline", "--bin", "quench", "-p", "quench-benches"])
        .args(["--bins"])
        .status()
        .context("running cargo")?;
    if !status.success() {
        bail!("building the harnesses failed");
    }
    Ok(())
}

/// Runs a harness, passing its output on to stderr, and returns the figures of its last line.
fn harness(binary: &Path, arguments: &[&str]) -> anyhow::Result<Map<String, Value>> {
    let mut child = Command::new(binary)
        .args(arguments)
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {}", binary.display()))?;
    let mut last = String::new();
    for line in BufReader::new(child.stdout.take().expect("piped")).lines() {
        let line = line?;
        eprintln!("   {line}");
        last = line;
    }
    let status = child.wait()?;
    if !status.success() {
        bail!("{} {} failed ({status})", binary.display(), arguments.join(" "));
    }
    match serde_json::from_str(&last) {
        Ok(Value::Object(figures)) => Ok(figures),
        _ => bail!("{} did not end with a JSON line of figures: {last}", binary.display()),
    }
}

fn read_report(path: &Path) -> anyhow::Result<Map<String, Value>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let last = text.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or_default();
    match serde_json::from_str(last) {
        Ok(Value::Object(figures)) => Ok(figures),
        _ => bail!("{} does not end with a report's JSON line", path.display()),
    }
}

fn print_table(figures: &Map<String, Value>, before: Option<&Map<String, Value>>) {
    let number = |figures: &Map<String, Value>, key: &str| figures.get(key).and_then(Value::as_f64);
    let shown = |value: Option<f64>| match value {
        None => "-".to_string(),
        Some(v) if v.abs() >= 100.0 => format!("{v:.0}"),
        Some(v) if v.abs() < 0.1 => format!("{v:.4}"),
        Some(v) => format!("{v:.2}"),
    };
    println!("{:<60} {:>12} {:>12} {:>9}", "figure", "before", "now", "target");
    for figure in FIGURES {
        let then = before.and_then(|b| number(b, figure.key));
        println!(
            "{:<60} {:>12} {:>12} {:>9}",
            figure.what,
            shown(then),
            shown(number(figures, figure.key)),
            figure.target
        );
    }
}
