//! The quality harness: a generated stream with ground truth (`quench_benches::noise`: storms
//! across services and groups, flapping and transient alerts, re-sends, unrelated singletons)
//! through Quench's operator in virtual time (`quench_core::replay`), scored against the truth,
//! three ways: Alertmanager's semantics (Quench with its additions off, which the conformance
//! suite and `am-diff` hold to Alertmanager's notifications), Quench with its holds (flap
//! suppression, the transient pause), and with correlation across groups too. With
//! `--alertmanager BIN`, also through a real Alertmanager, time compressed
//! ([`alertmanager`]).
//!
//! What is learned (which kinds go together, which kinds are transient) is learned from a day of
//! *history*: another stream of the same generator (seed + 1000), before the scored one, never
//! from the scored stream itself.
//!
//! Prints alerts, notifications (pages: a correlated child is an update in its parent's thread,
//! counted apart), reduction, pairwise precision / recall / F1, BCubed F1 and wrong merges, and
//! as its last line JSON `{"alerts":N,"alert_records":N,"am_notifications":N,"notifications":N,
//! "reduction":R,"f1":F,"bcubed_f1":F}` for Quench with everything on (`am_notifications`: the
//! real Alertmanager's when it ran, else the Alertmanager-semantics run's; `am_source` says
//! which). `alerts` counts firing episodes (an alert that fires again later
//! counts again; its re-sends do not); the reduction is 1 - notifications / episodes.
//!
//! With `--corpus FILE` (JSON lines as `pipeline/classify/data/examples.jsonl`), each part of the
//! stream (the node that dies, the database, the flapping alert...) is played by an alert of the
//! file, with its name and texts: the same storms, of alerts Quench has never seen.
//!
//! `cargo run --release -p quench-benches --bin noise -- [--corpus FILE] [--seed N] [--hours H]
//! [--alertmanager prometheus-alertmanager [--speedup 120]] [--json]`

#[path = "noise/alertmanager.rs"]
mod alertmanager;

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    path::PathBuf,
    time::Duration,
};

use alertmanager::Timings;
use clap::Parser;
use quench_benches::noise::{dependencies, generate, grouping, Found, Grouping, Kinds, Stream};
use quench_core::{
    correlate::{Associations, Correlator, Dependencies, Settings},
    replay::{durations, onsets, replay, Additions, Replayed},
    routing::RoutingRules,
    rules::RouteTree,
    window::transient::Transients,
};
use serde_json::json;

/// Alertmanager's timings, for every run (the route's, after its group_by; resolve_timeout
/// Alertmanager's global one).
const TIMINGS: Timings =
    Timings { group_wait: 30_000, group_interval: 300_000, repeat_interval: 4 * HOUR, resolve_timeout: 300_000 };

/// The same, with Quench's holds on.
const HOLDS: &str = "flap_changes = 4\nflap_window = \"10m\"\nflap_stable = \"5m\"\ntransient_pause = \"3m\"\n";

const START: i64 = 1_764_000_000_000;
const HOUR: i64 = 3_600_000;

#[derive(Parser)]
struct Args {
    /// The stream's seed (committed seeds: 1, 2, 3); history is seed + 1000.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Alerts to play the stream's parts with (JSON lines, as the shared corpus); built-in names
    /// without one.
    #[arg(long)]
    corpus: Option<PathBuf>,
    /// Hours of alerts.
    #[arg(long, default_value_t = 6)]
    hours: i64,
    /// The route's group_by, for every run (Alertmanager's usual grouping by default; `...`
    /// groups every alert alone, leaving correlation to relate them).
    #[arg(long, value_delimiter = ',', default_value = "alertname,cluster,service")]
    group_by: Vec<String>,
    /// Correlation's text-similarity threshold (above 1: off).
    #[arg(long, default_value_t = Settings::default().min_similarity)]
    min_similarity: f64,
    /// Also run the stream through this Alertmanager binary (Debian's `prometheus-alertmanager`),
    /// in compressed time.
    #[arg(long)]
    alertmanager: Option<PathBuf>,
    /// How many times faster than the stream's own time Alertmanager gets it (timings divided
    /// alike): 6 hours in 3 minutes by default.
    #[arg(long, default_value_t = 120, value_parser = clap::value_parser!(i64).range(1..))]
    speedup: i64,
    /// Only the JSON line.
    #[arg(long)]
    json: bool,
}

/// One way of running the stream, scored.
struct Run {
    name: &'static str,
    /// Pages, and updates in a parent's thread.
    notifications: usize,
    threaded: usize,
    scores: Grouping,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let kinds = match &args.corpus {
        Some(path) => Kinds::from_corpus(&quench_classify::corpus::load(path)?, args.seed)?,
        None => Kinds::default(),
    };
    let stream = generate(args.seed, START, args.hours, &kinds);
    let history = generate(args.seed + 1000, START - 24 * HOUR, 24, &kinds);
    let group_by: Vec<String> = args.group_by.iter().map(|label| format!("{label:?}")).collect();
    let t = &TIMINGS;
    let rules = format!(
        "[route]\ngroup_by = [{}]\ngroup_wait = \"{}ms\"\ngroup_interval = \"{}ms\"\nrepeat_interval = \"{}ms\"\n\
         resolve_timeout = \"{}ms\"\n",
        group_by.join(", "),
        t.group_wait,
        t.group_interval,
        t.repeat_interval,
        t.resolve_timeout
    );
    let plain = RouteTree::parse(&rules).map_err(anyhow::Error::msg)?;
    let held = RouteTree::parse(&format!("{rules}{HOLDS}")).map_err(anyhow::Error::msg)?;
    let settings = Settings { min_similarity: args.min_similarity, ..Settings::default() };
    let mut transients = Transients::default();
    transients.learn(&durations(&history.alerts, 5 * 60_000));
    let correlator = || -> anyhow::Result<Correlator> {
        let associations = Associations::learn(&onsets(&history.alerts), &settings);
        let dependencies = Dependencies::parse(&dependencies()).map_err(anyhow::Error::msg)?;
        Ok(Correlator::new(settings, associations, dependencies))
    };
    let settle = Duration::from_secs(3600);
    let routing = RoutingRules::default();
    let mut runs = [
        ("Alertmanager semantics", &plain, Additions::default()),
        ("Quench, holds", &held, Additions { transients: transients.clone(), correlator: None }),
        ("Quench, holds + correlation", &held, Additions { transients, correlator: Some(correlator()?) }),
    ]
    .into_iter()
    .map(|(name, rules, additions)| {
        Ok(score(name, &stream, replay(&stream.alerts, rules, &routing, settle, additions)?))
    })
    .collect::<anyhow::Result<Vec<Run>>>()?;
    let semantics = runs[0].notifications;
    if let Some(binary) = &args.alertmanager {
        let sent = alertmanager::run(binary, &stream, &args.group_by, &TIMINGS, args.speedup)?;
        runs.insert(
            0,
            Run {
                name: "Alertmanager (real)",
                notifications: sent.notifications,
                threaded: 0,
                scores: grouping(&sent.incidents, &stream.cause),
            },
        );
    }

    let episodes = stream.cause.len();
    let reduction = |notifications: usize| 1.0 - notifications as f64 / episodes as f64;
    if !args.json {
        let causes: BTreeSet<u32> = stream.cause.values().copied().collect();
        println!(
            "seed {}, group_by {}: {} alert records, {} alerts (firing episodes) from {} root causes, over {} h",
            args.seed,
            args.group_by.join(","),
            stream.alerts.len(),
            episodes,
            causes.len(),
            args.hours
        );
        if args.alertmanager.is_some() {
            println!("(Alertmanager (real): {} times faster, timings divided alike)", args.speedup);
        }
        println!(
            "{:<30} {:>8} {:>8} {:>9} {:>7} {:>7} {:>7} {:>9} {:>7}",
            "", "pages", "threaded", "reduction", "P", "R", "F1", "BCubed F1", "wrong"
        );
        for run in &runs {
            let s = &run.scores;
            println!(
                "{:<30} {:>8} {:>8} {:>8.1}% {:>7.3} {:>7.3} {:>7.3} {:>9.3} {:>6.1}%",
                run.name,
                run.notifications,
                run.threaded,
                reduction(run.notifications) * 100.0,
                s.precision,
                s.recall,
                s.f1,
                s.bcubed_f1,
                s.wrong_merges * 100.0
            );
        }
    }
    let on = runs.last().expect("three runs at least");
    let (am_source, am_notifications) = match args.alertmanager {
        Some(_) => ("alertmanager", runs[0].notifications),
        None => ("semantics", semantics),
    };
    println!(
        "{}",
        json!({"alerts": episodes, "alert_records": stream.alerts.len(), "am_notifications": am_notifications,
               "am_source": am_source, "am_semantics_notifications": semantics,
               "notifications": on.notifications, "reduction": reduction(on.notifications), "f1": on.scores.f1,
               "bcubed_f1": on.scores.bcubed_f1})
    );
    Ok(())
}

/// Scores a replay: correlated children count with their root (for grouping) and as updates in
/// its thread (for notifications).
fn score(name: &'static str, stream: &Stream, replayed: Replayed) -> Run {
    let mut root: HashMap<&str, &str> = HashMap::new();
    for link in &replayed.links {
        root.insert(&link.child, &link.parent);
    }
    let mut merged: BTreeMap<&str, Found> = BTreeMap::new();
    for (id, incident) in &replayed.incidents {
        let found = merged.entry(root.get(id.as_str()).copied().unwrap_or(id)).or_insert(Found {
            fingerprints: Vec::new(),
            first_seen: incident.first_seen,
            last_seen: incident.last_seen,
        });
        found.fingerprints.extend(incident.fingerprints.iter().filter_map(|f| u64::from_str_radix(f, 16).ok()));
        found.first_seen = found.first_seen.min(incident.first_seen);
        found.last_seen = found.last_seen.max(incident.last_seen);
    }
    let found: Vec<Found> = merged.into_values().collect();
    let pages = replayed.pages();
    Run {
        name,
        notifications: pages,
        threaded: replayed.notifications.len() - pages,
        scores: grouping(&found, &stream.cause),
    }
}
