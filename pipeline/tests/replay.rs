//! `quench replay`: the same alerts from a file and from ClickHouse (the stack's), through a
//! candidate and the current rules, with the difference between them.

mod support;

use std::process::Command;

use quench_pipeline::{
    clickhouse::{client, migrate, MIGRATIONS},
    config::Config,
};
use serde_json::Value;
use support::insert_alerts;

/// `DiskFull` then `HighLoad` on three hosts, 5 s apart, from `t0` (ms).
fn alerts(t0: i64) -> Vec<(&'static str, String, i64)> {
    let mut out = Vec::new();
    for (k, name) in ["DiskFull", "HighLoad"].into_iter().enumerate() {
        for host in 0..3 {
            out.push((name, format!("h{host}"), t0 + (k as i64 * 3 + host) * 5_000));
        }
    }
    out
}

fn rules(dir: &std::path::Path, name: &str, group_by: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(
        &path,
        format!("[route]\ngroup_by = [{group_by}]\ngroup_wait = \"30s\"\ngroup_interval = \"5m\"\nresolve_timeout = \"5m\"\n"),
    )
    .unwrap();
    path
}

fn quench(args: &[&str], env: &[(&str, &str)]) -> Value {
    let output = Command::new(env!("CARGO_BIN_EXE_quench")).args(args).envs(env.iter().copied()).output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}{}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_str(stdout.lines().last().unwrap()).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

/// Grouping by alertname only merges each kind's three host incidents: 6 incidents and 12
/// notifications (opened, resolved) become 2 and 4.
fn check(result: &Value) {
    assert_eq!(result["alerts"], 6, "{result}");
    assert_eq!(
        (result["current"]["incidents"].as_u64(), result["candidate"]["incidents"].as_u64()),
        (Some(6), Some(2))
    );
    assert_eq!(
        (result["current"]["notifications"].as_u64(), result["candidate"]["notifications"].as_u64()),
        (Some(12), Some(4)),
        "{result}"
    );
    assert_eq!((result["diff"]["split"].as_u64(), result["diff"]["merged"].as_u64()), (Some(0), Some(2)));
    assert_eq!(result["diff"]["notifications"]["Opened"], serde_json::json!([6, 2]));
}

#[test]
fn a_file_replayed_through_two_rule_sets_shows_what_the_candidate_merges() {
    let dir = tempdir("replay-file");
    let lines: String = alerts(1_764_000_000_000)
        .iter()
        .map(|(name, host, at)| {
            format!("{{\"labels\": {{\"alertname\": \"{name}\", \"instance\": \"{host}\"}}, \"received_at\": {at}}}\n")
        })
        .collect();
    let input = dir.join("alerts.jsonl");
    std::fs::write(&input, lines).unwrap();
    let current = rules(&dir, "current.toml", "\"alertname\", \"instance\"");
    let candidate = rules(&dir, "candidate.toml", "\"alertname\"");
    let result = quench(
        &[
            "replay",
            "--json",
            "--input",
            input.to_str().unwrap(),
            "--rules",
            candidate.to_str().unwrap(),
            "--current",
            current.to_str().unwrap(),
        ],
        &[],
    );
    check(&result);

    let bad = dir.join("bad.jsonl");
    std::fs::write(&bad, "{\"labels\": {}}\n").unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_quench"))
        .args(["replay", "--input", bad.to_str().unwrap(), "--rules", candidate.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("bad.jsonl line 1") && stderr.contains("received_at"), "{stderr}");
}

/// A day in which `LinkDown` on a switch is followed 20 s later by `NodeUnreachable` in its
/// cluster, every hour: with `--correlate`, the candidate pages once per hour instead of twice,
/// each `NodeUnreachable` linked under its `LinkDown` with the explanation.
#[test]
fn correlate_links_what_the_replayed_history_shows_going_together() {
    let dir = tempdir("replay-correlate");
    let t0 = 1_764_000_000_000;
    let line = |name: &str, label: &str, value: &str, at: i64| {
        format!(
            "{{\"labels\": {{\"alertname\": \"{name}\", \"cluster\": \"c1\", \"{label}\": \"{value}\"}}, \"received_at\": {at}}}\n"
        )
    };
    let lines: String = (0..24)
        .flat_map(|hour| {
            let at = t0 + hour * 3_600_000;
            [
                line("LinkDown", "device", &format!("sw-{hour}"), at),
                line("NodeUnreachable", "node", &format!("n{hour}"), at + 20_000),
            ]
        })
        .collect();
    let input = dir.join("alerts.jsonl");
    std::fs::write(&input, lines).unwrap();
    let by_name = rules(&dir, "rules.toml", "\"alertname\", \"device\", \"node\"");
    let (input, by_name) = (input.to_str().unwrap(), by_name.to_str().unwrap());
    let args = ["replay", "--json", "--input", input, "--rules", by_name, "--current", by_name, "--correlate"];
    let result = quench(&args, &[]);
    assert_eq!(result["current"]["linked"], 0, "the current rules are replayed as they are: {result}");
    assert_eq!(result["candidate"]["linked"], 24, "{result}");
    let (current, candidate) = (&result["current"], &result["candidate"]);
    assert_eq!((current["pages"].as_u64(), candidate["pages"].as_u64()), (Some(96), Some(48)), "{result}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_clickhouse_time_range_replays_the_same_as_the_file() {
    let mut config = Config::load(None, std::env::vars()).expect("test environment config");
    config.clickhouse.database = support::database("replay");
    migrate(&config.clickhouse, MIGRATIONS).await.unwrap();
    // An hour ago: `alerts` keeps 30 days.
    let t0 = quench_schemas::now_ms() - 3_600_000;
    let stored: Vec<_> =
        alerts(t0).into_iter().enumerate().map(|(i, (name, host, at))| (name, host, format!("fp{i}"), at)).collect();
    insert_alerts(&client(&config.clickhouse), "acme", &stored).await;
    let dir = tempdir("replay-clickhouse");
    let current = rules(&dir, "current.toml", "\"alertname\", \"instance\"");
    let candidate = rules(&dir, "candidate.toml", "\"alertname\"");
    // Unix seconds, which ClickHouse's parseDateTime64BestEffort reads as well as RFC 3339.
    let (from, to) = ((t0 / 1000 - 60).to_string(), (t0 / 1000 + 600).to_string());
    let result = quench(
        &[
            "replay",
            "--json",
            "--tenant",
            "acme",
            "--from",
            &from,
            "--to",
            &to,
            "--rules",
            candidate.to_str().unwrap(),
            "--current",
            current.to_str().unwrap(),
        ],
        &[("QUENCH_CLICKHOUSE__DATABASE", &config.clickhouse.database)],
    );
    check(&result);
}

fn tempdir(name: &str) -> std::path::PathBuf {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    let dir = std::env::temp_dir().join(format!("quench-{name}-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
