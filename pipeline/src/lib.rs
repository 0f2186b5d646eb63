//! Quench's pipeline: the stream worker, the ClickHouse sink, the Kafka shells of the ingest
//! connectors and the notifier, and the `quench` command with its tools (demo, load generator,
//! evaluation).
//!
//! The layout follows "functional core, imperative shell": pure modules (the route tree, the
//! windowing core, routing rules) know nothing of Kafka or ClickHouse; `kafka`, `clickhouse` and
//! the commands are the thin shell around them.

pub use quench_classify::corpus;

pub mod clickhouse;
pub mod config;
pub mod demo;
pub mod eval;
pub mod http;
pub mod ingest;
pub mod init;
pub mod kafka;
pub mod loadgen;
pub mod logging;
pub mod notify;
pub mod preflight;
pub mod routing;
pub mod rules;
pub mod signals;
pub mod sink;
pub mod window;
pub mod worker;
