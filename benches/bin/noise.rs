//! The quality harness: a generated stream with ground truth (`quench_benches::noise`: storms
//! across services and groups, flapping and transient alerts, re-sends, unrelated singletons)
//! through Quench's operator in virtual time (`quench_core::replay`), scored against the truth.
//! Prints alerts, notifications, reduction, pairwise precision / recall / F1, BCubed F1 and wrong
//! merges, and as its last line JSON `{"alerts":N,"alert_records":N,"am_notifications":null,
//! "notifications":N,"reduction":R,"f1":F,"bcubed_f1":F}`. `alerts` counts firing episodes (an
//! alert that fires again later counts again; its re-sends do not), the reduction is
//! 1 - notifications / episodes, stricter than against records.
//!
//! `cargo run --release -p quench-benches --bin noise -- [--seed N] [--hours H] [--json]`
//!
//! The rules are Alertmanager's usual grouping (`alertname`, `cluster`, `service`; group_wait
//! 30s, group_interval 5m). Not yet here (issue 17): the run through a real Alertmanager
//! (`am_notifications` is null) and Quench with correlation on, which does not exist yet.

use std::{collections::BTreeSet, time::Duration};

use clap::Parser;
use quench_benches::noise::{generate, grouping, Found};
use quench_core::{replay::replay, routing::RoutingRules, rules::RouteTree};
use serde_json::json;

const RULES: &str = "[route]\ngroup_by = [\"alertname\", \"cluster\", \"service\"]\ngroup_wait = \"30s\"\n\
                     group_interval = \"5m\"\nrepeat_interval = \"4h\"\nresolve_timeout = \"5m\"\n";

#[derive(Parser)]
struct Args {
    /// The stream's seed (committed seeds: 1, 2, 3).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Hours of alerts.
    #[arg(long, default_value_t = 6)]
    hours: i64,
    /// Only the JSON line.
    #[arg(long)]
    json: bool,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let stream = generate(args.seed, 1_764_000_000_000, args.hours);
    let rules = RouteTree::parse(RULES).map_err(anyhow::Error::msg)?;
    let replayed = replay(&stream.alerts, &rules, &RoutingRules::default(), Duration::from_secs(3600))?;
    let found: Vec<Found> = replayed
        .incidents
        .values()
        .map(|i| Found {
            fingerprints: i.fingerprints.iter().filter_map(|f| u64::from_str_radix(f, 16).ok()).collect(),
            first_seen: i.first_seen,
            last_seen: i.last_seen,
        })
        .collect();
    let scores = grouping(&found, &stream.cause);
    let episodes = stream.cause.len();
    let causes: BTreeSet<u32> = stream.cause.values().copied().collect();
    let notifications = replayed.notifications.len();
    let reduction = 1.0 - notifications as f64 / episodes as f64;
    if !args.json {
        println!(
            "seed {}: {} alert records, {} alerts (firing episodes) from {} root causes, over {} h; {} placed in incidents",
            args.seed,
            stream.alerts.len(),
            episodes,
            causes.len(),
            args.hours,
            scores.placed
        );
        println!(
            "{:<34} {:>13} {:>9} {:>7} {:>7} {:>7} {:>9} {:>12}",
            "", "notifications", "reduction", "P", "R", "F1", "BCubed F1", "wrong merges"
        );
        println!(
            "{:<34} {:>13} {:>9} {:>7} {:>7} {:>7} {:>9} {:>12}",
            "Alertmanager (same group_by)", "not yet", "", "", "", "", "", ""
        );
        println!(
            "{:<34} {:>13} {:>8.1}% {:>7.3} {:>7.3} {:>7.3} {:>9.3} {:>11.1}%",
            "Quench, correlation off",
            notifications,
            reduction * 100.0,
            scores.precision,
            scores.recall,
            scores.f1,
            scores.bcubed_f1,
            scores.wrong_merges * 100.0
        );
        println!("{:<34} {:>13}", "Quench, correlation on", "not yet");
    }
    println!(
        "{}",
        json!({"alerts": episodes, "alert_records": stream.alerts.len(), "am_notifications": null,
               "notifications": notifications, "reduction": reduction, "f1": scores.f1, "bcubed_f1": scores.bcubed_f1})
    );
    Ok(())
}
