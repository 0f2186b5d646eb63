//! Quench's pipeline: the stream worker, the ClickHouse sink and the `quench` command.
//!
//! The layout follows "functional core, imperative shell": pure modules (rules and the windowing
//! core) know nothing of Kafka or ClickHouse; `kafka`, `clickhouse` and the
//! commands are the thin shell around them.

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
