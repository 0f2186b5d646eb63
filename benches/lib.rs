//! Benchmarks live in `benches/`; run them with `cargo bench -p quench-benches`. This library
//! holds what the measurement harnesses in `bin/` share.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command},
};

pub use quench_schemas::now_ms;

/// The release `quench` binary the harnesses start: `$CARGO_TARGET_DIR/release/quench`, or
/// `target/release/quench`.
pub fn default_quench() -> PathBuf {
    let target = std::env::var("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|_| PathBuf::from("target"));
    target.join("release/quench")
}

/// Starts `quench <command>` with exactly `env` (plus PATH and where the embedding model is).
pub fn spawn(quench: &Path, command: &str, env: &[(String, String)]) -> std::io::Result<Child> {
    Command::new(quench)
        .arg(command)
        .env_clear()
        .envs(env.iter().cloned())
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(
            ["HOME", "XDG_CACHE_HOME", "QUENCH_MODEL_HOME"]
                .into_iter()
                .filter_map(|k| Some((k, std::env::var(k).ok()?))),
        )
        .spawn()
}
