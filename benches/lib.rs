//! Benchmarks live in `benches/`; run them with `cargo bench -p quench-benches`. This library
//! holds what the measurement harnesses in `bin/` share.

use std::{
    path::PathBuf,
    time::{SystemTime, UNIX_EPOCH},
};

/// The release `quench` binary the harnesses start: `$CARGO_TARGET_DIR/release/quench`, or
/// `target/release/quench`.
pub fn default_quench() -> PathBuf {
    let target = std::env::var("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|_| PathBuf::from("target"));
    target.join("release/quench")
}

pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}
