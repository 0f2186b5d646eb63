//! Similar past incidents in CI, small: the harness (`bin/similar.rs`) on 10 000 incidents in the
//! local stack's ClickHouse, through the same lookup `quench api` makes. Its speed is measured by
//! hand at a million (README); here only what it finds is held.

use std::process::Command;

use serde_json::Value;

#[test]
fn the_previous_occurrence_of_a_recurring_incident_is_among_the_five_shown() {
    let database = format!("quench_similar_ci_{}", std::process::id());
    let output = Command::new(env!("CARGO_BIN_EXE_similar"))
        .args(["--incidents", "10000", "--queries", "200", "--database", &database, "--json"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    let last: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(last["incidents"], 10_000, "{last}");
    let recall = last["recall_at_5"].as_f64().unwrap();
    assert!(recall >= 0.9, "recall@5 {recall} below the target 0.9: {last}");
}
