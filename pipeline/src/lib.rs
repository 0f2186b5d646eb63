//! Quench's pipeline: the stream worker, the ClickHouse sink, the Kafka shells of the ingest
//! connectors and the notifier, and the `quench` command with its tools (demo, load generator,
//! evaluation).
//!
//! The layout follows "functional core, imperative shell": every decision (the route tree, the
//! windows, routing rules, the worker's operator) lives in the pure crate `quench-core`; this
//! crate is the shell around it (`kafka`, `clickhouse`, the commands).

pub use quench_classify::corpus;

pub mod actions;
pub mod alertmanager_api;
pub mod api;
pub mod ask;
pub mod clickhouse;
pub mod config;
pub mod correlate;
pub mod demo;
pub mod erase;
pub mod eval;
pub mod events;
pub mod http;
pub mod ingest;
pub mod init;
pub mod kafka;
pub mod loadgen;
pub mod logging;
pub mod mutes;
pub mod notify;
pub mod predict;
pub mod preflight;
pub mod reload;
pub mod repartition;
pub mod replay;
pub mod rules;
pub mod serve;
pub mod signals;
pub mod similar;
pub mod sink;
pub mod worker;
