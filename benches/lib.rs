//! Benchmarks live in `benches/`; run them with `cargo bench -p quench-benches`. This library
//! holds what the measurement harnesses in `bin/` share.

use std::{
    path::{Path, PathBuf},
    process::Child,
};

pub mod alertmanager;
pub mod noise;

pub use quench_schemas::now_ms;

/// The release `quench` binary the harnesses start: `$CARGO_TARGET_DIR/release/quench`, or
/// `target/release/quench`.
pub fn default_quench() -> PathBuf {
    let target = std::env::var("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|_| PathBuf::from("target"));
    target.join("release/quench")
}

/// Starts `quench <command>` with exactly `env` (plus PATH and where the embedding model is).
pub fn spawn(quench: &Path, command: &str, env: &[(String, String)]) -> std::io::Result<Child> {
    quench_pipeline::config::quench_command(quench, command, env).spawn()
}

/// Prints a harness's figures as its last line, one JSON object: what `report` reads.
pub fn print_figures(figures: serde_json::Value) {
    println!("{figures}");
}

/// Resident memory of process `pid` in KiB (0 when it is gone), from `/proc`.
pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}
