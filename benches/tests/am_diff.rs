//! The side-by-side harness's short case in CI: one shipped scenario (inhibition, with a partial
//! and a whole resolution) through Debian's Alertmanager and through Quench must make the same
//! notifications. All shipped scenarios: `cargo run --release -p quench-benches --bin am-diff`
//! (see `benches/am-diff/README.md`).

use std::{path::Path, process::Command};

#[test]
fn quench_notifies_as_alertmanager_does_on_the_inhibition_scenario() {
    // The debug `quench` beside this test's executable (target/debug/deps/..).
    let exe = std::env::current_exe().unwrap();
    let quench = exe.parent().and_then(Path::parent).unwrap().join("quench");
    assert!(quench.exists(), "{} is built with the workspace's tests", quench.display());
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("am-diff");
    let output = Command::new(env!("CARGO_BIN_EXE_am-diff"))
        .arg(format!("--config={}", dir.join("alertmanager.yml").display()))
        .arg(format!("--scenario={}", dir.join("07-inhibit.jsonl").display()))
        .arg(format!("--quench={}", quench.display()))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    let summary: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(summary["mismatches"], 0, "{stdout}");
    assert_eq!(summary["notifications_am"], 4, "NodeDown opened and resolved, DiskPressure twice: {stdout}");
    assert_eq!(summary["notifications_quench"], 4, "{stdout}");
}
