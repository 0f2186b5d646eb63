//! The quality harness's real-Alertmanager leg in CI, short: one hour of the stream of seed 1
//! through Debian's Alertmanager at 120 times its speed (30 s), beside Quench's runs.

use std::process::Command;

use serde_json::Value;

#[test]
fn an_hour_of_the_stream_runs_through_a_real_alertmanager_and_quench_pages_less() {
    let output = Command::new(env!("CARGO_BIN_EXE_noise"))
        .args(["--seed", "1", "--hours", "1", "--alertmanager", "prometheus-alertmanager", "--json"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    let last: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(last["am_source"], "alertmanager", "{last}");
    let (real, exact) =
        (last["am_notifications"].as_f64().unwrap(), last["am_semantics_notifications"].as_f64().unwrap());
    // Compressed time moves alerts at a flush's edge to either side of it: close, not equal.
    assert!((real - exact).abs() <= 0.15 * exact, "Alertmanager {real}, its semantics in Quench {exact}");
    let quench = last["notifications"].as_f64().unwrap();
    assert!(quench < 0.8 * real, "Quench with its additions pages {quench}, Alertmanager {real}");
    assert!(last["f1"].as_f64().unwrap() > 0.3, "{last}");
}
