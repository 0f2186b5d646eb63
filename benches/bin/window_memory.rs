//! Worker memory per open fingerprint: builds the windowing state for N distinct alerts (default
//! 1,000,000, in groups of 100) and prints the resident-memory growth per fingerprint. Run with
//! `cargo run --release -p quench-benches --bin window-memory -- [N]`.

use std::collections::BTreeMap;

use quench_core::{rules::RouteTree, window::Windows};
use quench_schemas::{fingerprint::fingerprint, Alert, AlertStatus};

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("Linux /proc");
    let pages: u64 = statm.split_whitespace().nth(1).and_then(|v| v.parse().ok()).expect("statm resident field");
    pages * 4096
}

fn main() {
    let n: usize = std::env::args().nth(1).map(|v| v.parse().expect("N is a number")).unwrap_or(1_000_000);
    let tree = RouteTree::default();
    let mut alert = Alert {
        source: "bench".into(),
        status: AlertStatus::Firing,
        labels: BTreeMap::new(),
        annotations: BTreeMap::new(),
        starts_at: 1_764_000_000_000,
        ends_at: None,
        received_at: 1_764_000_000_000,
        generator_url: None,
        fingerprint: None,
        tenant: "default".into(),
        stateful: false,
    };
    let mut windows = Windows::default();
    let before = rss_bytes();
    for i in 0..n {
        alert.labels = BTreeMap::from([
            ("alertname".to_string(), format!("Rule{}", i / 100)),
            ("instance".to_string(), format!("host-{i}:9100")),
            ("job".to_string(), "node".to_string()),
        ]);
        let placement = tree.place(&alert, None).remove(0);
        windows.ingest(&alert, fingerprint(&alert.labels), placement, alert.received_at, false);
    }
    let grown = rss_bytes().saturating_sub(before);
    println!(
        "{} fingerprints in {} groups: RSS grew {:.1} MiB, {:.0} bytes per fingerprint",
        windows.open_fingerprints(),
        windows.open_groups(),
        grown as f64 / 1048576.0,
        grown as f64 / n as f64
    );
    quench_benches::print_figures(serde_json::json!({
        "fingerprints": n,
        "bytes_per_fingerprint": grown as f64 / n as f64,
    }));
}
