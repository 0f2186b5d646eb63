//! `quench demo` as a new user runs it, against the real stack: it waits until the worker and the
//! sink are ready before producing, reports the incidents it made, and fails, never reporting a
//! reduction, when a storm yields no incident.

use std::process::{Command, Output};

/// Runs `quench demo` on a small storm with the windowing rules `rules`; the stack comes from the
/// caller's QUENCH_* variables. The demo isolates its own topics, groups and tenant.
fn demo(rules: &str) -> (Output, String) {
    let path = std::env::temp_dir().join(format!("quench-demo-test-{}-{}.toml", std::process::id(), rules.len()));
    std::fs::write(&path, rules).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_quench"))
        .args(["demo", "--storms", "3", "--services", "4", "--hosts", "4", "--flapping", "2", "--noise", "20"])
        .env("QUENCH_WORKER__RULES", &path)
        .env("QUENCH_HTTP__LISTEN", "")
        .env("QUENCH_LOG__LEVEL", "warn")
        .output()
        .expect("quench runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    (output, stdout)
}

/// The number before `word` on the summary line (`6724 alerts in, 205 incidents out ...`).
fn count_before(summary: &str, word: &str) -> u64 {
    let words: Vec<&str> = summary.split_whitespace().collect();
    let at = words.iter().position(|w| *w == word).unwrap_or_else(|| panic!("no {word} in {summary}"));
    words[at - 1].parse().unwrap_or_else(|_| panic!("no number before {word} in {summary}"))
}

#[test]
fn the_demo_waits_for_readiness_and_reports_the_incidents_it_made() {
    let (output, stdout) = demo(include_str!("../../infra/demo-rules.toml"));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "demo failed:\n{stdout}\n{stderr}");
    let ready = stdout.find("[     ready]").unwrap_or_else(|| panic!("no readiness step:\n{stdout}"));
    let produce = stdout.find("[   produce]").unwrap_or_else(|| panic!("nothing produced:\n{stdout}"));
    assert!(ready < produce, "alerts are produced only once worker and sink are ready:\n{stdout}");
    let summary = stdout.lines().find(|l| l.contains("[   summary]")).unwrap_or_else(|| panic!("{stdout}"));
    let (alerts, incidents) = (count_before(summary, "alerts"), count_before(summary, "incidents"));
    assert!(incidents > 0 && incidents < alerts, "{summary}");
}

#[test]
fn a_storm_that_yields_no_incident_fails_the_demo_instead_of_reporting_a_reduction() {
    // No group waits out an hour of group_wait during the demo: every alert is counted, no
    // incident opens.
    let rules = "[route]\ngroup_by = [\"alertname\"]\ngroup_wait = \"1h\"\ngroup_interval = \"1s\"\n";
    let (output, stdout) = demo(rules);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "zero incidents must not pass:\n{stdout}");
    assert!(stderr.contains("no incident came out"), "{stderr}");
    assert!(!stdout.contains("fewer things to look at"), "no reduction computed from nothing:\n{stdout}");
}
